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
	"strings"
	"sync"
	"time"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/apikey"
	"github.com/userhook/userhook/delivery"
	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/metrics"
	"github.com/userhook/userhook/projection"
	"github.com/userhook/userhook/stream"
	"github.com/userhook/userhook/transport"
)

// Main is the whole program, startable from tests without flags: Run starts it and returns once it listens,
// Close stops it gracefully.
type Main struct {
	Config Config
	// Stdout receives the documented output (the --dev credentials); Stderr the JSON logs.
	Stdout io.Writer
	Stderr io.Writer
	// UnbufferedLogs writes every log line at once instead of every 100 ms (tests read the log right away).
	UnbufferedLogs bool
	// Now is the clock that stamps events whose provider sent no time and that the rate limits fill by
	// (time.Now when nil); golden tests fix it, rate-limit tests move it.
	Now func() time.Time

	log  *slog.Logger
	logs *logWriter

	backend backend
	storage *storage
	metrics *metrics.Metrics
	tracker *projection.Tracker
	// lag judges whether each consumer keeps up, for /readyz.
	lag      *stream.LagWatch
	users    *projection.Users
	bus      bus
	pipeline *stream.Pipeline
	sender   *delivery.Sender
	// stopSender ends the delivery sender and waits for attempts in flight.
	stopSender func()
	listener   net.Listener
	http       *http.Server
	served     chan error
	cancel     context.CancelFunc
	closers    []func() error

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

// Run parses the configuration, opens the database, and starts the program: the command service, the event
// stream with its consumers (the users projection, the webhook deliveries), the delivery sender and the HTTP
// server. It returns once the server listens.
func (m *Main) Run(ctx context.Context) (err error) {
	cfg := m.Config
	settings, err := cfg.Parse()
	if err != nil {
		return fmt.Errorf("cannot serve:\n%w", err)
	}
	m.startLogs(cfg.LogLevel)
	ctx, m.cancel = context.WithCancel(ctx)
	defer func() {
		if err != nil {
			_ = m.Close()
		}
	}()
	if cfg.Dev {
		if err := m.devCredentials(&cfg, &settings); err != nil {
			return err
		}
	}

	if m.backend, err = openBackend(ctx, cfg); err != nil {
		return err
	}
	m.storage = m.backend.Storage()
	m.metrics = m.newMetrics()
	service := m.newService(cfg.StateCache)
	m.sender = m.newSender(cfg, settings)
	if err := m.startStream(ctx, cfg, settings.NATS); err != nil {
		return err
	}
	m.startSender(ctx)
	server, err := m.newServer(ctx, cfg, settings, service)
	if err != nil {
		return err
	}
	if err := m.listen(cfg, server.Handler()); err != nil {
		return err
	}
	if cfg.Dev {
		return m.announceDev(cfg)
	}
	return nil
}

func (m *Main) startLogs(level string) {
	if m.Stdout == nil {
		m.Stdout = io.Discard
	}
	if m.Stderr == nil {
		m.Stderr = io.Discard
	}
	if m.UnbufferedLogs {
		m.log = newLogger(m.Stderr, level)
		return
	}
	m.logs = newLogWriter(m.Stderr, 100*time.Millisecond)
	m.log = newLogger(m.logs, level)
}

func (m *Main) newMetrics() *metrics.Metrics {
	hooks := m.storage.hooks
	mt := metrics.New(metrics.Sources{Positions: m.positions, Pending: hooks.Pending,
		OldestDue: func(ctx context.Context) (time.Time, error) { return hooks.OldestDue(ctx, time.Now()) }})
	mt.Declare(metrics.Known{Outcomes: outcomeNames(), Handlers: consumers})
	if obs, ok := m.storage.events.(eventstore.CommitObserver); ok {
		obs.ObserveCommits(mt.CommitBatch)
	}
	return mt
}

// newService is the command service. On a database that no other instance writes to, it decides from
// states cached in memory; on a shared one it only guesses that a user it has not seen is new.
func (m *Main) newService(stateCache int) *aggregate.Service {
	svc := aggregate.NewService(m.storage.events, m.Now)
	if m.backend.Peers() == nil {
		svc.CacheStates(stateCache)
	} else {
		// Other instances write too: no state is trusted from memory, but a user not seen lately is
		// first assumed new, which the store's unique version corrects.
		svc.GuessNew(stateCache)
	}
	return svc
}

// startStream runs the relay and the consumers of the event stream on the bus: the users projection and the
// webhook deliveries, which hand their work to the sender.
func (m *Main) startStream(ctx context.Context, cfg Config, natsURL string) (err error) {
	pos, err := m.storage.reads.Checkpoint(ctx, projection.UsersProjection)
	if err != nil {
		return err
	}
	m.tracker = projection.NewTracker(pos)
	m.lag = &stream.LagWatch{MaxLag: cfg.ReadyMaxLag, Stall: cfg.ReadyStall}
	m.users = &projection.Users{Model: m.storage.reads, Tracker: m.tracker, Store: m.storage.events}
	pcfg := stream.PipelineConfig{Store: m.storage.events, Checkpoints: m.storage.reads, Logger: m.log,
		Poisoned: func(handler string, _ int64) { m.metrics.Poisoned(handler) }}
	if peers := m.backend.Peers(); peers != nil {
		// Several instances: one relay between them, and every instance's reads follow every commit.
		pcfg.Lead = peers.Lead
		stop := peers.Follow(ctx, m.tracker, m.log)
		m.closers = append(m.closers, func() error { stop(); return nil })
	}
	if m.bus, err = openBus(natsURL, cfg.NATSNamespace, m.log); err != nil {
		return err
	}
	m.closers = append(m.closers, m.bus.Close)

	deliveries := &delivery.Consumer{Store: m.storage.hooks, Events: m.storage.events, Wake: m.sender.Wake}
	reads, hooks := m.storage.reads, m.storage.hooks
	m.pipeline, err = m.bus.Pipeline(pcfg,
		consumer{
			name:       projection.UsersProjection,
			checkpoint: func(ctx context.Context) (int64, error) { return reads.Checkpoint(ctx, projection.UsersProjection) },
			handle:     m.users.Handle,
			applyBatch: m.users.ProjectBatch,
			inFlight:   1, // the projection fails on a gap in a user's versions: position order
		},
		consumer{
			name:       delivery.ConsumerName,
			checkpoint: func(ctx context.Context) (int64, error) { return hooks.Checkpoint(ctx, delivery.ConsumerName) },
			handle:     deliveries.Handle,
			applyBatch: deliveries.ConsumeBatch,
			inFlight:   64,
		})
	if err != nil {
		return err
	}
	return m.pipeline.Start(ctx)
}

func (m *Main) newSender(cfg Config, s Settings) *delivery.Sender {
	return &delivery.Sender{
		Store:        m.storage.hooks,
		Client:       delivery.NewClient(delivery.Timeout, s.WebhookGuard),
		Backoff:      s.DeliveryBackoff,
		DisableAfter: cfg.WebhookDisableAfter,
		Workers:      cfg.DeliveryWorkers,
		Logger:       m.log.With("component", "delivery"),
		Observe:      func(o delivery.Outcome, took time.Duration) { m.metrics.AttemptDone(string(o), took) },
	}
}

// startSender runs the delivery sender until Close.
func (m *Main) startSender(ctx context.Context) {
	ctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.sender.Run(ctx)
	}()
	m.stopSender = func() { stop(); <-done }
}

