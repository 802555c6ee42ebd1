package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/nats-io/nats.go"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/apikey"
	"github.com/userhook/userhook/delivery"
	deliverysqlite "github.com/userhook/userhook/delivery/sqlite"
	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/eventstore/sqlite"
	"github.com/userhook/userhook/internal/postgresdb"
	"github.com/userhook/userhook/internal/sqlitedb"
	"github.com/userhook/userhook/metrics"
	"github.com/userhook/userhook/projection"
	projsqlite "github.com/userhook/userhook/projection/sqlite"
	"github.com/userhook/userhook/stream"
	"github.com/userhook/userhook/transport"
)

// storage is the opened database and what lives in it.
type storage struct {
	db     *sqlitedb.DB   // the embedded store, or nil
	pg     *postgresdb.DB // the scale-out store, or nil
	events eventstore.Store
	keys   apikey.Store
	reads  projection.ReadModel
	hooks  delivery.Store
}

func openStorage(ctx context.Context, cfg Config) (*storage, error) {
	if err := cfg.ValidateStorage(); err != nil {
		return nil, err
	}
	if cfg.IsPostgres() {
		return openPostgres(ctx, cfg.Database, cfg.DatabaseTimeout)
	}
	db, err := sqlitedb.Open(cfg.Database)
	if err != nil {
		return nil, err
	}
	events, err := sqlite.New(ctx, db)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	keys, err := apikey.NewSQLiteStore(ctx, db)
	if err != nil {
		_ = events.Close()
		_ = db.Close()
		return nil, err
	}
	reads, err := projsqlite.New(ctx, db)
	if err != nil {
		_ = events.Close()
		_ = db.Close()
		return nil, err
	}
	hooks, err := deliverysqlite.New(ctx, db)
	if err != nil {
		_ = events.Close()
		_ = db.Close()
		return nil, err
	}
	return &storage{db: db, events: events, keys: keys, reads: reads, hooks: hooks}, nil
}

