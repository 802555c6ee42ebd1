package projection_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/projection"
)

// tombstone deletes a user the store has never seen, which stores a lone UserDeleted.
func tombstone(t *testing.T, f *fixture, id string) {
	t.Helper()
	res, err := f.svc.Execute(context.Background(), aggregate.Delete{UserID: id}, aggregate.Options{})
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	require.Equal(t, aggregate.TypeUserDeleted, res.Events[0].Type)
}

func replay(t *testing.T, f *fixture, model projection.ReadModel) projection.Summary {
	t.Helper()
	sum, err := projection.Replay(context.Background(), f.store, model, nil)
	require.NoError(t, err)
	return sum
}

func TestReplayTwiceIsIdentical(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	write(t, f.svc, 10, 0, stepsPerUser)
	tombstone(t, f, "ghost")

	first := replay(t, f, f.model)
	once := rows(t, f.model)
	second := replay(t, f, f.model)
	twice := rows(t, f.model)

	require.Len(t, once, 11)
	assert.Equal(t, once, twice, "a second replay over the same store writes the same bytes")
	first.Elapsed, second.Elapsed = 0, 0
	assert.Equal(t, first, second)
}

func TestReplaySummary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	write(t, f.svc, 10, 0, stepsPerUser)
	tombstone(t, f, "ghost")
	last := lastPosition(t, f.store)
	require.Equal(t, int64(10*stepsPerUser+1), last)

	start := time.Now()
	sum := replay(t, f, f.model)

	assert.Equal(t, int64(10*stepsPerUser+1), sum.Events)
	assert.Equal(t, 11, sum.Users, "the tombstone is a user too")
	assert.Equal(t, last, sum.Position)
	assert.Positive(t, sum.Elapsed)
	assert.LessOrEqual(t, sum.Elapsed, time.Since(start))
	assert.Positive(t, sum.Rate())
	assert.Equal(t, last, checkpoint(t, f.model, projection.UsersProjection), "the checkpoint is where the replay ended")
	all, err := f.model.List(ctx, projection.ListFilter{Limit: 100})
	require.NoError(t, err)
	assert.Len(t, all, 11)
}

func TestReplayProgress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	// More events than one replay page, appended straight to the store in big batches to keep this quick.
	const users, perUser = 21, 500
	at := time.Date(2024, 6, 1, 9, 0, 0, 0, time.UTC)
	for u := range users {
		id := fmt.Sprintf("bulk-%02d", u)
		events := make([]eventstore.Event, perUser)
		for v := range events {
			var de aggregate.Event = aggregate.UserRegistered{Email: id + "@example.com"}
			if v > 0 {
				name := fmt.Sprintf("name %d", v)
				de = aggregate.UserProfileUpdated{Name: &name}
			}
			data, err := aggregate.Encode(de)
			require.NoError(t, err)
			events[v] = eventstore.Event{
				ID: fmt.Sprintf("%s/%d", id, v), StreamType: aggregate.StreamType, Type: de.EventType(),
				Data: data, OccurredAt: at.Add(time.Duration(v) * time.Millisecond),
			}
		}
		_, err := f.store.Append(ctx, id, 0, events...)
		require.NoError(t, err)
	}
	total := lastPosition(t, f.store)
	require.Equal(t, int64(users*perUser), total)
	require.Greater(t, total, int64(projection.ReplayPage))

	type call struct{ done, total int64 }
	var calls []call
	sum, err := projection.Replay(ctx, f.store, f.model, func(done, total int64) {
		calls = append(calls, call{done, total})
	})
	require.NoError(t, err)

	require.GreaterOrEqual(t, len(calls), 2, "one call per page")
	for i, c := range calls {
		assert.Equal(t, total, c.total, "call %d reports the store's last position", i)
		if i > 0 {
			assert.Greater(t, c.done, calls[i-1].done, "call %d", i)
		}
	}
	assert.Equal(t, total, calls[len(calls)-1].done, "the last call reports everything done")
	assert.Equal(t, total, sum.Events)
	assert.Equal(t, users, sum.Users)
	u, err := f.model.Get(ctx, "bulk-07")
	require.NoError(t, err)
	assert.Equal(t, int64(perUser), u.Version)
	assert.Equal(t, fmt.Sprintf("name %d", perUser-1), u.Name)
}

func TestReplayTombstoneOnlyUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	tombstone(t, f, "ghost")

	sum := replay(t, f, f.model)
	assert.Equal(t, 1, sum.Users)

	u, err := f.model.Get(ctx, "ghost")
	require.NoError(t, err)
	assert.Equal(t, aggregate.StatusDeleted, u.Status)
	assert.Equal(t, int64(1), u.Version)
	assert.Empty(t, u.Email)
	assert.True(t, u.CreatedAt.IsZero(), "a tombstone was never created")
	deleted, err := f.model.List(ctx, projection.ListFilter{Status: string(aggregate.StatusDeleted), Limit: 10})
	require.NoError(t, err)
	require.Len(t, deleted, 1)
	assert.Equal(t, "ghost", deleted[0].ID)

	// The projection writes the tombstone the same way.
	projected := newModel(t)
	events, err := f.store.Load(ctx, "ghost")
	require.NoError(t, err)
	require.NoError(t, (&projection.Users{Model: projected}).Project(ctx, events[0]))
	assert.Equal(t, rows(t, f.model), rows(t, projected))
}