// newServer is the HTTP API over what Run started.
func (m *Main) newServer(ctx context.Context, cfg Config, s Settings, service *aggregate.Service) (*transport.Server, error) {
	verifier, err := transport.NewJWTVerifier(ctx, transport.JWTConfig{
		Secret:   []byte(cfg.JWTSecret),
		JWKSURL:  cfg.JWKSURL,
		Issuer:   cfg.JWTIssuer,
		Audience: cfg.JWTAudience,
		Leeway:   30 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	receipts, _ := m.storage.events.(eventstore.Receipts)
	return transport.NewServer(transport.Deps{
		Metrics:      m.metrics,
		IngestLimit:  s.IngestLimit,
		ReadLimit:    s.ReadLimit,
		Users:        service,
		Auth:         &transport.Authenticator{JWT: verifier, Keys: apikey.NewKeyring(s.APIKeys, m.storage.keys)},
		Logger:       m.log,
		Reads:        m.storage.reads,
		Tracker:      m.tracker,
		Events:       m.storage.events,
		Ready:        m.readiness,
		Inbound:      &transport.WebhookVerifier{Secrets: s.WebhookSecrets},
		Webhooks:     m.storage.hooks,
		Sources:      m.storage.sources,
		Decoders:     decoders(),
		Sender:       m.sender,
		WebhookGuard: s.WebhookGuard,
		Receipts:     receipts,
		StoreTimeout: m.backend.StoreTimeout(),
		Now:          m.Now,
	}), nil
}

// listen serves handler on the configured address, and the profiler on its own when configured.
func (m *Main) listen(cfg Config, handler http.Handler) (err error) {
	if m.listener, err = net.Listen("tcp", cfg.Addr); err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	m.http = &http.Server{
		Handler:           handler,
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
	return nil
}

// devCredentials makes the ephemeral credentials of serve --dev: an admin API key, and an HS256 secret
// unless bearer tokens are configured.
func (m *Main) devCredentials(cfg *Config, s *Settings) error {
	if cfg.JWTSecret == "" && cfg.JWKSURL == "" {
		cfg.JWTSecret = randomSecret()
	}
	plain, _, err := apikey.Generate()
	if err != nil {
		return err
	}
	m.DevKey = plain
	s.APIKeys = append(s.APIKeys, apikey.Bootstrap{Key: plain, Role: apikey.RoleAdmin})
	return nil
}

// announceDev prints the --dev credentials with a curl that uses them, and writes them beside the database
// (the backend's DevEnvFile) so that a second terminal can `. ./data/dev.env`; Close removes the file.
func (m *Main) announceDev(cfg Config) (err error) {
	m.DevToken, err = transport.SignToken(transport.TokenRequest{
		Secret: []byte(cfg.JWTSecret), Subject: "dev", TTL: 24 * time.Hour,
		Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
	})
	if err != nil {
		return err
	}
	m.printDev()
	if path := m.backend.DevEnvFile(); path != "" {
		body := fmt.Sprintf("# userhook serve --dev credentials; they change at every start\nUSERHOOK_URL=%s\nUSERHOOK_DEV_TOKEN=%s\nUSERHOOK_DEV_KEY=%s\n",
			m.URL(), m.DevToken, m.DevKey)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			m.log.Warn("could not write the development credentials file", "error", err.Error())
		}
	}
	return nil
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
	if m.backend != nil {
		if path := m.backend.DevEnvFile(); m.DevKey != "" && path != "" {
			_ = os.Remove(path)
		}
		errs = append(errs, m.backend.Close())
		m.backend, m.storage = nil, nil
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
