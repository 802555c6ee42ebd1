package main

import (
	"context"
	"errors"
	"fmt"
	sourcepg "github.com/userhook/userhook/source/postgres"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"

	apikeypg "github.com/userhook/userhook/apikey/postgres"
	deliverypg "github.com/userhook/userhook/delivery/postgres"
	eventspg "github.com/userhook/userhook/eventstore/postgres"
	"github.com/userhook/userhook/internal/postgresdb"
	"github.com/userhook/userhook/internal/retry"
	"github.com/userhook/userhook/projection"
	projpg "github.com/userhook/userhook/projection/postgres"
	"github.com/userhook/userhook/stream"
)

// postgresBackend is the scale-out database: one PostgreSQL database that several instances share.
type postgresBackend struct {
	storage
	db      *postgresdb.DB
	timeout time.Duration
}

// openPostgres opens the scale-out storage: events, API keys, the read model and the webhook tables, all on
// one PostgreSQL database that several instances share.
func openPostgres(ctx context.Context, url string, timeout time.Duration) (_ *postgresBackend, err error) {
	// b is closed on failure through its own variable: the named result is nil by then, and closing that
	// panicked instead of reporting why the database could not be opened.
	b := &postgresBackend{timeout: timeout}
	defer func() {
		if err != nil {
			_ = b.Close()
		}
	}()
	if b.db, err = postgresdb.Open(ctx, url, timeout); err != nil {
		return nil, fmt.Errorf("cannot open the database %s: %w", redactDatabase(url), err)
	}
	events, err := eventspg.New(ctx, b.db)
	if err != nil {
		return nil, err
	}
	b.events = events // only once it is one: a nil *eventspg.Store in the interface would not be nil to Close
	if b.keys, err = apikeypg.New(ctx, b.db); err != nil {
		return nil, err
	}
	reads, err := projpg.New(ctx, b.db)
	if err != nil {
		return nil, err
	}
	reads.AnnounceCommits(readModelChannel)
	b.reads = reads
	if b.hooks, err = deliverypg.New(ctx, b.db); err != nil {
		return nil, err
	}
	if b.sources, err = sourcepg.New(ctx, b.db); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *postgresBackend) Storage() *storage { return &b.storage }

// Peers is the backend itself: the database's advisory locks and notifications coordinate the instances.
func (b *postgresBackend) Peers() peers { return b }

// DevEnvFile is nowhere: there is no data directory beside a database URL.
func (b *postgresBackend) DevEnvFile() string { return "" }

// StoreTimeout is the configured deadline of a PostgreSQL call.
func (b *postgresBackend) StoreTimeout() time.Duration { return b.timeout }

func (b *postgresBackend) Close() error {
	if b.db == nil {
		return nil
	}
	return b.storage.close(b.db)
}

// relayLock names the session advisory lock whose holder runs the relay (postgresdb.DB.Lock).
const relayLock = "relay"

// Lead blocks until this instance holds the relay lock on a connection of its own, and returns a context
// that ends when that connection (and with it the lock) is lost, so another instance takes over.
func (b *postgresBackend) Lead(ctx context.Context) (context.Context, error) {
	conn, err := b.db.Pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	for {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, b.db.Lock(relayLock)).Scan(&got); err != nil {
			conn.Release()
			return nil, err
		}
		if got {
			break
		}
		// Another instance leads: look again every half second.
		if !retry.Sleep(ctx, 500*time.Millisecond) {
			conn.Release()
			return nil, ctx.Err()
		}
	}
	leading, stop := context.WithCancel(ctx)
	go func() {
		defer conn.Release()
		defer stop()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-leading.Done():
				_, _ = conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, b.db.Lock(relayLock))
				return
			case <-t.C:
				if err := conn.Ping(leading); err != nil {
					conn.Conn().Close(context.Background()) //nolint:errcheck // the lock goes with the connection
					return
				}
			}
		}
	}()
	return leading, nil
}

// readModelChannel announces the users projection's commits to every instance's readers.
const readModelChannel = "userhook_readmodel"

// Follow advances tracker from the projection commits of every instance (LISTEN on the channel the read
// model NOTIFYs in each commit), and once from the saved checkpoint.
func (b *postgresBackend) Follow(ctx context.Context, tracker *projection.Tracker, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Once listening, the saved checkpoint covers whatever was announced before.
		caughtUp := func(ctx context.Context) {
			if pos, err := b.reads.Checkpoint(ctx, projection.UsersProjection); err == nil {
				tracker.Advance(pos)
			}
		}
		b.db.Listen(ctx, b.db.Channel(readModelChannel), log, caughtUp, func(payload string) {
			if pos, err := strconv.ParseInt(payload, 10, 64); err == nil {
				tracker.Advance(pos)
			}
		})
	}()
	return func() { cancel(); <-done }
}

// relayLinger is how long the relay lets commits gather before it publishes on JetStream, where every message
// costs a broker round trip and a transaction in each consumer.
const relayLinger = 10 * time.Millisecond