func TestReplayMatchesProjection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	write(t, f.svc, 10, 0, stepsPerUser)
	tombstone(t, f, "ghost")
	// A tombstoned user registered later is restored with the attributes.
	res, err := f.svc.Execute(ctx, aggregate.Ensure{UserID: "ghost", Email: "ghost@example.com"}, aggregate.Options{})
	require.NoError(t, err)
	require.Len(t, res.Events, 2)

	events, err := f.store.ReadAll(ctx, 0, 1000)
	require.NoError(t, err)
	users := &projection.Users{Model: f.model}
	for _, e := range events {
		require.NoError(t, users.Project(ctx, e))
	}

	fresh := newModel(t)
	sum := replay(t, f, fresh)
	assert.Equal(t, int64(len(events)), sum.Events)
	assert.Equal(t, rows(t, f.model), rows(t, fresh), "replay into a fresh read model equals the projection")
	assert.Equal(t, checkpoint(t, f.model, projection.UsersProjection), checkpoint(t, fresh, projection.UsersProjection))
}

// TestReplayInactiveUsers: deactivations and reactivations replay to the rows the projection writes, and
// the read model lists an inactive user under inactive alone.
func TestReplayInactiveUsers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	name := "Still Inactive"
	for _, cmd := range []aggregate.Command{
		aggregate.Ensure{UserID: "stays", Email: "stays@example.com"},
		aggregate.Deactivate{UserID: "stays"},
		aggregate.Update{UserID: "stays", Attributes: aggregate.Attributes{Name: &name}},
		aggregate.Ensure{UserID: "back", Email: "back@example.com"},
		aggregate.Deactivate{UserID: "back"},
		aggregate.Reactivate{UserID: "back"},
		aggregate.Ensure{UserID: "gone", Email: "gone@example.com"},
		aggregate.Deactivate{UserID: "gone"},
		aggregate.Delete{UserID: "gone"},
	} {
		res, err := f.svc.Execute(ctx, cmd, aggregate.Options{})
		require.NoError(t, err)
		require.Len(t, res.Events, 1, "%T", cmd)
	}
	events, err := f.store.ReadAll(ctx, 0, 100)
	require.NoError(t, err)
	users := &projection.Users{Model: f.model}
	for _, e := range events {
		require.NoError(t, users.Project(ctx, e))
	}

	fresh := newModel(t)
	replay(t, f, fresh)
	assert.Equal(t, rows(t, f.model), rows(t, fresh), "replay into a fresh read model equals the projection")
	for id, want := range map[string]aggregate.Status{
		"stays": aggregate.StatusInactive, "back": aggregate.StatusActive, "gone": aggregate.StatusDeleted,
	} {
		u, err := fresh.Get(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, want, u.Status, id)
	}
	inactive, err := fresh.List(ctx, projection.ListFilter{Status: string(aggregate.StatusInactive), Limit: 10})
	require.NoError(t, err)
	require.Len(t, inactive, 1)
	assert.Equal(t, "stays", inactive[0].ID)
	assert.Equal(t, "Still Inactive", inactive[0].Name)
}

func TestReplayDropsRowsTheStoreDoesNotHave(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	write(t, f.svc, 3, 0, 2)
	require.NoError(t, f.model.Update(ctx, projection.UsersProjection, 99, "stray", func(u *aggregate.User) (bool, error) {
		u.Email, u.Status, u.Version, u.Position = "stray@example.com", aggregate.StatusActive, 1, 99
		return true, nil
	}))

	replay(t, f, f.model)

	_, err := f.model.Get(ctx, "stray")
	assert.ErrorIs(t, err, userhook.ErrNotFound)
	assert.Len(t, rows(t, f.model), 3)
	assert.Equal(t, lastPosition(t, f.store), checkpoint(t, f.model, projection.UsersProjection), "the checkpoint moves back to the store's end")
}

func TestReplayEmptyStore(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var called bool
	sum, err := projection.Replay(context.Background(), f.store, f.model, func(int64, int64) { called = true })
	require.NoError(t, err)
	assert.Zero(t, sum.Events)
	assert.Zero(t, sum.Users)
	assert.Zero(t, sum.Position)
	assert.False(t, called, "nothing to report")
	assert.Empty(t, rows(t, f.model))
}

// rebuildHook is a read model whose Rebuild first runs before: the moment between the replay's last read of
// the store and the swap of the rebuilt table, widened so the test can act in it.
type rebuildHook struct {
	projection.ReadModel
	before func()
}

func (m rebuildHook) Rebuild(ctx context.Context, name string, position int64, users []aggregate.User) error {
	m.before()
	return m.ReadModel.Rebuild(ctx, name, position, users)
}

// The README says replay "is safe while serve runs: the live projection skips what the replay already
// applied". An event stored after the replay's last read and applied by the live projection before the
// swap must survive the swap.
func TestReplayWhileThePipelineRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	r := startPipeline(t, f)
	const users = 10
	write(t, f.svc, users, 0, 2)
	waitCaughtUp(t, f.store, r.tracker)

	hooked := rebuildHook{ReadModel: f.model, before: func() {
		// A request lands after the replay read the store; the live projection applies it.
		write(t, f.svc, 1, 2, 3)
		waitCaughtUp(t, f.store, r.tracker)
	}}
	_, err := projection.Replay(ctx, f.store, hooked, nil)
	require.NoError(t, err)

	assertVersionsMatchStreams(t, f, users)
	// The next event of the same user must still be applied, not refused as a gap forever.
	write(t, f.svc, 1, 3, 4)
	last := lastPosition(t, f.store)
	wait, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	pos, err := r.tracker.WaitFor(wait, last)
	assert.NoError(t, err, "the live projection is stuck at %d of %d", pos, last)
	assertVersionsMatchStreams(t, f, users)
}
