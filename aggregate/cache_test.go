package aggregate_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/eventstore/sqlite"
	"github.com/userhook/userhook/internal/sqlitedb/sqlitetest"
)

// countingStore counts the stream reads that reach the store.
type countingStore struct {
	eventstore.Store
	loads atomic.Int64
}

func (c *countingStore) Load(ctx context.Context, stream string) ([]eventstore.Event, error) {
	c.loads.Add(1)
	return c.Store.Load(ctx, stream)
}

func cachedServices(t *testing.T) (*aggregate.Service, *aggregate.Service, *countingStore) {
	t.Helper()
	st, err := sqlite.New(context.Background(), sqlitetest.Open(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	counting := &countingStore{Store: st}
	cached := aggregate.NewService(counting, nil)
	cached.CacheStates(100)
	return cached, aggregate.NewService(st, nil), counting
}

func TestCachedRepeatNeedsNoRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, _, counting := cachedServices(t)
	first, err := svc.Execute(ctx, aggregate.Ensure{UserID: "u1", Email: "a@example.com"}, aggregate.Options{})
	require.NoError(t, err)
	loads := counting.loads.Load()
	for i := 0; i < 10; i++ {
		res, err := svc.Execute(ctx, aggregate.Ensure{UserID: "u1", Email: "a@example.com"}, aggregate.Options{})
		require.NoError(t, err)
		assert.Empty(t, res.Events)
		assert.Equal(t, first.Position(), res.Position())
	}
	assert.Equal(t, loads, counting.loads.Load(), "repeats are decided from the cached state")

	res, err := svc.Execute(ctx, aggregate.Ensure{UserID: "u1", Email: "b@example.com"}, aggregate.Options{})
	require.NoError(t, err)
	require.Len(t, res.Events, 1, "a change is still stored")
	assert.Equal(t, loads, counting.loads.Load())
}

func TestStaleCacheNeverStoresAWrongEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cached, other, _ := cachedServices(t)
	_, err := cached.Execute(ctx, aggregate.Ensure{UserID: "u1", Email: "a@example.com"}, aggregate.Options{})
	require.NoError(t, err)
	// Another writer changes the user behind the cache's back.
	_, err = other.Execute(ctx, aggregate.Ensure{UserID: "u1", Email: "b@example.com"}, aggregate.Options{})
	require.NoError(t, err)

	res, err := cached.Execute(ctx, aggregate.Ensure{UserID: "u1", Email: "b@example.com"}, aggregate.Options{})
	require.NoError(t, err)
	assert.Empty(t, res.Events, "the conflict made it read the stream again: nothing to change")
	assert.Equal(t, "b@example.com", res.User.Email)
	assert.Equal(t, int64(2), res.User.Version)
	u, err := other.Load(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, int64(2), u.Version, "no third event")
}

func TestCachedStateRecognisesARecentDuplicate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, _, _ := cachedServices(t)
	opt := aggregate.Options{EventID: "ce_1"}
	_, err := svc.Execute(ctx, aggregate.Update{UserID: "u1", Attributes: aggregate.Attributes{Email: ptr("a@example.com")}}, opt)
	require.NoError(t, err)
	_, err = svc.Execute(ctx, aggregate.Update{UserID: "u1", Attributes: aggregate.Attributes{Email: ptr("a@example.com")}}, opt)
	assert.ErrorIs(t, err, eventstore.ErrDuplicate, "a copy is a duplicate, not a no-op, with the state cached")
}

func TestColdCacheGuessesNewAndCorrectsItself(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cached, other, counting := cachedServices(t)

	// A new user needs no read at all.
	_, err := cached.Execute(ctx, aggregate.Ensure{UserID: "new", Email: "n@example.com"}, aggregate.Options{})
	require.NoError(t, err)
	assert.Zero(t, counting.loads.Load(), "a first login is appended without reading its empty stream")

	// A user the cache does not hold (written by another process, or before a restart).
	_, err = other.Execute(ctx, aggregate.Ensure{UserID: "known", Email: "k@example.com"}, aggregate.Options{})
	require.NoError(t, err)
	res, err := cached.Execute(ctx, aggregate.Ensure{UserID: "known", Email: "k@example.com"}, aggregate.Options{})
	require.NoError(t, err)
	assert.Empty(t, res.Events, "the guess was refused by the store, the stream read: a repeat changes nothing")
	assert.Equal(t, int64(1), counting.loads.Load())

	// A command that would be a refusal or a no-op on a new user is never trusted to the guess.
	_, err = other.Execute(ctx, aggregate.Ensure{UserID: "k2", Email: "k2@example.com"}, aggregate.Options{})
	require.NoError(t, err)
	res, err = cached.Execute(ctx, aggregate.ChangeEmail{UserID: "k2", Email: "k2b@example.com"}, aggregate.Options{})
	require.NoError(t, err, "ChangeEmail on an unknown user would be refused; the user is read instead")
	assert.Len(t, res.Events, 1)
}

// TestCachedStateKeepsEveryStatus: a state decided from the cache has the status the stream says, so an
// inactive user is not taken for an active one (a second deactivation is a no-op, a reactivation is not).
func TestCachedStateKeepsEveryStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, _, counting := cachedServices(t)
	_, err := svc.Execute(ctx, aggregate.Ensure{UserID: "u1", Email: "a@example.com"}, aggregate.Options{})
	require.NoError(t, err)
	res, err := svc.Execute(ctx, aggregate.Deactivate{UserID: "u1"}, aggregate.Options{})
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	loads := counting.loads.Load()

	res, err = svc.Execute(ctx, aggregate.Deactivate{UserID: "u1"}, aggregate.Options{})
	require.NoError(t, err)
	assert.Empty(t, res.Events, "already inactive, as the cache remembers")
	assert.Equal(t, aggregate.StatusInactive, res.User.Status)
	res, err = svc.Execute(ctx, aggregate.Ensure{UserID: "u1", Email: "a@example.com"}, aggregate.Options{})
	require.NoError(t, err)
	assert.Empty(t, res.Events, "a login leaves an inactive user inactive")
	res, err = svc.Execute(ctx, aggregate.Reactivate{UserID: "u1"}, aggregate.Options{})
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	assert.Equal(t, aggregate.TypeUserReactivated, res.Events[0].Type)
	assert.Equal(t, aggregate.StatusActive, res.User.Status)
	assert.Equal(t, loads, counting.loads.Load(), "decided from the cached state")
}
