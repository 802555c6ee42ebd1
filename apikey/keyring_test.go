package apikey_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/apikey"
	"github.com/userhook/userhook/internal/sqlitedb/sqlitetest"
)

// countingStore counts the lookups that reach the real store.
type countingStore struct {
	apikey.Store
	lookups atomic.Int64
}

func (s *countingStore) ByHash(ctx context.Context, hash string) (apikey.Key, error) {
	s.lookups.Add(1)
	return s.Store.ByHash(ctx, hash)
}

// TestKeyringMadeUpKeysDoNotFlushWorkingOnes: a flood of made-up keys (anyone with a token can send them)
// neither grows the cache without bound nor pushes out the keys that work.
func TestKeyringMadeUpKeysDoNotFlushWorkingOnes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	real, err := apikey.NewSQLiteStore(ctx, sqlitetest.Open(t))
	require.NoError(t, err)
	store := &countingStore{Store: real}
	plain, hash, err := apikey.Generate()
	require.NoError(t, err)
	require.NoError(t, store.Create(ctx, apikey.Key{ID: apikey.NewID(), Name: "svc", Role: apikey.RoleRead, Hash: hash, CreatedAt: time.Now()}))

	kr := apikey.NewKeyring(nil, store)
	_, err = kr.Authenticate(ctx, plain)
	require.NoError(t, err)
	require.EqualValues(t, 1, store.lookups.Load())
	for i := 0; i < 20000; i++ {
		_, err := kr.Authenticate(ctx, "made-up-"+strconv.Itoa(i))
		require.Error(t, err)
	}
	before := store.lookups.Load()
	_, err = kr.Authenticate(ctx, plain)
	require.NoError(t, err)
	assert.Equal(t, before, store.lookups.Load(), "the working key still came from the cache")
}