// Close stops the event store and closes the databases.
func (s *storage) Close() error {
	var errs []error
	if s.events != nil {
		errs = append(errs, s.events.Close())
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	if s.pg != nil {
		errs = append(errs, s.pg.Close())
	}
	return errors.Join(errs...)
}

// Main is the whole program, startable from tests without flags: Run starts it and returns once it listens,
// Close stops it gracefully.
type Main struct {
	Config Config
	// Stdout receives the documented output (the --dev credentials); Stderr the JSON logs.
	Stdout io.Writer
	Stderr io.Writer
	// UnbufferedLogs writes every log line at once instead of every 100 ms (tests read the log right away).
	UnbufferedLogs bool
	// Now is the clock that stamps events whose provider sent no time (time.Now when nil); golden tests fix it.
	Now func() time.Time

	log      *slog.Logger
	storage  *storage
	listener net.Listener
	http     *http.Server
	served   chan error
	cancel   context.CancelFunc

	metrics *metrics.Metrics
	tracker *projection.Tracker
	// lag judges whether each consumer keeps up, for /readyz.
	lag *stream.LagWatch
	// natsHealth is a connection of its own to NATS, for /readyz (nil in process).
	natsHealth *nats.Conn
	users      *projection.Users
	pipeline   *stream.Pipeline
	sender     *delivery.Sender
	// stopSender ends the delivery sender and waits for attempts in flight.
	stopSender func()
	closers    []func() error

	logs *logWriter

	closeOnce sync.Once
	closeErr  error

	// DevKey and DevToken are the generated credentials of a --dev run.
	DevKey   string
	DevToken string
}

// Addr is the address the server listens on, once Run returned.
func (m *Main) Addr() string { return m.listener.Addr().String() }

// URL is the server's base URL, with a loopback host when it listens on all interfaces.
func (m *Main) URL() string {
	host, port, _ := net.SplitHostPort(m.Addr())
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// Run validates the configuration, opens the database, and starts serving.
func (m *Main) Run(ctx context.Context) (err error) {
	if m.Stdout == nil {
		m.Stdout = io.Discard
	}
	if m.Stderr == nil {
		m.Stderr = io.Discard
	}
	cfg := m.Config
	if err := cfg.Validate(); err != nil {
		return err
	}
	if m.UnbufferedLogs {
		m.log = newLogger(m.Stderr, cfg.LogLevel)
	} else {
		m.logs = newLogWriter(m.Stderr, 100*time.Millisecond)
		m.log = newLogger(m.logs, cfg.LogLevel)
	}
	ctx, m.cancel = context.WithCancel(ctx)
	defer func() {
		if err != nil {
			_ = m.Close()
		}
	}()

	if cfg.Dev {
		if cfg.JWTSecret == "" && cfg.JWKSURL == "" {
			cfg.JWTSecret = randomSecret()
		}
		plain, _, err := apikey.Generate()
		if err != nil {
			return err
		}
		m.DevKey = plain
		if cfg.APIKeys != "" {
			cfg.APIKeys += ","
		}
		cfg.APIKeys += plain + ":admin"
	}

	m.storage, err = openStorage(ctx, cfg)
	if err != nil {
		return err
	}
	bootstrap, _ := apikey.ParseBootstrap(cfg.APIKeys)
	verifier, err := transport.NewJWTVerifier(ctx, transport.JWTConfig{
		Secret:   []byte(cfg.JWTSecret),
		JWKSURL:  cfg.JWKSURL,
		Issuer:   cfg.JWTIssuer,
		Audience: cfg.JWTAudience,
		Leeway:   30 * time.Second,
	})
	if err != nil {
		return err
	}
	m.metrics = metrics.New(metrics.Sources{Positions: m.positions, Pending: m.storage.hooks.Pending,
		OldestDue: func(ctx context.Context) (time.Time, error) { return m.storage.hooks.OldestDue(ctx, time.Now()) }})
	m.metrics.Declare(metrics.Known{
		Outcomes: outcomeNames(),
		Handlers: []string{projection.UsersProjection, delivery.ConsumerName},
	})
	if err := m.startProjections(ctx); err != nil {
		return err
	}
	secrets, _ := parseWebhookSecrets(cfg.WebhookSecrets)
	receipts, _ := m.storage.events.(eventstore.Receipts)
	ingestLimit, _ := transport.ParseRateLimit(cfg.RateLimitIngest)
	readLimit, _ := transport.ParseRateLimit(cfg.RateLimitRead)
	server := transport.NewServer(transport.Deps{
		Metrics:      m.metrics,
		IngestLimit:  ingestLimit,
		ReadLimit:    readLimit,
		Users:        m.service(),
		Auth:         &transport.Authenticator{JWT: verifier, Keys: apikey.NewKeyring(bootstrap, m.storage.keys)},
		Logger:       m.log,
		Reads:        m.storage.reads,
		Tracker:      m.tracker,
		Events:       m.storage.events,
		Ready:        m.readiness,
		Inbound:      &transport.WebhookVerifier{Secrets: secrets},
		Webhooks:     m.storage.hooks,
		Sender:       m.sender,
		WebhookGuard: cfg.webhookGuard(),
		Receipts:     receipts,
		// The embedded SQLite store has no network to stall on; PostgreSQL's calls are bounded.
		StoreTimeout: storeTimeout(cfg),
	})

	m.listener, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	m.http = &http.Server{
		Handler:           server.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    transport.ServerMaxHeaderBytes, // transport answers past its own smaller limit, in JSON
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
	}
	if cfg.DebugAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		dbg := &http.Server{Addr: cfg.DebugAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = dbg.ListenAndServe() }()
		m.closers = append(m.closers, dbg.Close)
	}
	m.served = make(chan error, 1)
	srv, ln := m.http, m.listener
	go func() { m.served <- srv.Serve(ln) }()
	m.log.Info("serving", "addr", m.Addr(), "database", redactDatabase(cfg.Database), "dev", cfg.Dev)

	if cfg.Dev {
		m.DevToken, err = transport.SignToken(transport.TokenRequest{
			Secret: []byte(cfg.JWTSecret), Subject: "dev", TTL: 24 * time.Hour,
			Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
		})
		if err != nil {
			return err
		}
		m.printDev()
		if err := m.writeDevEnv(); err != nil {
			m.log.Warn("could not write the development credentials file", "error", err.Error())
		}
	}
	return nil
}

// DevEnvFile is where --dev writes its credentials as shell variables, beside the SQLite database, so a
// second terminal can `. ./data/dev.env` and use them; it is removed on shutdown.
func (m *Main) DevEnvFile() string {
	if m.Config.IsPostgres() {
		return ""
	}
	return filepath.Join(filepath.Dir(m.Config.Database), "dev.env")
}

func (m *Main) writeDevEnv() error {
	path := m.DevEnvFile()
	if path == "" {
		return nil
	}
	body := fmt.Sprintf("# userhook serve --dev credentials; they change at every start\nUSERHOOK_URL=%s\nUSERHOOK_DEV_TOKEN=%s\nUSERHOOK_DEV_KEY=%s\n",
		m.URL(), m.DevToken, m.DevKey)
	return os.WriteFile(path, []byte(body), 0o600)
}

func (m *Main) printDev() {
	fmt.Fprintf(m.Stdout, `userhook is serving on %[1]s with development credentials (they change at every start):

  API key (admin): %[2]s
  Bearer token (HS256, 24h): %[3]s

Create a user:

curl -sS -X POST %[1]s/users \
  -H "Content-Type: application/json" \
  -H "Authorization: Bearer %[3]s" \
  -H "X-API-Key: %[2]s" \
  -d '{"detail":{"data":{"user_name":"user@example.com","user_id":"auth0|abc"}}}'

`, m.URL(), m.DevKey, m.DevToken)
}

// service is the command service; on the embedded store this process is the only writer, so it decides
// from states cached in memory.
func (m *Main) service() *aggregate.Service {
	svc := aggregate.NewService(m.storage.events, m.Now)
	if !m.Config.IsPostgres() {
		svc.CacheStates(m.Config.StateCache)
	}
	return svc
}

// startProjections runs the relay and the consumers of the event stream: on the in-process GoChannel
// (embedded) or on NATS JetStream (scale-out).
func (m *Main) startProjections(ctx context.Context) error {
	pos, err := m.storage.reads.Checkpoint(ctx, projection.UsersProjection)
	if err != nil {
		return err
	}
	m.tracker = projection.NewTracker(pos)
	m.lag = &stream.LagWatch{MaxLag: m.Config.ReadyMaxLag, Stall: m.Config.ReadyStall}
	m.users = &projection.Users{Model: m.storage.reads, Tracker: m.tracker, Store: m.storage.events}
	pcfg := stream.PipelineConfig{Store: m.storage.events, Checkpoints: m.storage.reads, Logger: m.log,
		Poisoned: func(handler string, _ int64) { m.metrics.Poisoned(handler) }}
	if obs, ok := m.storage.events.(eventstore.CommitObserver); ok {
		obs.ObserveCommits(m.metrics.CommitBatch)
	}
	if m.storage.pg != nil {
		// Several instances: one relay between them, and every instance's readers follow every commit.
		pcfg.Lead = leadWithPostgres(m.storage.pg)
		m.users.Committed = m.followReadModel(ctx)
	}

	backoff, _ := parseBackoff(m.Config.DeliveryBackoff)
	m.sender = &delivery.Sender{
		Store:        m.storage.hooks,
		Client:       delivery.NewClient(delivery.Timeout, m.Config.webhookGuard()),
		Backoff:      backoff,
		DisableAfter: m.Config.WebhookDisableAfter,
		Workers:      m.Config.DeliveryWorkers,
		Logger:       m.log.With("component", "delivery"),
		Observe:      func(o delivery.Outcome, took time.Duration) { m.metrics.AttemptDone(string(o), took) },
	}
	consumer := &delivery.Consumer{Store: m.storage.hooks, Events: m.storage.events, Wake: m.sender.Wake}
	usersHandler := stream.Handler{
		Name: projection.UsersProjection,
		Checkpoint: func(ctx context.Context) (int64, error) {
			return m.storage.reads.Checkpoint(ctx, projection.UsersProjection)
		},
	}
	deliveryHandler := stream.Handler{
		Name: delivery.ConsumerName,
		Checkpoint: func(ctx context.Context) (int64, error) {
			return m.storage.hooks.Checkpoint(ctx, delivery.ConsumerName)
		},
	}

	if strings.HasPrefix(m.Config.PubSub, "nats://") {
		// A durable broker: consumers acknowledge only after their transaction committed.
		ns := natsPubSub{url: m.Config.PubSub, namespace: m.Config.NATSNamespace,
			logger: watermill.NewSlogLoggerWithLevelMapping(m.log.With("component", "nats"), map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})}
		pub, err := ns.publisher()
		if err != nil {
			return fmt.Errorf("nats: %w", err)
		}
		m.closers = append(m.closers, pub.Close)
		if m.natsHealth, err = nats.Connect(m.Config.PubSub, nats.Name("userhook-health"), nats.MaxReconnects(-1)); err != nil {
			return fmt.Errorf("nats: %w", err)
		}
		m.closers = append(m.closers, func() error { m.natsHealth.Close(); return nil })
		usersSub, err := ns.subscriber(projection.UsersProjection, 1)
		if err != nil {
			return fmt.Errorf("nats: %w", err)
		}
		deliverySub, err := ns.subscriber(delivery.ConsumerName, 64)
		if err != nil {
			return fmt.Errorf("nats: %w", err)
		}
		m.closers = append(m.closers, usersSub.Close, deliverySub.Close)
		pcfg.Publisher, pcfg.Durable, pcfg.Namespace = pub, true, m.Config.NATSNamespace
		usersHandler.Handle, usersHandler.Subscriber = m.users.Handle, usersSub
		deliveryHandler.Handle, deliveryHandler.Subscriber = consumer.Handle, deliverySub
	} else {
		// In process, Publish blocks until the subscriber acked, which keeps the events in position order;
		// the consumers acknowledge on receipt and commit in batches, and a restart recovers from their
		// checkpoints through the relay, not from the pub/sub.
		wlog := watermill.NewSlogLogger(m.log.With("component", "gochannel"))
		pubsub := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true, PreserveContext: true}, wlog)
		m.closers = append(m.closers, pubsub.Close)
		pcfg.Publisher, pcfg.Subscriber = pubsub, pubsub
		usersBatch, err := stream.NewBatcher(stream.BatcherConfig{Apply: m.users.ProjectBatch,
			Logger: m.log.With("component", projection.UsersProjection),
			Poison: func(eventstore.Event, error) { m.metrics.Poisoned(projection.UsersProjection) }})
		if err != nil {
			return err
		}
		deliveryBatch, err := stream.NewBatcher(stream.BatcherConfig{Apply: consumer.ConsumeBatch,
			Logger: m.log.With("component", delivery.ConsumerName),
			Poison: func(eventstore.Event, error) { m.metrics.Poisoned(delivery.ConsumerName) }})
		if err != nil {
			return err
		}
		usersHandler.Handle, usersHandler.Run = usersBatch.Handle, usersBatch.Run
		deliveryHandler.Handle, deliveryHandler.Run = deliveryBatch.Handle, deliveryBatch.Run
	}
	pcfg.Handlers = []stream.Handler{usersHandler, deliveryHandler}
	if m.pipeline, err = stream.NewPipeline(pcfg); err != nil {
		return err
	}
	if err := m.pipeline.Start(ctx); err != nil {
		return err
	}
	senderCtx, stopSender := context.WithCancel(ctx)
	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		_ = m.sender.Run(senderCtx)
	}()
	m.stopSender = func() { stopSender(); <-senderDone }
	return nil
}

