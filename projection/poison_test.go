package projection_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/projection"
	"github.com/userhook/userhook/stream"
)

// appendUnknown stores an event of a type this build does not know (as a newer release would write) and
// returns its position.
func appendUnknown(t *testing.T, f *fixture, stream string) int64 {
	t.Helper()
	out, err := f.store.Append(context.Background(), stream, 0, eventstore.Event{
		ID: "ev-unknown-" + stream, StreamType: aggregate.StreamType, Type: "user.teleported.v9", Data: []byte(`{}`),
	})
	require.NoError(t, err)
	return out[0].Position
}

// TestPipelinePoisonsUnprocessableMessages: a message that no retry can apply goes to the poison topic, is
// counted, and does not hold back the events after it.
func TestPipelinePoisonsUnprocessableMessages(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	bad := appendUnknown(t, f, "ghost")
	write(t, f.svc, 10, 0, 1)

	var mu sync.Mutex
	var poisoned []int64
	r := &run{tracker: projection.NewTracker(0)}
	r.pubsub = gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, watermill.NopLogger{})
	poisonMsgs, err := r.pubsub.Subscribe(context.Background(), stream.PoisonTopic)
	require.NoError(t, err)
	got := make(chan *message.Message, 1)
	go func() {
		for msg := range poisonMsgs {
			msg.Ack()
			select {
			case got <- msg:
			default:
			}
		}
	}()
	r.users = &projection.Users{Model: f.model, Tracker: r.tracker}
	r.pipeline, err = stream.NewPipeline(stream.PipelineConfig{Store: f.store, Checkpoints: f.model, Publisher: r.pubsub, Subscriber: r.pubsub,
		Durable:  true, // the handler acks only after its commit, as with JetStream
		Handlers: []stream.Handler{{Name: projection.UsersProjection, Handle: r.users.Handle}},
		Poisoned: func(handler string, position int64) {
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, projection.UsersProjection, handler)
			poisoned = append(poisoned, position)
		}})
	require.NoError(t, err)
	require.NoError(t, r.pipeline.Start(context.Background()))
	t.Cleanup(func() { _ = r.close() })

	waitCaughtUp(t, f.store, r.tracker)
	select {
	case msg := <-got:
		events, err := stream.EventsOf(msg)
		require.NoError(t, err)
		assert.Equal(t, "ev-unknown-ghost", events[0].ID, "the message that carried the unknown event")
		assert.Equal(t, projection.UsersProjection, msg.Metadata.Get(middleware.PoisonedHandlerKey))
		assert.Contains(t, msg.Metadata.Get(middleware.ReasonForPoisonedKey), "user.teleported.v9")
	case <-time.After(5 * time.Second):
		t.Fatal("nothing reached the poison topic")
	}
	mu.Lock()
	assert.Equal(t, []int64{bad}, poisoned)
	mu.Unlock()
	assert.Len(t, rows(t, f.model), 10, "every event after the poisoned one applied")
	assert.NoError(t, r.pipeline.Consumer(projection.UsersProjection), "the consumer runs on")
}

// TestBatcherLeavesOutUnprocessableEvents: in process, the batching consumer reports an event it cannot
// apply and applies the rest of its batch.
func TestBatcherLeavesOutUnprocessableEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	write(t, f.svc, 5, 0, 1)
	bad := appendUnknown(t, f, "ghost")
	write(t, f.svc, 10, 1, 2)

	tracker := projection.NewTracker(0)
	users := &projection.Users{Model: f.model, Tracker: tracker}
	var poisoned []int64
	var mu sync.Mutex
	batcher, err := stream.NewBatcher(stream.BatcherConfig{Apply: users.ProjectBatch, Queue: 64,
		Poison: func(e eventstore.Event, err error) {
			mu.Lock()
			defer mu.Unlock()
			assert.ErrorIs(t, err, stream.ErrUnprocessable)
			poisoned = append(poisoned, e.Position)
		}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = batcher.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	events, err := f.store.ReadAll(ctx, 0, 100)
	require.NoError(t, err)
	for _, e := range events {
		msg := message.NewMessage(e.ID, nil)
		stream.WithEvents(msg, []eventstore.Event{e})
		require.NoError(t, batcher.Handle(msg))
	}
	waitCaughtUp(t, f.store, tracker)
	mu.Lock()
	assert.Equal(t, []int64{bad}, poisoned)
	mu.Unlock()
	assert.Len(t, rows(t, f.model), 10, "every event but the unknown one applied")
}
