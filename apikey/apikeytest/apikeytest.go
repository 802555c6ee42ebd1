// Package apikeytest is the contract suite every apikey.Store implementation runs:
//
//	func TestContract(t *testing.T) { apikeytest.Run(t, func(t *testing.T) apikey.Store { ... }) }
//
// Each subtest gets a fresh, empty store from newStore, which arranges for it to be closed when the test ends.
package apikeytest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/apikey"
)

// t0 carries nanoseconds, so a store that rounds times fails the round trips.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

// Run runs the whole contract against stores from newStore.
func Run(t *testing.T, newStore func(t *testing.T) apikey.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s apikey.Store)
	}{
		{"CreateAndListOldestFirst", testCreateAndList},
		{"CreateRefusesAKnownHash", testCreateDuplicateHash},
		{"Revoke", testRevoke},
		{"RevokeUnknown", testRevokeUnknown},
		{"ByHash", testByHash},
		{"Keyring", testKeyring},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// key returns a stored key record and the plain key it is the hash of.
func key(t *testing.T, id, name string, role apikey.Role, created time.Time) (apikey.Key, string) {
	t.Helper()
	plain, hash, err := apikey.Generate()
	require.NoError(t, err)
	return apikey.Key{ID: id, Name: name, Role: role, Hash: hash, CreatedAt: created}, plain
}

func create(t *testing.T, s apikey.Store, keys ...apikey.Key) {
	t.Helper()
	for _, k := range keys {
		require.NoError(t, s.Create(context.Background(), k))
	}
}

func testCreateAndList(t *testing.T, s apikey.Store) {
	ctx := context.Background()
	list, err := s.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, list)

	newest, _ := key(t, "key_c", "deploy bot", apikey.RoleIngest, t0.Add(time.Hour))
	oldest, _ := key(t, "key_b", "dashboard", apikey.RoleRead, t0)
	middle, _ := key(t, "key_a", "ops · ü", apikey.RoleAdmin, t0.Add(time.Minute))
	create(t, s, newest, oldest, middle)
	require.NoError(t, s.Revoke(ctx, "key_a", t0.Add(2*time.Minute)))
	revoked := t0.Add(2 * time.Minute)
	middle.RevokedAt = &revoked

	list, err = s.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []apikey.Key{oldest, middle, newest}, list, "every key, revoked ones included, oldest first")
}

func testCreateDuplicateHash(t *testing.T, s apikey.Store) {
	ctx := context.Background()
	k, _ := key(t, "key_a", "first", apikey.RoleRead, t0)
	create(t, s, k)
	again := k
	again.ID = "key_b"
	assert.Error(t, s.Create(ctx, again), "two keys never share a hash")
	sameID := k
	sameID.Hash = apikey.Hash("uhk_another-key-0123456789abcdef")
	assert.Error(t, s.Create(ctx, sameID), "an id is stored once")
	list, err := s.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []apikey.Key{k}, list)
}

func testRevoke(t *testing.T, s apikey.Store) {
	ctx := context.Background()
	k, _ := key(t, "key_a", "reader", apikey.RoleRead, t0)
	other, _ := key(t, "key_b", "other", apikey.RoleRead, t0)
	create(t, s, k, other)

	first := t0.Add(time.Hour)
	require.NoError(t, s.Revoke(ctx, "key_a", first))
	require.NoError(t, s.Revoke(ctx, "key_a", first.Add(time.Hour)), "revoking a revoked key is no error")
	got, err := s.ByHash(ctx, k.Hash)
	require.NoError(t, err)
	require.NotNil(t, got.RevokedAt)
	assert.Equal(t, first, *got.RevokedAt, "the first revocation's time stays")

	got, err = s.ByHash(ctx, other.Hash)
	require.NoError(t, err)
	assert.Nil(t, got.RevokedAt, "revoking one key leaves the others")
}

func testRevokeUnknown(t *testing.T, s apikey.Store) {
	err := s.Revoke(context.Background(), "key_nobody", t0)
	assert.ErrorIs(t, err, apikey.ErrNotFound)
	assert.ErrorIs(t, err, userhook.ErrNotFound)
}

func testByHash(t *testing.T, s apikey.Store) {
	ctx := context.Background()
	k, plain := key(t, "key_a", "reader", apikey.RoleRead, t0)
	create(t, s, k)
	got, err := s.ByHash(ctx, apikey.Hash(plain))
	require.NoError(t, err)
	assert.Equal(t, k, got)

	_, err = s.ByHash(ctx, apikey.Hash("uhk_not-a-stored-key"))
	assert.ErrorIs(t, err, apikey.ErrNotFound)
	assert.ErrorIs(t, err, userhook.ErrNotFound)
	_, err = s.ByHash(ctx, plain)
	assert.ErrorIs(t, err, apikey.ErrNotFound, "a key is looked up by its hash, never by itself")
}

func testKeyring(t *testing.T, s apikey.Store) {
	ctx := context.Background()
	const bootstrap = "bootstrap-ingest-key-0123456789"
	reader, readerPlain := key(t, "key_r", "reader", apikey.RoleRead, t0)
	admin, adminPlain := key(t, "key_a", "admin", apikey.RoleAdmin, t0)
	revoked, revokedPlain := key(t, "key_x", "revoked", apikey.RoleAdmin, t0)
	create(t, s, reader, admin, revoked)
	require.NoError(t, s.Revoke(ctx, revoked.ID, t0.Add(time.Minute)))
	kr := apikey.NewKeyring([]apikey.Bootstrap{{Key: bootstrap, Role: apikey.RoleIngest}}, s)

	got, err := kr.Authenticate(ctx, bootstrap)
	require.NoError(t, err)
	assert.Equal(t, apikey.RoleIngest, got.Role)
	assert.Equal(t, "bootstrap-1", got.ID)

	got, err = kr.Authenticate(ctx, readerPlain)
	require.NoError(t, err)
	assert.Equal(t, reader, got)
	got, err = kr.Authenticate(ctx, adminPlain)
	require.NoError(t, err)
	assert.Equal(t, apikey.RoleAdmin, got.Role)
	assert.Equal(t, "key_a", got.ID)

	_, err = kr.Authenticate(ctx, revokedPlain)
	assert.ErrorIs(t, err, userhook.ErrUnauthorized, "a revoked key is refused")
	for _, plain := range []string{"uhk_unknown-key-0123456789abcdef", "", reader.Hash} {
		_, err = kr.Authenticate(ctx, plain)
		assert.ErrorIs(t, err, userhook.ErrUnauthorized, "%q is refused", plain)
	}

	// Revoked in this process: refused as soon as the cache is dropped.
	require.NoError(t, s.Revoke(ctx, reader.ID, t0.Add(time.Hour)))
	kr.Forget()
	_, err = kr.Authenticate(ctx, readerPlain)
	assert.ErrorIs(t, err, userhook.ErrUnauthorized)
	_, err = kr.Authenticate(ctx, adminPlain)
	assert.NoError(t, err, "the other keys still work")
}