// natsBus is NATS JetStream: the publisher de-duplicates on the message id (the event id), and each
// consumer is a durable queue subscription named after it, shared by every instance, so each event reaches
// each consumer once across all of them; a consumer acknowledges an event only once its transaction
// committed.
type natsBus struct {
	url       string
	namespace string
	logger    watermill.LoggerAdapter
	publisher message.Publisher
	// health is a connection of its own, for /readyz.
	health      *nats.Conn
	subscribers []message.Subscriber
}

func openNATS(url, namespace string, log *slog.Logger) (_ *natsBus, err error) {
	b := &natsBus{url: url, namespace: namespace,
		logger: watermill.NewSlogLoggerWithLevelMapping(log.With("component", "nats"), map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})}
	defer func() {
		if err != nil {
			_ = b.Close()
			err = fmt.Errorf("nats: %w", err)
		}
	}()
	if b.health, err = nats.Connect(url, nats.Name("userhook-health"), nats.MaxReconnects(-1)); err != nil {
		return nil, err
	}
	js, err := b.health.JetStream()
	if err != nil {
		return nil, err
	}
	// Watermill's publisher would look the stream up before every publish (AutoProvision); the streams are
	// made once instead, the first time a topic is published to.
	publisher, err := wmnats.NewPublisher(wmnats.PublisherConfig{
		URL:         url,
		NatsOptions: []nats.Option{nats.Name("userhook-relay"), nats.MaxReconnects(-1)},
		Marshaler:   &wmnats.NATSMarshaler{},
		JetStream:   wmnats.JetStreamConfig{AutoProvision: false, TrackMsgId: true},
	}, b.logger)
	if err != nil {
		return nil, err
	}
	b.publisher = &provisioningPublisher{Publisher: publisher, js: js, made: map[string]bool{}}
	return b, nil
}

// Pipeline runs each consumer on a durable subscription of its own, handing out c.inFlight of its events at
// once over all instances.
func (b *natsBus) Pipeline(cfg stream.PipelineConfig, consumers ...consumer) (*stream.Pipeline, error) {
	cfg.Publisher, cfg.Durable, cfg.Namespace = b.publisher, true, b.namespace
	cfg.Linger = relayLinger
	for _, c := range consumers {
		sub, err := b.subscriber(c.name, c.inFlight)
		if err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
		b.subscribers = append(b.subscribers, sub)
		cfg.Handlers = append(cfg.Handlers, stream.Handler{Name: c.name, Checkpoint: c.checkpoint, Handle: c.handle, Subscriber: sub})
	}
	return stream.NewPipeline(cfg)
}

func (b *natsBus) subscriber(handler string, maxAckPending int) (message.Subscriber, error) {
	durable := b.namespace + handler
	return wmnats.NewSubscriber(wmnats.SubscriberConfig{
		URL:              b.url,
		QueueGroupPrefix: durable,
		SubscribersCount: 1,
		AckWaitTimeout:   30 * time.Second,
		CloseTimeout:     10 * time.Second,
		NatsOptions:      []nats.Option{nats.Name("userhook-" + handler), nats.MaxReconnects(-1)},
		Unmarshaler:      &wmnats.NATSMarshaler{},
		JetStream: wmnats.JetStreamConfig{
			AutoProvision: true,
			DurablePrefix: durable,
			SubscribeOptions: []nats.SubOpt{
				nats.DeliverAll(), nats.AckExplicit(), nats.MaxAckPending(maxAckPending),
			},
		},
	}, b.logger)
}

// Reachable makes a round trip to JetStream.
func (b *natsBus) Reachable(ctx context.Context) error {
	if !b.health.IsConnected() {
		return shown{"NATS is not connected", nil}
	}
	js, err := b.health.JetStream()
	if err != nil {
		return shown{"JetStream is not available", err}
	}
	if _, err := js.AccountInfo(nats.Context(ctx)); err != nil {
		return shown{"JetStream does not answer", err}
	}
	return nil
}

func (b *natsBus) Close() error {
	var errs []error
	if b.publisher != nil {
		errs = append(errs, b.publisher.Close())
	}
	if b.health != nil {
		b.health.Close()
	}
	for _, sub := range b.subscribers {
		errs = append(errs, sub.Close())
	}
	return errors.Join(errs...)
}

// provisioningPublisher makes a topic's JetStream stream (as Watermill's AutoProvision does: the stream named
// after the topic, on the topic's subject) the first time the topic is published to, and again after a publish
// failed (the stream may have been deleted), rather than looking it up before every publish.
type provisioningPublisher struct {
	message.Publisher
	js   nats.JetStreamContext
	mu   sync.Mutex
	made map[string]bool // topics: the server's own, a fixed few
}

func (p *provisioningPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	made := p.made[topic]
	p.mu.Unlock()
	if !made {
		if _, err := p.js.StreamInfo(topic); err != nil {
			if _, err := p.js.AddStream(&nats.StreamConfig{Name: topic, Subjects: []string{topic}}); err != nil && !errors.Is(err, nats.ErrStreamNameAlreadyInUse) {
				return err
			}
		}
		p.mu.Lock()
		p.made[topic] = true
		p.mu.Unlock()
	}
	err := p.Publisher.Publish(topic, msgs...)
	if err != nil {
		p.mu.Lock()
		delete(p.made, topic)
		p.mu.Unlock()
	}
	return err
}
