// Package sourcetest is the contract suite every source.Store implementation runs:
//
//	func TestContract(t *testing.T) { sourcetest.Run(t, func(t *testing.T) source.Store { ... }) }
//
// Each subtest gets a fresh, empty store from newStore, which arranges for it to be closed when the test ends.
package sourcetest

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/source"
)

// t0 carries nanoseconds, so a store that rounds times fails the round trips.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

// Run runs the whole contract against stores from newStore.
func Run(t *testing.T, newStore func(t *testing.T) source.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s source.Store)
	}{
		{"CreateAndGet", testCreateAndGet},
		{"CreateRefusesAKnownID", testCreateDuplicate},
		{"GetUnknown", testGetUnknown},
		{"ListOldestFirst", testList},
		{"Update", testUpdate},
		{"UpdateUnknown", testUpdateUnknown},
		{"Delete", testDelete},
		{"Touch", testTouch},
		{"TouchConcurrently", testTouchConcurrently},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// newSource returns an enabled source with two secrets (a rotation under way), created at created.
func newSource(id, name string, p source.Provider, created time.Time) source.Source {
	return source.Source{
		ID: id, Name: name, Provider: p,
		Secrets:   []string{"whsec_current-" + id, "whsec_next-" + id},
		Enabled:   true,
		CreatedAt: created, UpdatedAt: created,
	}
}

func create(t *testing.T, s source.Store, sources ...source.Source) {
	t.Helper()
	for _, src := range sources {
		require.NoError(t, s.Create(context.Background(), src))
	}
}

func get(t *testing.T, s source.Store, id string) source.Source {
	t.Helper()
	got, err := s.Get(context.Background(), id)
	require.NoError(t, err)
	return got
}

func assertNotFound(t *testing.T, err error, msgAndArgs ...any) {
	t.Helper()
	assert.ErrorIs(t, err, userhook.ErrNotFound, msgAndArgs...)
}

func testCreateAndGet(t *testing.T, s source.Store) {
	clerk := newSource("src_a", "production Clerk", source.Clerk, t0)
	okta := source.Source{
		ID: "src_b", Name: "okta · ü", Provider: source.Okta,
		// Secrets are kept byte for byte, whatever they hold.
		Secrets:   []string{"Bearer quote \" back\\slash ü \x00 end"},
		Enabled:   false,
		CreatedAt: t0.Add(time.Minute), UpdatedAt: t0.Add(2 * time.Minute),
	}
	create(t, s, clerk, okta)

	assert.Equal(t, clerk, get(t, s, "src_a"), "both secrets, in their order")
	assert.Equal(t, okta, get(t, s, "src_b"))
	assert.True(t, get(t, s, "src_a").LastEventAt.IsZero(), "a new source has delivered nothing")

	for _, p := range source.Providers() {
		src := newSource("src_"+string(p), string(p), p, t0)
		create(t, s, src)
		assert.Equal(t, src, get(t, s, src.ID), "provider %s", p)
	}
}

func testCreateDuplicate(t *testing.T, s source.Store) {
	a := newSource("src_a", "first", source.WorkOS, t0)
	create(t, s, a)
	again := newSource("src_a", "second", source.Keycloak, t0.Add(time.Hour))
	assert.Error(t, s.Create(context.Background(), again), "an id is stored once")
	assert.Equal(t, a, get(t, s, "src_a"), "the first source is left as it was")
}

func testGetUnknown(t *testing.T, s source.Store) {
	create(t, s, newSource("src_a", "a", source.Clerk, t0))
	_, err := s.Get(context.Background(), "src_nobody")
	assertNotFound(t, err)
	_, err = s.Get(context.Background(), "")
	assertNotFound(t, err)
}

func testList(t *testing.T, s source.Store) {
	ctx := context.Background()
	list, err := s.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, list)

	newest := newSource("src_a", "newest", source.Clerk, t0.Add(time.Hour))
	oldest := newSource("src_d", "oldest", source.Auth0Logs, t0)
	// Created at the same instant: ordered by id.
	middle2 := newSource("src_c", "middle 2", source.Zitadel, t0.Add(time.Minute))
	middle1 := newSource("src_b", "middle 1", source.Keycloak, t0.Add(time.Minute))
	middle1.Enabled = false
	create(t, s, newest, oldest, middle2, middle1)

	list, err = s.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []source.Source{oldest, middle1, middle2, newest}, list, "every source, disabled ones included, oldest first")
}

