package main

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/stream"
)

// A bus carries the stored events from the relay to their consumers, chosen once by openBus from the pubsub
// setting: Watermill's GoChannel in this process, or NATS JetStream shared by every instance.
type bus interface {
	// Pipeline is the stream pipeline of cfg (the store, the checkpoints, the leadership) publishing on this
	// bus to consumers.
	Pipeline(cfg stream.PipelineConfig, consumers ...consumer) (*stream.Pipeline, error)
	// Reachable says whether the broker answers, for /readyz.
	Reachable(ctx context.Context) error
	Close() error
}

// consumer is one consumer of the event stream, in both of the forms a bus may run it in.
type consumer struct {
	// name is its checkpoint's name.
	name       string
	checkpoint func(ctx context.Context) (int64, error)
	// handle applies one event and the checkpoint in one transaction, for a bus that redelivers what was not
	// acknowledged.
	handle message.NoPublishHandlerFunc
	// applyBatch applies many events and the checkpoint in one transaction, for a bus that keeps nothing.
	applyBatch func(ctx context.Context, events []eventstore.Event) error
	// inFlight is how many of its events a durable broker hands out at once over all instances: 1 keeps them
	// in stream (position) order.
	inFlight int
}

// openBus connects to the NATS JetStream at natsURL, or makes the in-process bus when it is empty.
func openBus(natsURL, namespace string, log *slog.Logger) (bus, error) {
	if natsURL == "" {
		return newChannelBus(log), nil
	}
	b, err := openNATS(natsURL, namespace, log)
	if err != nil {
		return nil, err // not a nil *natsBus in a non-nil bus
	}
	return b, nil
}

// channelBus is Watermill's GoChannel. Publish blocks until the subscriber acked, which keeps the events in
// position order; the consumers acknowledge on receipt and commit in batches, and a restart recovers from
// their checkpoints through the relay, not from the bus, which keeps nothing.
type channelBus struct {
	pubsub *gochannel.GoChannel
}

func newChannelBus(log *slog.Logger) *channelBus {
	wlog := watermill.NewSlogLogger(log.With("component", "gochannel"))
	return &channelBus{gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true, PreserveContext: true}, wlog)}
}

// Pipeline runs each consumer through a stream.Batcher.
func (b *channelBus) Pipeline(cfg stream.PipelineConfig, consumers ...consumer) (*stream.Pipeline, error) {
	cfg.Publisher, cfg.Subscriber = b.pubsub, b.pubsub
	for _, c := range consumers {
		batch, err := stream.NewBatcher(stream.BatcherConfig{Apply: c.applyBatch, Logger: cfg.Logger.With("component", c.name),
			Poison: func(e eventstore.Event, _ error) {
				if cfg.Poisoned != nil {
					cfg.Poisoned(c.name, e.Position)
				}
			}})
		if err != nil {
			return nil, err
		}
		cfg.Handlers = append(cfg.Handlers, stream.Handler{Name: c.name, Checkpoint: c.checkpoint, Handle: batch.Handle, Run: batch.Run})
	}
	return stream.NewPipeline(cfg)
}

// Reachable is always: the bus is in this process.
func (b *channelBus) Reachable(context.Context) error { return nil }

func (b *channelBus) Close() error { return b.pubsub.Close() }
