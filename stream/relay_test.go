package stream_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/eventstore/sqlite"
	"github.com/userhook/userhook/internal/sqlitedb/sqlitetest"
	"github.com/userhook/userhook/stream"
)

// memCheckpoints counts the saves of the relay's checkpoint.
type memCheckpoints struct {
	mu    sync.Mutex
	pos   map[string]int64
	saves int
}

func (m *memCheckpoints) Checkpoint(_ context.Context, name string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pos[name], nil
}

func (m *memCheckpoints) SaveCheckpoint(_ context.Context, name string, position int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pos[name] = max(m.pos[name], position)
	m.saves++
	return nil
}

// TestRelaySavesItsCheckpointSparingly: publishing many reads costs a checkpoint write per SaveEvery, not per
// read, and what was published is saved when the relay stops.
func TestRelaySavesItsCheckpointSparingly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pubsub := newStoreAndBus(t)
	received, err := pubsub.Subscribe(ctx, stream.UsersTopic)
	require.NoError(t, err)
	cps := &memCheckpoints{pos: map[string]int64{}}
	relay, err := stream.NewRelay(stream.RelayConfig{Store: store, Publisher: pubsub, Checkpoints: cps,
		Batch: 5, SaveEvery: time.Hour, Poll: 10 * time.Millisecond})
	require.NoError(t, err)
	stop := runRelay(t, relay)

	var seen int
	for i := range 50 {
		_, err := store.Append(ctx, fmt.Sprintf("u%d", i), 0, eventstore.Event{ID: fmt.Sprintf("e%d", i),
			StreamType: "UserAggregate", Type: "user.registered.v1", Data: []byte(`{}`)})
		require.NoError(t, err)
	}
	for seen < 50 {
		select {
		case msg := <-received:
			events, err := stream.EventsOf(msg)
			require.NoError(t, err)
			seen += len(events)
			msg.Ack()
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of 50 events published", seen)
		}
	}
	assert.Equal(t, int64(50), relay.Position())
	cps.mu.Lock()
	assert.Zero(t, cps.saves, "no save within SaveEvery, however many reads")
	cps.mu.Unlock()
	stop()
	pos, _ := cps.Checkpoint(ctx, stream.RelayCheckpoint)
	assert.Equal(t, int64(50), pos, "saved as the relay stopped")
}

// TestUnprocessableMessageIsNotRetried: a message no retry can process goes to the poison topic after one
// attempt; retrying it would outlast a broker's ack wait and have it redelivered forever.
func TestUnprocessableMessageIsNotRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pubsub := newStoreAndBus(t)
	_, err := store.Append(ctx, "u1", 0, eventstore.Event{ID: "e1", StreamType: "UserAggregate", Type: "user.registered.v1", Data: []byte(`{}`)})
	require.NoError(t, err)
	var mu sync.Mutex
	calls, poisoned := 0, 0
	handle := stream.Durable(func(context.Context, []eventstore.Event) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return fmt.Errorf("%w: a type from a newer release", stream.ErrUnprocessable)
	})
	p, err := stream.NewPipeline(stream.PipelineConfig{Store: store, Checkpoints: &memCheckpoints{pos: map[string]int64{}},
		Publisher: pubsub, Subscriber: pubsub, Durable: true,
		Handlers: []stream.Handler{{Name: "c", Handle: handle}},
		Poisoned: func(string, int64) { mu.Lock(); poisoned++; mu.Unlock() }})
	require.NoError(t, err)
	require.NoError(t, p.Start(ctx))
	t.Cleanup(func() { _ = p.Close() })
	assert.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return poisoned == 1 }, 5*time.Second, 10*time.Millisecond)
	mu.Lock()
	assert.Equal(t, 1, calls, "one attempt, no retries")
	mu.Unlock()
}