func testUpdate(t *testing.T, s source.Store) {
	ctx := context.Background()
	a := newSource("src_a", "before", source.Clerk, t0)
	b := newSource("src_b", "other", source.Clerk, t0)
	create(t, s, a, b)
	require.NoError(t, s.Touch(ctx, "src_a", t0.Add(30*time.Second)))

	// The rotation ends: the old secret goes; the source is renamed and disabled.
	changed := a
	changed.Name = "after"
	changed.Enabled = false
	changed.Secrets = []string{"whsec_next-src_a"}
	changed.UpdatedAt = t0.Add(time.Minute)
	// What Update does not store: the provider, the creation time and the last event's time.
	changed.Provider = source.Okta
	changed.CreatedAt = t0.Add(time.Hour)
	changed.LastEventAt = t0.Add(time.Hour)
	require.NoError(t, s.Update(ctx, changed))

	want := a
	want.Name, want.Enabled, want.Secrets, want.UpdatedAt = "after", false, []string{"whsec_next-src_a"}, t0.Add(time.Minute)
	want.LastEventAt = t0.Add(30 * time.Second)
	assert.Equal(t, want, get(t, s, "src_a"))
	assert.Equal(t, b, get(t, s, "src_b"), "updating one source leaves the others")

	// A new rotation begins, and the source is enabled again.
	again := want
	again.Enabled = true
	again.Secrets = []string{"whsec_next-src_a", "whsec_third"}
	again.UpdatedAt = t0.Add(2 * time.Minute)
	require.NoError(t, s.Update(ctx, again))
	assert.Equal(t, again, get(t, s, "src_a"))
}

func testUpdateUnknown(t *testing.T, s source.Store) {
	ctx := context.Background()
	create(t, s, newSource("src_a", "a", source.Clerk, t0))
	assertNotFound(t, s.Update(ctx, newSource("src_nobody", "nobody", source.Clerk, t0)))
	list, err := s.List(ctx)
	require.NoError(t, err)
	assert.Len(t, list, 1, "an update of an unknown source creates none")
}

func testDelete(t *testing.T, s source.Store) {
	ctx := context.Background()
	a := newSource("src_a", "a", source.Clerk, t0)
	b := newSource("src_b", "b", source.Okta, t0.Add(time.Minute))
	create(t, s, a, b)

	require.NoError(t, s.Delete(ctx, "src_a"))
	_, err := s.Get(ctx, "src_a")
	assertNotFound(t, err, "a deleted source is gone")
	list, err := s.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []source.Source{b}, list, "deleting one source leaves the others")

	assertNotFound(t, s.Delete(ctx, "src_a"), "a source is deleted once")
	assertNotFound(t, s.Delete(ctx, "src_nobody"))
	assertNotFound(t, s.Update(ctx, a), "a deleted source is not updated back into being")
	assertNotFound(t, s.Touch(ctx, "src_a", t0.Add(time.Hour)))
}

func testTouch(t *testing.T, s source.Store) {
	ctx := context.Background()
	a := newSource("src_a", "a", source.Clerk, t0)
	b := newSource("src_b", "b", source.Clerk, t0)
	create(t, s, a, b)

	steps := []struct {
		at, want time.Time
		why      string
	}{
		{t0.Add(time.Minute), t0.Add(time.Minute), "the first event"},
		{t0.Add(2 * time.Minute), t0.Add(2 * time.Minute), "a later event moves it forward"},
		{t0.Add(time.Minute + time.Second), t0.Add(2 * time.Minute), "an earlier one (a request that took longer) never moves it back"},
		{t0.Add(2 * time.Minute), t0.Add(2 * time.Minute), "the same instant again"},
		{t0.Add(2*time.Minute + time.Nanosecond), t0.Add(2*time.Minute + time.Nanosecond), "to the nanosecond"},
	}
	for _, step := range steps {
		require.NoError(t, s.Touch(ctx, "src_a", step.at), step.why)
		got := get(t, s, "src_a")
		assert.Equal(t, step.want, got.LastEventAt, step.why)
		assert.Equal(t, t0, got.UpdatedAt, "an event is no update of the source: %s", step.why)
	}
	assert.True(t, get(t, s, "src_b").LastEventAt.IsZero(), "touching one source leaves the others")
	assertNotFound(t, s.Touch(ctx, "src_nobody", t0))
}

func testTouchConcurrently(t *testing.T, s source.Store) {
	ctx := context.Background()
	create(t, s, newSource("src_a", "a", source.Clerk, t0))
	const n = 20
	times := make([]time.Time, n)
	for i := range times {
		times[i] = t0.Add(time.Duration(i+1) * time.Millisecond)
	}
	rand.Shuffle(n, func(i, j int) { times[i], times[j] = times[j], times[i] })

	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, at := range times {
		wg.Go(func() { errs[i] = s.Touch(ctx, "src_a", at) })
	}
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "touch %d of %d at once", i+1, n)
	}
	assert.Equal(t, t0.Add(n*time.Millisecond), get(t, s, "src_a").LastEventAt, "the latest of them, whatever the order they ran in")
}
