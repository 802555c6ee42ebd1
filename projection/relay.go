package projection

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/userhook/userhook/eventstore"
)

// Relay publishes the event store to Watermill in position order. It reads after its checkpoint, publishes
// each event, and saves the checkpoint only once the publisher acknowledged (with the in-process GoChannel,
// once every subscriber acked). A crash repeats the last batch; subscribers skip what they already have.
type Relay struct {
	Store       eventstore.Store
	Publisher   message.Publisher
	Checkpoints Checkpoints
	Logger      *slog.Logger
	// Start, when set, picks the first position to publish after instead of the relay's checkpoint. With a
	// pub/sub that keeps nothing (GoChannel) it is the lowest checkpoint of the subscribers, since what was
	// published and not yet applied before a restart is gone from memory.
	Start func(ctx context.Context) (int64, error)
	// Batch is how many events one read takes (256 when zero).
	Batch int
	// Poll is the fallback interval for stores without commit notifications, or written by other processes.
	Poll time.Duration
	// Namespace prefixes the topics published to.
	Namespace string

	position atomic.Int64
	running  atomic.Bool
}

// Position is the position of the last event the relay published.
func (r *Relay) Position() int64 { return r.position.Load() }

// Run publishes until ctx ends. A failed publish is retried after a pause; nothing is skipped.
func (r *Relay) Run(ctx context.Context) error {
	batch := r.Batch
	if batch <= 0 {
		batch = 256
	}
	poll := r.Poll
	if poll <= 0 {
		poll = time.Second
	}
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// The start position is read until it can be: a relay that gave up here would stop the whole pipeline
	// (and, leading, keep others from taking over).
	after, err := r.startPosition(ctx)
	for pause := 100 * time.Millisecond; err != nil; pause = min(2*pause, 5*time.Second) {
		log.Error("relay cannot read where to start, retrying", "error", err.Error())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
		after, err = r.startPosition(ctx)
	}
	r.running.Store(true)
	defer r.running.Store(false)
	r.position.Store(after)
	notifier, _ := r.Store.(eventstore.Notifier)
	for {
		var committed <-chan struct{}
		if notifier != nil {
			committed = notifier.Committed()
		}
		events, err := r.Store.ReadAll(ctx, after, batch)
		if err == nil && len(events) > 0 {
			err = r.publish(events)
		}
		if err == nil && len(events) > 0 {
			last := events[len(events)-1].Position
			if err = r.Checkpoints.SaveCheckpoint(ctx, RelayCheckpoint, last); err == nil {
				after = last
				r.position.Store(after)
				continue
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			log.Error("relay failed, retrying", "after", after, "error", err.Error())
			committed = nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-committed:
		case <-time.After(poll):
		}
	}
}

func (r *Relay) startPosition(ctx context.Context) (int64, error) {
	if r.Start != nil {
		return r.Start(ctx)
	}
	return r.Checkpoints.Checkpoint(ctx, RelayCheckpoint)
}

func (r *Relay) publish(events []eventstore.Event) error {
	for _, e := range events {
		msg, err := NewMessage(e)
		if err != nil {
			return err
		}
		WithEvent(msg, e)
		if err := r.Publisher.Publish(r.Namespace+Topic(e.StreamType), msg); err != nil {
			return errors.Join(errors.New("projection: publish"), err)
		}
	}
	return nil
}