// TestRelayLingerGathersCommits: with Linger, commits that land while the relay lingers go out in one message.
func TestRelayLingerGathersCommits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pubsub := newStoreAndBus(t)
	received, err := pubsub.Subscribe(ctx, stream.UsersTopic)
	require.NoError(t, err)
	watched := &firstRead{Store: store, done: make(chan struct{})}
	relay, err := stream.NewRelay(stream.RelayConfig{Store: watched, Publisher: pubsub,
		Checkpoints: &memCheckpoints{pos: map[string]int64{}}, Linger: 300 * time.Millisecond, Poll: time.Hour})
	require.NoError(t, err)
	runRelay(t, relay)
	<-watched.done // the relay read the empty store: it now waits for a commit

	for i := range 3 {
		_, err := store.Append(ctx, fmt.Sprintf("u%d", i), 0, eventstore.Event{ID: fmt.Sprintf("e%d", i),
			StreamType: "UserAggregate", Type: "user.registered.v1", Data: []byte(`{}`)})
		require.NoError(t, err)
	}
	select {
	case msg := <-received:
		events, err := stream.EventsOf(msg)
		require.NoError(t, err)
		assert.Len(t, events, 3, "the three commits in one message")
		msg.Ack()
	case <-time.After(5 * time.Second):
		t.Fatal("nothing published")
	}
}

// firstRead tells when the relay's first read of the store returned.
type firstRead struct {
	eventstore.Store
	once sync.Once
	done chan struct{}
}

func (f *firstRead) ReadAll(ctx context.Context, after int64, limit int) ([]eventstore.Event, error) {
	events, err := f.Store.ReadAll(ctx, after, limit)
	f.once.Do(func() { close(f.done) })
	return events, err
}

// Committed keeps the store's commit notifications visible through the wrapper.
func (f *firstRead) Committed() <-chan struct{} { return f.Store.(eventstore.Notifier).Committed() }

// newStoreAndBus is a SQLite event store and an in-process pub/sub, closed when the test ends.
func newStoreAndBus(t *testing.T) (*sqlite.Store, *gochannel.GoChannel) {
	t.Helper()
	store, err := sqlite.New(context.Background(), sqlitetest.Open(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	pubsub := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	t.Cleanup(func() { _ = pubsub.Close() })
	return store, pubsub
}

// runRelay runs relay until the returned stop (or the test's end) stops it and it returned.
func runRelay(t *testing.T, relay *stream.Relay) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = relay.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// counted counts the relay's reads of the store; hide makes Recent stop short of a position, as when another
// instance committed it.
type counted struct {
	*sqlite.Store
	mu    sync.Mutex
	reads int
	hide  int64
}

func (c *counted) ReadAll(ctx context.Context, after int64, limit int) ([]eventstore.Event, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return c.Store.ReadAll(ctx, after, limit)
}

func (c *counted) Recent(after int64, limit int) ([]eventstore.Event, bool) {
	events, all := c.Store.Recent(after, limit)
	for i, e := range events {
		if e.Position == c.hide {
			return events[:i], false
		}
	}
	return events, all
}

func (c *counted) readCount() int { c.mu.Lock(); defer c.mu.Unlock(); return c.reads }

// TestRelayTakesItsOwnCommitsFromMemory: the relay publishes what its process committed without reading it
// back from the store, and reads the store for a position its process did not commit.
func TestRelayTakesItsOwnCommitsFromMemory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, hide := range []int64{0, 10} {
		store, pubsub := newStoreAndBus(t)
		received, err := pubsub.Subscribe(ctx, stream.UsersTopic)
		require.NoError(t, err)
		watched := &counted{Store: store, hide: hide}
		relay, err := stream.NewRelay(stream.RelayConfig{Store: watched, Publisher: pubsub,
			Checkpoints: &memCheckpoints{pos: map[string]int64{}}, Poll: time.Hour})
		require.NoError(t, err)
		runRelay(t, relay)
		var next int64 = 1
		for i := range 30 {
			_, err := store.Append(ctx, fmt.Sprintf("u%d", i), 0, eventstore.Event{ID: fmt.Sprintf("e%d", i),
				StreamType: "UserAggregate", Type: "user.registered.v1", Data: []byte(`{}`)})
			require.NoError(t, err)
			for next <= int64(i+1) {
				select {
				case msg := <-received:
					events, err := stream.EventsOf(msg)
					require.NoError(t, err)
					for _, e := range events {
						require.Equal(t, next, e.Position, "published in order, each once")
						next++
					}
					msg.Ack()
				case <-time.After(5 * time.Second):
					t.Fatalf("hide %d: position %d not published", hide, next)
				}
			}
		}
		if hide == 0 {
			assert.Zero(t, watched.readCount(), "every event came from memory")
		} else {
			assert.Positive(t, watched.readCount(), "position %d was read from the store", hide)
		}
	}
}
