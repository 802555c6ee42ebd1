package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/internal/retry"
)

// Batcher lets a consumer apply many events in one transaction over a pub/sub that hands out one message at
// a time. Handle acknowledges a message as soon as its event is queued; Run applies the queue in batches, each
// in one transaction with the consumer's checkpoint.
//
// Acknowledging before the commit is safe only where the event store, not the broker, is what a restart
// recovers from: with the in-process GoChannel the relay restarts from the lowest consumer checkpoint, so an
// event acked but not yet committed before a crash is published again. With a durable broker (JetStream)
// use the consumer's synchronous handler instead.
type Batcher struct {
	cfg   BatcherConfig
	queue chan eventstore.Event
	done  chan struct{} // closed when Run returns: Handle must not wait for a queue nobody reads
}

// BatcherConfig is what a Batcher applies and how much it holds.
type BatcherConfig struct {
	// Apply applies events (in position order) and the checkpoint in one transaction.
	Apply func(ctx context.Context, events []eventstore.Event) error
	// Queue is how many events wait for Apply; a full queue holds the publisher back (4096 when zero).
	Queue int
	// Max bounds a batch (512 when zero).
	Max    int
	Logger *slog.Logger
	// Poison, when set, is told of every event that cannot be applied (ErrUnprocessable), which is then left
	// out so that the events after it are applied; other failures are retried until they pass.
	Poison func(e eventstore.Event, err error)
}

func (c *BatcherConfig) setDefaults() {
	if c.Queue <= 0 {
		c.Queue = 4096
	}
	if c.Max <= 0 {
		c.Max = 512
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports what is missing.
func (c BatcherConfig) Validate() error {
	if c.Apply == nil {
		return errors.New("stream: the batcher has nothing to apply events with")
	}
	return nil
}

var errBatcherStopped = errors.New("stream: the batcher stopped")

// NewBatcher checks cfg and returns a batcher ready to Run.
func NewBatcher(cfg BatcherConfig) (*Batcher, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Batcher{cfg: cfg, queue: make(chan eventstore.Event, cfg.Queue), done: make(chan struct{})}, nil
}

// Handle is the Watermill handler: it queues the message's events.
func (b *Batcher) Handle(msg *message.Message) error {
	events, err := EventsOf(msg)
	if err != nil {
		return err
	}
	for _, e := range events {
		select {
		case b.queue <- e:
		case <-msg.Context().Done():
			return msg.Context().Err()
		case <-b.done:
			return errBatcherStopped
		}
	}
	return nil
}

// Run applies queued events until ctx ends. A failed batch is tried again, after a pause, until it commits:
// nothing queued is dropped while the process lives.
func (b *Batcher) Run(ctx context.Context) error {
	defer close(b.done)
	batch := make([]eventstore.Event, 0, b.cfg.Max)
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-b.queue:
			batch = append(batch[:0], e)
		}
	drain:
		for len(batch) < b.cfg.Max {
			select {
			case e := <-b.queue:
				batch = append(batch, e)
			default:
				break drain
			}
		}
		pause := retry.Backoff{Initial: 10 * time.Millisecond, Max: 5 * time.Second}
		for {
			err := b.cfg.Apply(ctx, batch)
			if err == nil {
				break
			}
			if errors.Is(err, ErrUnprocessable) {
				batch = b.leaveOutUnprocessable(ctx, batch)
				if len(batch) == 0 {
					break
				}
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			b.cfg.Logger.Error("applying a batch failed, retrying", "events", len(batch), "first", batch[0].Position, "error", err.Error())
			if !pause.Wait(ctx) {
				return nil
			}
		}
	}
}

// leaveOutUnprocessable tries each event of a failed batch on its own and returns those that are not
// unprocessable; each unprocessable one is logged and reported to Poison. The others are applied again with
// the batch, which skips what is applied already.
func (b *Batcher) leaveOutUnprocessable(ctx context.Context, batch []eventstore.Event) []eventstore.Event {
	return leaveOutUnprocessable(ctx, b.cfg.Apply, batch, b.cfg.Logger, b.cfg.Poison)
}

func leaveOutUnprocessable(ctx context.Context, apply func(context.Context, []eventstore.Event) error,
	batch []eventstore.Event, log *slog.Logger, poison func(eventstore.Event, error)) []eventstore.Event {
	keep := batch[:0:0]
	for _, e := range batch {
		err := apply(ctx, []eventstore.Event{e})
		if errors.Is(err, ErrUnprocessable) {
			log.Error("an event cannot be applied and is left out", "event", e.ID, "position", e.Position,
				"type", e.Type, "error", err.Error())
			if poison != nil {
				poison(e, err)
			}
			continue
		}
		keep = append(keep, e)
	}
	return keep
}

// Durable is the handler of a consumer on a broker that redelivers what was not acknowledged (JetStream): it
// applies the message's events in one transaction, with apply, and returns (acknowledging the message) only
// once they committed. Any failure fails the message, which is retried and redelivered; when some of its
// events cannot be applied at all (ErrUnprocessable), the others are applied first and the message fails with
// ErrUnprocessable, so that after its retries it goes to the poison topic with the reason.
func Durable(apply func(ctx context.Context, events []eventstore.Event) error) message.NoPublishHandlerFunc {
	quiet := slog.New(slog.DiscardHandler) // the poison queue logs the message once
	return func(msg *message.Message) error {
		events, err := EventsOf(msg)
		if err != nil {
			return err
		}
		ctx := msg.Context()
		err = apply(ctx, events)
		if !errors.Is(err, ErrUnprocessable) || len(events) == 1 {
			return err
		}
		var first error
		var firstAt int64
		keep := leaveOutUnprocessable(ctx, apply, events, quiet, func(e eventstore.Event, err error) {
			if first == nil {
				first, firstAt = err, e.Position
			}
		})
		if len(keep) > 0 {
			if err := apply(ctx, keep); err != nil {
				return err
			}
		}
		if first == nil {
			return nil // every event applied on its own
		}
		msg.Metadata.Set(PoisonedPositionKey, strconv.FormatInt(firstAt, 10))
		return fmt.Errorf("%w: %d of the message's %d events cannot be applied; the first, at position %d: %v",
			ErrUnprocessable, len(events)-len(keep), len(events), firstAt, first)
	}
}
