package aggregate_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/eventstore/sqlite"
	"github.com/userhook/userhook/internal/sqlitedb/sqlitetest"
)

// clock is the service's fixed "now" in these tests.
var clock = time.Date(2024, 6, 1, 9, 0, 0, 0, time.UTC)

// newService returns a command service over a fresh SQLite event store in tb's temporary directory.
func newService(tb testing.TB, now func() time.Time) (*aggregate.Service, *sqlite.Store) {
	tb.Helper()
	store, err := sqlite.New(context.Background(), sqlitetest.Open(tb))
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = store.Close() })
	return aggregate.NewService(store, now), store
}

func fixedClock() time.Time { return clock }

func loadStream(t *testing.T, store eventstore.Store, id string) []eventstore.Event {
	t.Helper()
	events, err := store.Load(context.Background(), id)
	require.NoError(t, err)
	return events
}

func TestExecuteEnsure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, store := newService(t, fixedClock)
	cmd := aggregate.Ensure{UserID: "u1", Email: "alice@example.com"}

	first, err := svc.Execute(ctx, cmd, aggregate.Options{})
	require.NoError(t, err)
	require.Len(t, first.Events, 1)
	e := first.Events[0]
	assert.Equal(t, aggregate.TypeUserRegistered, e.Type)
	assert.Equal(t, "u1", e.StreamID)
	assert.Equal(t, aggregate.StreamType, e.StreamType)
	assert.Equal(t, int64(1), e.Version)
	assert.NotEmpty(t, e.ID, "an event without EventID gets a generated id")
	assert.Equal(t, clock, e.OccurredAt, "a command without a time occurs at the service's clock")
	assert.Equal(t, e.Position, first.Position())
	assert.Equal(t, "alice@example.com", first.User.Email)
	assert.Equal(t, aggregate.StatusActive, first.User.Status)
	assert.Equal(t, int64(1), first.User.Version)

	streamed := loadStream(t, store, "u1")
	require.Len(t, streamed, 1)
	assert.Equal(t, e.ID, streamed[0].ID)
	assert.Equal(t, e.Position, streamed[0].Position)

	again, err := svc.Execute(ctx, cmd, aggregate.Options{})
	require.NoError(t, err)
	assert.Empty(t, again.Events, "an identical repeat stores nothing")
	assert.Equal(t, first.Position(), again.Position())
	assert.Len(t, loadStream(t, store, "u1"), 1)
	last, err := store.LastPosition(ctx)
	require.NoError(t, err)
	assert.Equal(t, first.Position(), last)
}

func TestExecuteResultMatchesLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, _ := newService(t, fixedClock)
	cmds := []aggregate.Command{
		aggregate.Register{UserID: "u1", Attributes: aggregate.Attributes{
			Email: ptr("alice@example.com"), Name: ptr("Alice"), Profile: map[string]any{"plan": "free"},
		}, At: minute(1)},
		aggregate.VerifyEmail{UserID: "u1", At: minute(2)},
		aggregate.Update{UserID: "u1", Attributes: aggregate.Attributes{
			Email: ptr("alice@new.example"), Profile: map[string]any{"plan": "pro"},
		}, At: minute(3)},
		aggregate.Delete{UserID: "u1", At: minute(4)},
		aggregate.Ensure{UserID: "u1", Email: "alice@example.com"},
	}
	for i, cmd := range cmds {
		res, err := svc.Execute(ctx, cmd, aggregate.Options{})
		require.NoError(t, err, "command %d", i)
		require.NotEmpty(t, res.Events, "command %d", i)
		loaded, err := svc.Load(ctx, "u1")
		require.NoError(t, err)
		assert.Equal(t, loaded, res.User, "after command %d the result is what a reload gives", i)
	}
	u, err := svc.Load(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, aggregate.User{
		ID: "u1", Email: "alice@example.com", Name: "Alice", Profile: map[string]any{"plan": "pro"},
		Status: aggregate.StatusActive, Version: 7, Position: u.Position, CreatedAt: minute(1), UpdatedAt: clock,
	}, u)
}

func TestExecuteRefusalStoresNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, store := newService(t, fixedClock)
	_, err := svc.Execute(ctx, aggregate.Register{UserID: "u1", Attributes: aliceAttrs, At: minute(5)}, aggregate.Options{})
	require.NoError(t, err)
	_, err = svc.Execute(ctx, aggregate.Delete{UserID: "u1", At: minute(6)}, aggregate.Options{})
	require.NoError(t, err)

	for name, tc := range map[string]struct {
		cmd aggregate.Command
		err error
	}{
		"stale":         {aggregate.Ensure{UserID: "u1", Email: "b@example.com", At: minute(1)}, aggregate.ErrStale},
		"deleted":       {aggregate.Update{UserID: "u1", Attributes: aggregate.Attributes{Name: ptr("B")}, At: minute(7)}, aggregate.ErrUserDeleted},
		"unknown":       {aggregate.ChangeEmail{UserID: "nobody", Email: "b@example.com"}, aggregate.ErrUnknownUser},
		"invalid email": {aggregate.Ensure{UserID: "u1", Email: "nope"}, userhook.ErrInvalid},
	} {
		t.Run(name, func(t *testing.T) {
			res, err := svc.Execute(ctx, tc.cmd, aggregate.Options{EventID: "refused-" + name})
			assert.ErrorIs(t, err, tc.err)
			assert.Empty(t, res.Events)
		})
	}
	assert.Len(t, loadStream(t, store, "u1"), 2)
	assert.Empty(t, loadStream(t, store, "nobody"))
}

func TestExecuteEventID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, store := newService(t, fixedClock)
	opt := aggregate.Options{EventID: "provider-evt-1"}

	res, err := svc.Execute(ctx, aggregate.Ensure{UserID: "u1", Email: "alice@example.com"}, opt)
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	assert.Equal(t, "provider-evt-1", res.Events[0].ID)

	// The same delivery again is recognised in the stream before deciding: a duplicate, not a no-op.
	res, err = svc.Execute(ctx, aggregate.Ensure{UserID: "u1", Email: "alice@example.com"}, opt)
	assert.ErrorIs(t, err, eventstore.ErrDuplicate)
	assert.Empty(t, res.Events)
	assert.Equal(t, int64(1), res.User.Version, "the result still carries the user's state")

	// A command that would raise events under a stored id is refused by the store.
	_, err = svc.Execute(ctx, aggregate.Ensure{UserID: "u1", Email: "alice@new.example"}, opt)
	assert.ErrorIs(t, err, eventstore.ErrDuplicate)
	// The event id is unique across streams, not per stream.
	_, err = svc.Execute(ctx, aggregate.Ensure{UserID: "u2", Email: "bob@example.com"}, opt)
	assert.ErrorIs(t, err, eventstore.ErrDuplicate)

	streamed := loadStream(t, store, "u1")
	require.Len(t, streamed, 1)
	assert.Equal(t, "provider-evt-1", streamed[0].ID)
	assert.Empty(t, loadStream(t, store, "u2"))
}

func TestExecuteEventIDOfSeveralEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, store := newService(t, fixedClock)
	_, err := svc.Execute(ctx, aggregate.Delete{UserID: "u1", At: minute(1)}, aggregate.Options{EventID: "del"})
	require.NoError(t, err)

	res, err := svc.Execute(ctx, aggregate.Register{UserID: "u1", Attributes: aggregate.Attributes{
		Email: ptr("alice@example.com"), EmailVerified: ptr(true), Name: ptr("Alice"),
	}, At: minute(2)}, aggregate.Options{EventID: "evt"})
	require.NoError(t, err)

	var ids, types []string
	for _, e := range res.Events {
		ids = append(ids, e.ID)
		types = append(types, e.Type)
	}
	assert.Equal(t, []string{"evt", "evt/2", "evt/3", "evt/4"}, ids)
	assert.Equal(t, []string{
		aggregate.TypeUserRestored, aggregate.TypeUserEmailChanged,
		aggregate.TypeUserProfileUpdated, aggregate.TypeUserEmailVerified,
	}, types)

	streamed := loadStream(t, store, "u1")
	require.Len(t, streamed, 5)
	for i, e := range streamed {
		assert.Equal(t, int64(i+1), e.Version)
		assert.Equal(t, minute(min(i+1, 2)), e.OccurredAt, "every event of one command occurs at its time")
	}
	assert.Equal(t, streamed[4].Position, res.Position())
	assert.Equal(t, int64(5), res.User.Version)
}

