package projection_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
	evsqlite "github.com/userhook/userhook/eventstore/sqlite"
	"github.com/userhook/userhook/internal/sqlitedb"
	"github.com/userhook/userhook/internal/sqlitedb/sqlitetest"
	"github.com/userhook/userhook/projection"
	projsqlite "github.com/userhook/userhook/projection/sqlite"
	"github.com/userhook/userhook/stream"
)

// fixture is one SQLite database holding both the event store and the users read model, as in production,
// and a command service writing to the store.
type fixture struct {
	db    *sqlitedb.DB
	store *evsqlite.Store
	model *projsqlite.ReadModel
	svc   *aggregate.Service
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	db := sqlitetest.Open(t)
	store, err := evsqlite.New(ctx, db)
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	model, err := projsqlite.New(ctx, db)
	require.NoError(t, err)
	return &fixture{db: db, store: store, model: model, svc: aggregate.NewService(store, nil)}
}

// newModel is a fresh read model in a database of its own, to rebuild beside the fixture's.
func newModel(t *testing.T) *projsqlite.ReadModel {
	t.Helper()
	model, err := projsqlite.New(context.Background(), sqlitetest.Open(t))
	require.NoError(t, err)
	return model
}

const (
	testUsers    = 50
	stepsPerUser = 4
)

func userID(i int) string { return fmt.Sprintf("user-%02d", i) }

// step is user i's command number s; each raises exactly one event, so n users and k steps store n*k events.
func step(i, s int) aggregate.Command {
	id := userID(i)
	switch s {
	case 0:
		return aggregate.Ensure{UserID: id, Email: fmt.Sprintf("user-%02d@example.com", i)}
	case 1:
		name := fmt.Sprintf("User %d", i)
		return aggregate.Update{UserID: id, Attributes: aggregate.Attributes{Name: &name}}
	case 2:
		return aggregate.Ensure{UserID: id, Email: fmt.Sprintf("Renamed-%02d@Example.com", i)}
	default:
		switch i % 5 {
		case 0:
			return aggregate.Delete{UserID: id}
		case 1:
			return aggregate.Deactivate{UserID: id}
		}
		return aggregate.Update{UserID: id, Attributes: aggregate.Attributes{Profile: map[string]any{"plan": "pro", "seats": i}}}
	}
}

// goWrite runs steps [from, to) of users [0, users) through the service, one goroutine per user so the
// appends of different users interleave; the returned func waits for all of them.
func goWrite(t *testing.T, svc *aggregate.Service, users, from, to int) (wait func()) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := from; s < to; s++ {
				res, err := svc.Execute(context.Background(), step(i, s), aggregate.Options{})
				if assert.NoError(t, err, "user %d step %d", i, s) {
					assert.Len(t, res.Events, 1, "user %d step %d", i, s)
				}
			}
		}()
	}
	return wg.Wait
}

// write is goWrite, waited for.
func write(t *testing.T, svc *aggregate.Service, users, from, to int) {
	t.Helper()
	goWrite(t, svc, users, from, to)()
}

// lastPosition is the store's newest position.
func lastPosition(t *testing.T, store eventstore.Store) int64 {
	t.Helper()
	last, err := store.LastPosition(context.Background())
	require.NoError(t, err)
	return last
}

func checkpoint(t *testing.T, cp stream.Checkpoints, name string) int64 {
	t.Helper()
	pos, err := cp.Checkpoint(context.Background(), name)
	require.NoError(t, err)
	return pos
}

func rows(t *testing.T, model projection.ReadModel) []string {
	t.Helper()
	out, err := model.Rows(context.Background())
	require.NoError(t, err)
	return out
}

// waitCaughtUp waits until the tracker reached the store's last position and returns it.
func waitCaughtUp(t *testing.T, store eventstore.Store, tracker *projection.Tracker) int64 {
	t.Helper()
	last := lastPosition(t, store)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pos, err := tracker.WaitFor(ctx, last)
	require.NoError(t, err, "the projection stopped at position %d of %d", pos, last)
	return last
}

// assertMatchesReplay replays the store into the same read model: Replay replaces every row, so the rows
// must come out byte for byte as the projection left them.
func assertMatchesReplay(t *testing.T, f *fixture) {
	t.Helper()
	projected := rows(t, f.model)
	require.NotEmpty(t, projected)
	sum, err := projection.Replay(context.Background(), f.store, f.model, nil)
	require.NoError(t, err)
	assert.Equal(t, lastPosition(t, f.store), sum.Position)
	assert.Equal(t, projected, rows(t, f.model), "the projected read model differs from the replayed one")
}

