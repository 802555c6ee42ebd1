package main

import (
	"context"
	"fmt"
	"strconv"
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
)

// openPostgres opens the scale-out storage: events, API keys, the read model and the webhook tables, all on
// one PostgreSQL database that several instances share.
func openPostgres(ctx context.Context, url string, timeout time.Duration) (_ *storage, err error) {
	// st is closed on failure through its own variable: the named result is nil by then, and closing that
	// panicked instead of reporting why the database could not be opened.
	st := &storage{}
	defer func() {
		if err != nil {
			_ = st.Close()
		}
	}()
	if st.pg, err = postgresdb.Open(ctx, url, timeout); err != nil {
		return nil, fmt.Errorf("cannot open the database %s: %w", redactDatabase(url), err)
	}
	events, err := eventspg.New(ctx, st.pg)
	if err != nil {
		return nil, err
	}
	st.events = events
	if st.keys, err = apikeypg.New(ctx, st.pg); err != nil {
		return nil, err
	}
	if st.reads, err = projpg.New(ctx, st.pg); err != nil {
		return nil, err
	}
	if st.hooks, err = deliverypg.New(ctx, st.pg); err != nil {
		return nil, err
	}
	return st, nil
}

// relayLock is the session advisory lock whose holder runs the relay.
const relayLock = 0x75687265 // "uhre"

// leadWithPostgres blocks until this instance holds the relay lock on a connection of its own, and returns a
// context that ends when that connection (and with it the lock) is lost, so another instance takes over.
func leadWithPostgres(db *postgresdb.DB) func(ctx context.Context) (context.Context, error) {
	return func(ctx context.Context) (context.Context, error) {
		conn, err := db.Pool.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		for {
			var got bool
			if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, relayLock).Scan(&got); err != nil {
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
					_, _ = conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, relayLock)
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
}

// readModelChannel announces the users projection's commits to every instance's readers.
const readModelChannel = "userhook_readmodel"

// followReadModel advances the tracker from the projection commits of every instance (LISTEN), and once from
// the saved checkpoint; the returned function announces this instance's commits (NOTIFY).
func (m *Main) followReadModel(ctx context.Context) func(ctx context.Context, position int64) {
	db, reads, tracker := m.storage.pg, m.storage.reads, m.tracker
	ctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	m.closers = append(m.closers, func() error { stop(); <-done; return nil })
	go func() {
		defer close(done)
		pause := retry.Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second}
		for ctx.Err() == nil {
			if pos, err := reads.Checkpoint(ctx, projection.UsersProjection); err == nil {
				tracker.Advance(pos)
			}
			err := func() error {
				conn, err := db.Pool.Acquire(ctx)
				if err != nil {
					return err
				}
				defer conn.Release()
				if _, err := conn.Exec(ctx, "LISTEN "+readModelChannel); err != nil {
					return err
				}
				for {
					n, err := conn.Conn().WaitForNotification(ctx)
					if err != nil {
						return err
					}
					if pos, err := strconv.ParseInt(n.Payload, 10, 64); err == nil {
						tracker.Advance(pos)
					}
				}
			}()
			if err != nil && ctx.Err() == nil {
				m.log.Warn("following the read model failed, retrying", "error", err.Error())
				pause.Wait(ctx)
			}
		}
	}()
	return func(ctx context.Context, position int64) {
		if _, err := db.Pool.Exec(ctx, `SELECT pg_notify($1, $2)`, readModelChannel, strconv.FormatInt(position, 10)); err != nil {
			m.log.Warn("announcing a read-model commit failed", "error", err.Error())
		}
	}
}

// natsPubSub connects Watermill to NATS JetStream: the publisher de-duplicates on the message id (the event
// id), and each consumer is a durable queue subscription named after its handler, shared by every instance,
// so each event reaches each consumer once across all of them. maxAckPending 1 keeps a consumer's events in
// stream (position) order across instances.
type natsPubSub struct {
	url       string
	namespace string
	logger    watermill.LoggerAdapter
}

func (n natsPubSub) publisher() (message.Publisher, error) {
	return wmnats.NewPublisher(wmnats.PublisherConfig{
		URL:         n.url,
		NatsOptions: []nats.Option{nats.Name("userhook-relay"), nats.MaxReconnects(-1)},
		Marshaler:   &wmnats.NATSMarshaler{},
		JetStream:   wmnats.JetStreamConfig{AutoProvision: true, TrackMsgId: true},
	}, n.logger)
}

func (n natsPubSub) subscriber(handler string, maxAckPending int) (message.Subscriber, error) {
	durable := n.namespace + handler
	return wmnats.NewSubscriber(wmnats.SubscriberConfig{
		URL:              n.url,
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
	}, n.logger)
}