func TestExecuteMetadata(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, store := newService(t, fixedClock)
	meta := map[string]string{"request_id": "req-1", "source": "auth0"}
	_, err := svc.Execute(ctx, aggregate.Ensure{UserID: "u1", Email: "alice@example.com"}, aggregate.Options{Metadata: meta})
	require.NoError(t, err)
	_, err = svc.Execute(ctx, aggregate.Delete{UserID: "u1"}, aggregate.Options{})
	require.NoError(t, err)
	_, err = svc.Execute(ctx, aggregate.Ensure{UserID: "u1", Email: "alice@new.example"}, aggregate.Options{Metadata: meta})
	require.NoError(t, err)

	streamed := loadStream(t, store, "u1")
	require.Len(t, streamed, 4)
	assert.Equal(t, meta, streamed[0].Metadata)
	assert.Empty(t, streamed[1].Metadata)
	assert.Equal(t, meta, streamed[2].Metadata, "every raised event carries the metadata")
	assert.Equal(t, meta, streamed[3].Metadata, "every raised event carries the metadata")
}

func TestExecuteConcurrentEmailChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, store := newService(t, nil)
	const n = 16
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, n)
	results := make([]aggregate.Result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = svc.Execute(ctx,
				aggregate.Ensure{UserID: "shared", Email: fmt.Sprintf("u%d@example.com", i)}, aggregate.Options{})
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "goroutine %d", i)
		assert.Len(t, results[i].Events, 1, "goroutine %d raises exactly one event", i)
	}

	streamed := loadStream(t, store, "shared")
	require.Len(t, streamed, n)
	emails := make(map[string]bool)
	for i, e := range streamed {
		assert.Equal(t, int64(i+1), e.Version, "versions have no gaps")
		if i == 0 {
			assert.Equal(t, aggregate.TypeUserRegistered, e.Type)
		} else {
			assert.Equal(t, aggregate.TypeUserEmailChanged, e.Type)
			assert.Greater(t, e.Position, streamed[i-1].Position)
		}
		de, err := aggregate.Decode(e)
		require.NoError(t, err)
		switch de := de.(type) {
		case aggregate.UserRegistered:
			emails[de.Email] = true
		case aggregate.UserEmailChanged:
			emails[de.Email] = true
		}
	}
	assert.Len(t, emails, n, "every goroutine's email was stored")
	t.Logf("appends including lost races: %d", store.Stats().Appends)
}

func TestExecuteConcurrentIdenticalEnsure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, store := newService(t, nil)
	const n = 20
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, n)
	results := make([]aggregate.Result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = svc.Execute(ctx, aggregate.Ensure{UserID: "fresh", Email: "alice@example.com"}, aggregate.Options{})
		}()
	}
	close(start)
	wg.Wait()

	streamed := loadStream(t, store, "fresh")
	require.Len(t, streamed, 1, "exactly one registration is stored")
	assert.Equal(t, aggregate.TypeUserRegistered, streamed[0].Type)
	writers := 0
	for i := range n {
		require.NoError(t, errs[i], "goroutine %d", i)
		writers += len(results[i].Events)
		assert.Equal(t, streamed[0].Position, results[i].Position(), "goroutine %d sees the stored position", i)
	}
	assert.Equal(t, 1, writers, "exactly one caller stored the event")
	t.Logf("appends including lost races: %d", store.Stats().Appends)
}

func BenchmarkDecide(b *testing.B) {
	data, err := aggregate.Encode(aliceFull)
	require.NoError(b, err)
	u, err := aggregate.Fold(userID, []eventstore.Event{{
		ID: "e1", StreamID: userID, Version: 1, Position: 1, Type: aggregate.TypeUserRegistered, Data: data, OccurredAt: t0,
	}})
	require.NoError(b, err)
	cmd := aggregate.Ensure{UserID: userID, Email: aliceFull.Email, At: minute(1)}
	b.ReportAllocs()
	for b.Loop() {
		raised, err := cmd.Decide(u)
		if err != nil || len(raised) != 0 {
			b.Fatalf("want a no-op, got %v, %v", raised, err)
		}
	}
}

func BenchmarkExecuteEnsureNewUser(b *testing.B) {
	svc, _ := newService(b, nil)
	ctx := context.Background()
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("bench-%d", seq.Add(1))
			res, err := svc.Execute(ctx, aggregate.Ensure{UserID: id, Email: id + "@example.com"}, aggregate.Options{})
			if err != nil || len(res.Events) != 1 {
				b.Errorf("Execute %s: %d events, %v", id, len(res.Events), err)
				return
			}
		}
	})
}