// assertVersionsMatchStreams checks that no event was skipped: every user's row is at its stream's length.
func assertVersionsMatchStreams(t *testing.T, f *fixture, users int) {
	t.Helper()
	ctx := context.Background()
	for i := range users {
		events, err := f.store.Load(ctx, userID(i))
		require.NoError(t, err)
		require.NotEmpty(t, events)
		u, err := f.model.Get(ctx, userID(i))
		if !assert.NoError(t, err) {
			continue
		}
		assert.Equal(t, int64(len(events)), u.Version, "version of %s", userID(i))
		assert.Equal(t, events[len(events)-1].Position, u.Position, "position of %s", userID(i))
	}
}

// run is one started pipeline with the users projection on its own GoChannel, as startProjections wires it.
type run struct {
	pipeline *stream.Pipeline
	pubsub   *gochannel.GoChannel
	users    *projection.Users
	tracker  *projection.Tracker
	// firstDelivered is the position of the first message the projection was handed.
	firstDelivered atomic.Int64
	closeOnce      sync.Once
	closeErr       error
}

func startPipeline(t *testing.T, f *fixture) *run {
	t.Helper()
	ctx := context.Background()
	r := &run{
		tracker: projection.NewTracker(checkpoint(t, f.model, projection.UsersProjection)),
		pubsub:  gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, watermill.NopLogger{}),
	}
	r.users = &projection.Users{Model: f.model, Tracker: r.tracker}
	var err error
	r.pipeline, err = stream.NewPipeline(stream.PipelineConfig{Store: f.store, Checkpoints: f.model, Publisher: r.pubsub, Subscriber: r.pubsub,
		Handlers: []stream.Handler{{
			Name: projection.UsersProjection,
			Handle: func(msg *message.Message) error {
				if pos, err := strconv.ParseInt(msg.Metadata.Get("position"), 10, 64); err == nil {
					r.firstDelivered.CompareAndSwap(0, pos)
				}
				return r.users.Handle(msg)
			},
			Checkpoint: func(ctx context.Context) (int64, error) {
				return f.model.Checkpoint(ctx, projection.UsersProjection)
			},
		}}})
	require.NoError(t, err)
	require.NoError(t, r.pipeline.Start(ctx))
	t.Cleanup(func() { _ = r.close() })
	return r
}

func (r *run) close() error {
	r.closeOnce.Do(func() { r.closeErr = errors.Join(r.pipeline.Close(), r.pubsub.Close()) })
	return r.closeErr
}

// userStream stores three events for id (registered, name changed, email changed) and returns them.
func userStream(t *testing.T, f *fixture, id string) []eventstore.Event {
	t.Helper()
	ctx := context.Background()
	name := "Alice"
	for _, cmd := range []aggregate.Command{
		aggregate.Ensure{UserID: id, Email: "alice@example.com"},
		aggregate.Update{UserID: id, Attributes: aggregate.Attributes{Name: &name}},
		aggregate.Ensure{UserID: id, Email: "alice@example.org"},
	} {
		res, err := f.svc.Execute(ctx, cmd, aggregate.Options{})
		require.NoError(t, err)
		require.Len(t, res.Events, 1)
	}
	events, err := f.store.Load(ctx, id)
	require.NoError(t, err)
	require.Len(t, events, 3)
	return events
}

func TestUsersProjectAppliesFirstVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	events := userStream(t, f, "u1")
	users := &projection.Users{Model: f.model, Tracker: projection.NewTracker(0)}

	require.NoError(t, users.Project(ctx, events[0]))

	u, err := f.model.Get(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, "u1", u.ID)
	assert.Equal(t, "alice@example.com", u.Email)
	assert.Equal(t, aggregate.StatusActive, u.Status)
	assert.Equal(t, int64(1), u.Version)
	assert.Equal(t, events[0].Position, u.Position)
	assert.Equal(t, events[0].OccurredAt, u.CreatedAt)
	assert.Equal(t, int64(1), users.Applied())
	assert.Equal(t, events[0].Position, checkpoint(t, f.model, projection.UsersProjection))
	assert.Equal(t, events[0].Position, users.Tracker.Position())
}