// positions are how far the store, the relay and each consumer are.
func (m *Main) positions(ctx context.Context) (map[string]int64, error) {
	last, err := m.storage.events.LastPosition(ctx)
	if err != nil {
		return nil, err
	}
	deliveries, err := m.storage.hooks.Checkpoint(ctx, delivery.ConsumerName)
	if err != nil {
		return nil, err
	}
	return map[string]int64{
		"store":                    last,
		"relay":                    m.pipeline.Relay().Position(),
		projection.UsersProjection: m.tracker.Position(),
		delivery.ConsumerName:      deliveries,
	}, nil
}

// Wait blocks until the server stops on its own (an error) or ctx ends.
func (m *Main) Wait(ctx context.Context) error {
	select {
	case err := <-m.served:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
		return nil
	}
}

// Close stops accepting, lets requests in flight finish, then closes the store (which commits every queued
// append first) and the database.
func (m *Main) Close() error {
	m.closeOnce.Do(func() { m.closeErr = m.close() })
	return m.closeErr
}

func (m *Main) close() error {
	var errs []error
	if m.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
		if err := m.http.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
		m.http = nil
	}
	if m.stopSender != nil {
		m.stopSender()
		m.stopSender = nil
	}
	if m.pipeline != nil {
		errs = append(errs, m.pipeline.Close())
		m.pipeline = nil
	}
	for _, c := range m.closers {
		errs = append(errs, c())
	}
	m.closers = nil
	if m.cancel != nil {
		m.cancel()
	}
	if m.DevKey != "" {
		if path := m.DevEnvFile(); path != "" {
			_ = os.Remove(path)
		}
	}
	if m.storage != nil {
		errs = append(errs, m.storage.Close())
		m.storage = nil
	}
	if m.logs != nil {
		_ = m.logs.Close()
	}
	return errors.Join(errs...)
}

func outcomeNames() []string {
	names := make([]string, len(delivery.Outcomes))
	for i, o := range delivery.Outcomes {
		names[i] = string(o)
	}
	return names
}

func storeTimeout(cfg Config) time.Duration {
	if cfg.IsPostgres() {
		return cfg.DatabaseTimeout
	}
	return 0
}

func randomSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// redactDatabase drops passwords from a database URL before it is logged: the userinfo's and a password
// parameter's (pgx accepts both).
func redactDatabase(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		if strings.Contains(s, "://") {
			return "(unparsable database URL)"
		}
		return s // a file path
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "***")
		}
	}
	q := u.Query()
	for k := range q {
		if strings.EqualFold(k, "password") {
			q.Set(k, "***")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}