func TestUsersProjectSkipsRedelivery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	events := userStream(t, f, "u1")
	users := &projection.Users{Model: f.model, Tracker: projection.NewTracker(0)}

	require.NoError(t, users.Project(ctx, events[0]))
	require.NoError(t, users.Project(ctx, events[1]))
	want := rows(t, f.model)
	cp := checkpoint(t, f.model, projection.UsersProjection)

	// A redelivery of the newest event, and of an older one, is skipped: the row already has its version.
	require.NoError(t, users.Project(ctx, events[1]))
	require.NoError(t, users.Project(ctx, events[0]))

	assert.Equal(t, want, rows(t, f.model), "a repeated event changes nothing")
	assert.Equal(t, int64(2), users.Applied(), "a skipped repeat is not counted")
	assert.Equal(t, cp, checkpoint(t, f.model, projection.UsersProjection))
	u, err := f.model.Get(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, int64(2), u.Version)
	assert.Equal(t, "Alice", u.Name)
}

func TestUsersProjectFailsOnGap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	events := userStream(t, f, "u1")
	users := &projection.Users{Model: f.model, Tracker: projection.NewTracker(0)}
	require.NoError(t, users.Project(ctx, events[0]))
	want := rows(t, f.model)
	cp := checkpoint(t, f.model, projection.UsersProjection)

	err := users.Project(ctx, events[2]) // version 3 on a row at version 1
	require.ErrorIs(t, err, projection.ErrGap)

	assert.Equal(t, want, rows(t, f.model), "a gap leaves the row as it was")
	assert.Equal(t, cp, checkpoint(t, f.model, projection.UsersProjection), "a gap does not advance the checkpoint")
	assert.Equal(t, events[0].Position, users.Tracker.Position(), "a gap does not advance the tracker")
	assert.Equal(t, int64(1), users.Applied())

	// Once the missing event arrives, the redelivered one applies.
	require.NoError(t, users.Project(ctx, events[1]))
	require.NoError(t, users.Project(ctx, events[2]))
	u, err := f.model.Get(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, int64(3), u.Version)
	assert.Equal(t, "alice@example.org", u.Email)
}

func TestUsersHandleFailNext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	events := userStream(t, f, "u1")
	users := &projection.Users{Model: f.model, Tracker: projection.NewTracker(0)}
	users.FailNext.Store(3)

	newMessage := func(e eventstore.Event) *message.Message {
		msg, err := stream.NewMessage(e)
		require.NoError(t, err)
		return msg
	}
	for i := range 3 {
		assert.Error(t, users.Handle(newMessage(events[0])), "delivery %d", i+1)
	}
	_, err := f.model.Get(ctx, "u1")
	assert.ErrorIs(t, err, userhook.ErrNotFound, "an injected failure does not touch the read model")
	assert.Zero(t, checkpoint(t, f.model, projection.UsersProjection))
	assert.Zero(t, users.Applied())

	require.NoError(t, users.Handle(newMessage(events[0])), "the fourth delivery goes through")
	require.NoError(t, users.Handle(newMessage(events[1])), "FailNext is used up")
	assert.Zero(t, users.FailNext.Load())
	assert.Equal(t, int64(2), users.Applied())
	u, err := f.model.Get(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, int64(2), u.Version)
}

func TestPipelineConverges(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := startPipeline(t, f)
	require.NoError(t, r.pipeline.Healthy(context.Background()))

	write(t, f.svc, testUsers, 0, stepsPerUser)

	last := waitCaughtUp(t, f.store, r.tracker)
	require.Equal(t, int64(testUsers*stepsPerUser), last)
	assert.Equal(t, last, r.users.Applied(), "every event applied exactly once")
	assert.Equal(t, last, checkpoint(t, f.model, projection.UsersProjection))
	assert.Equal(t, int64(1), r.firstDelivered.Load())
	assertVersionsMatchStreams(t, f, testUsers)
	assertMatchesReplay(t, f)
}

func TestPipelineConvergesAfterFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		failures int64
	}{
		// Three failures are retried by the Retry middleware (1 attempt + 5 retries) within one delivery.
		{"retried", 3},
		// Eight outlast the six attempts of one delivery: the router nacks and GoChannel redelivers.
		{"nacked and redelivered", 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			r := startPipeline(t, f)

			write(t, f.svc, testUsers, 0, 2)
			_, err := r.tracker.WaitFor(context.Background(), 1)
			require.NoError(t, err)
			r.users.FailNext.Store(tc.failures) // mid-stream: half the events are still to come
			write(t, f.svc, testUsers, 2, stepsPerUser)

			last := waitCaughtUp(t, f.store, r.tracker)
			require.Equal(t, int64(testUsers*stepsPerUser), last)
			assert.Zero(t, r.users.FailNext.Load(), "every injected failure happened")
			assert.Equal(t, last, r.users.Applied(), "every event applied exactly once")
			assertVersionsMatchStreams(t, f, testUsers)
			assertMatchesReplay(t, f)
			assert.NoError(t, r.pipeline.Healthy(context.Background()))
		})
	}
}

func TestPipelineRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	first := startPipeline(t, f)
	write(t, f.svc, testUsers, 0, 2)
	_, err := first.tracker.WaitFor(ctx, 10)
	require.NoError(t, err)

	// Close while the third step of every user is being appended.
	appending := goWrite(t, f.svc, testUsers, 2, 3)
	require.NoError(t, first.close())
	assert.Error(t, first.pipeline.Healthy(ctx), "a closed pipeline is not healthy")
	usersCP := checkpoint(t, f.model, projection.UsersProjection)
	relayCP := checkpoint(t, f.model, stream.RelayCheckpoint)
	// Delivery is in position order and positions have no holes, so the checkpoint counts what was applied.
	assert.Equal(t, first.users.Applied(), usersCP)
	t.Logf("closed at users checkpoint %d, relay checkpoint %d, store at %d", usersCP, relayCP, lastPosition(t, f.store))

	second := startPipeline(t, f)
	assert.Equal(t, usersCP, second.tracker.Position(), "the new tracker starts from the checkpoint")
	appending()
	write(t, f.svc, testUsers, 3, stepsPerUser) // and more after the restart

	last := waitCaughtUp(t, f.store, second.tracker)
	require.Equal(t, int64(testUsers*stepsPerUser), last)
	assert.Equal(t, min(usersCP, relayCP)+1, second.firstDelivered.Load(), "the relay restarts after the lowest checkpoint")
	assert.Equal(t, last, first.users.Applied()+second.users.Applied(), "every event applied exactly once across the restart")
	assertVersionsMatchStreams(t, f, testUsers)
	assertMatchesReplay(t, f)
}

// The relay of a GoChannel pipeline may have saved a checkpoint past events the pub/sub dropped at a close;
// the restart must begin at the lowest checkpoint, the relay's or the projection's, whichever it is.
func TestPipelineStartsFromLowestCheckpoint(t *testing.T) {
	t.Parallel()
	const users = 10
	for _, tc := range []struct {
		name           string
		relay, applied int64
	}{
		{"relay ahead of the projection", users * stepsPerUser, 15},
		{"projection ahead of the relay", 5, 15},
		{"nothing saved", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newFixture(t)
			write(t, f.svc, users, 0, stepsPerUser)
			events, err := f.store.ReadAll(ctx, 0, int(tc.applied))
			require.NoError(t, err)
			earlier := &projection.Users{Model: f.model}
			for _, e := range events {
				require.NoError(t, earlier.Project(ctx, e))
			}
			require.NoError(t, f.model.SaveCheckpoint(ctx, stream.RelayCheckpoint, tc.relay))
			require.Equal(t, tc.applied, checkpoint(t, f.model, projection.UsersProjection))

			r := startPipeline(t, f)
			last := waitCaughtUp(t, f.store, r.tracker)

			assert.Equal(t, min(tc.relay, tc.applied)+1, r.firstDelivered.Load())
			assert.Equal(t, last-tc.applied, r.users.Applied(), "what was applied before is skipped, the rest applied once")
			assertVersionsMatchStreams(t, f, users)
			assertMatchesReplay(t, f)
		})
	}
}

func TestPipelineHealthy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	assert.Error(t, (&stream.Pipeline{}).Healthy(ctx), "a pipeline never started is not healthy")

	r := startPipeline(t, f)
	assert.NoError(t, r.pipeline.Healthy(ctx))
	write(t, f.svc, 3, 0, 1)
	waitCaughtUp(t, f.store, r.tracker)
	assert.NoError(t, r.pipeline.Healthy(ctx), "healthy while running")

	require.NoError(t, r.close())
	assert.Error(t, r.pipeline.Healthy(ctx), "not healthy once closed")
}

func TestPipelineUnhealthyWhenThePubSubGoesAway(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	r := startPipeline(t, f)
	require.NoError(t, r.pipeline.Healthy(ctx))

	require.NoError(t, r.pubsub.Close()) // the router's only subscription ends, and the router stops
	assert.Eventually(t, func() bool { return r.pipeline.Healthy(ctx) != nil }, 5*time.Second, 5*time.Millisecond)
	assert.NoError(t, r.pipeline.Close())
}
