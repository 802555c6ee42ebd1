package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/internal/retry"
)

// Handler is one named consumer of the event stream; its name is its checkpoint.
type Handler struct {
	Name string
	// Handle processes one message; an error has it redelivered.
	Handle message.NoPublishHandlerFunc
	// Checkpoint reports the handler's own saved position, for the relay's start on a pub/sub that keeps
	// nothing.
	Checkpoint func(ctx context.Context) (int64, error)
	// Run, when set, runs beside the router for as long as the pipeline (a Batcher's Run).
	Run func(ctx context.Context) error
	// Subscriber, when set, is this handler's own (a durable consumer named after it); otherwise the
	// pipeline's.
	Subscriber message.Subscriber
}

// PipelineConfig is what a Pipeline runs: the store it relays, where, and the consumers.
type PipelineConfig struct {
	Store       eventstore.Store
	Checkpoints Checkpoints
	Publisher   message.Publisher
	// Subscriber serves every handler that has none of its own.
	Subscriber message.Subscriber
	// Handlers are the consumers of the event stream.
	Handlers []Handler
	// Durable says the pub/sub keeps messages until every consumer acked (JetStream); when false (GoChannel)
	// the relay restarts from the lowest consumer checkpoint.
	Durable bool
	Logger  *slog.Logger
	// Poll is the relay's fallback interval (1 s when zero).
	Poll time.Duration
	// Namespace prefixes the topics, so deployments (or tests) can share one broker.
	Namespace string
	// Linger is the relay's wait, once woken by a commit, before it reads (RelayConfig.Linger).
	Linger time.Duration
	// Lead, when set, makes this instance's relay run only while it leads: Lead blocks until this instance
	// holds the leadership (or ctx ends) and returns a context that ends when it loses it. Several instances
	// then run one relay between them, and another takes over when the leader dies.
	Lead func(ctx context.Context) (context.Context, error)
	// Poisoned, when set, is told the handler and event position of every message that failed all its
	// retries and was moved to the poison topic.
	Poisoned func(handler string, position int64)
}

func (c *PipelineConfig) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
}

// Validate reports every fault of the configuration at once.
func (c PipelineConfig) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("stream: no store"))
	}
	if c.Checkpoints == nil {
		errs = append(errs, errors.New("stream: no checkpoints"))
	}
	if c.Publisher == nil {
		errs = append(errs, errors.New("stream: no publisher"))
	}
	if len(c.Handlers) == 0 {
		errs = append(errs, errors.New("stream: no handlers"))
	}
	seen := map[string]bool{}
	for i, h := range c.Handlers {
		switch {
		case h.Name == "":
			errs = append(errs, fmt.Errorf("stream: handler %d has no name", i))
		case seen[h.Name]:
			errs = append(errs, fmt.Errorf("stream: two handlers are named %s", h.Name))
		}
		seen[h.Name] = true
		if h.Handle == nil {
			errs = append(errs, fmt.Errorf("stream: handler %s has no Handle", h.Name))
		}
		if h.Subscriber == nil && c.Subscriber == nil {
			errs = append(errs, fmt.Errorf("stream: handler %s has no subscriber, and the pipeline none either", h.Name))
		}
		if !c.Durable && h.Checkpoint == nil {
			errs = append(errs, fmt.Errorf("stream: handler %s needs a Checkpoint on a pub/sub that keeps nothing", h.Name))
		}
	}
	return errors.Join(errs...)
}

// Pipeline runs the relay and a Watermill router with the consumers of the event stream.
type Pipeline struct {
	cfg PipelineConfig

	running map[string]*message.Handler
	runErrs map[string]error
	router  *message.Router
	relay   *Relay
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errMu   sync.Mutex
	err     error
}

// NewPipeline checks cfg and returns a pipeline ready to Start.
func NewPipeline(cfg PipelineConfig) (*Pipeline, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Pipeline{cfg: cfg}, nil
}

// Relay is the running relay (nil before Start).
func (p *Pipeline) Relay() *Relay { return p.relay }

// Start runs the router, waits until every handler is subscribed, then starts the relay.
func (p *Pipeline) Start(ctx context.Context) error {
	cfg, log := p.cfg, p.cfg.Logger
	wlog := watermill.NewSlogLoggerWithLevelMapping(log.With("component", "watermill"), map[slog.Level]slog.Level{
		slog.LevelInfo: slog.LevelDebug,
	})
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, wlog)
	if err != nil {
		return err
	}
	// A message that fails every retry because it cannot be processed (ErrUnprocessable) goes to the poison
	// topic, with a log line and a metric, instead of being redelivered forever and holding back the consumer
	// (JetStream keeps one message in flight for the users projection). The event itself stays in the store:
	// a replay by a build that understands it applies it. Other failures are redelivered until they pass.
	poison, err := middleware.PoisonQueueWithFilter(&poisonPublisher{Publisher: cfg.Publisher, log: log, observe: cfg.Poisoned},
		cfg.Namespace+PoisonTopic, func(err error) bool { return errors.Is(err, ErrUnprocessable) })
	if err != nil {
		return err
	}
	router.AddMiddleware(
		poison,
		middleware.Retry{MaxRetries: 5, InitialInterval: 10 * time.Millisecond, MaxInterval: time.Second, Multiplier: 2, Logger: wlog,
			// A message no retry can process goes to the poison topic at once: retrying it would only
			// outlast the broker's ack wait and have it redelivered forever.
			ShouldRetry: func(p middleware.RetryParams) bool { return !errors.Is(p.Err, ErrUnprocessable) }}.Middleware,
		middleware.Recoverer,
	)
	p.running = map[string]*message.Handler{}
	p.runErrs = map[string]error{}
	for _, h := range cfg.Handlers {
		sub := h.Subscriber
		if sub == nil {
			sub = cfg.Subscriber
		}
		p.running[h.Name] = router.AddConsumerHandler(h.Name, cfg.Namespace+UsersTopic, sub, h.Handle)
	}
	p.router = router
	ctx, p.cancel = context.WithCancel(ctx)
	for _, h := range cfg.Handlers {
		if h.Run == nil {
			continue
		}
		p.wg.Add(1)
		go func(h Handler) {
			defer p.wg.Done()
			if err := h.Run(ctx); err != nil {
				p.errMu.Lock()
				p.runErrs[h.Name] = err
				p.errMu.Unlock()
				p.fail(fmt.Errorf("%s: %w", h.Name, err))
			}
		}(h)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := router.Run(ctx); err != nil {
			p.fail(fmt.Errorf("router: %w", err))
		}
	}()
	select {
	case <-router.Running():
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		return errors.New("stream: the router did not start within 30 s")
	}

	relayCfg := RelayConfig{Store: cfg.Store, Publisher: cfg.Publisher, Checkpoints: cfg.Checkpoints,
		Logger: log.With("component", "relay"), Poll: cfg.Poll, Namespace: cfg.Namespace, Linger: cfg.Linger}
	if !cfg.Durable {
		relayCfg.Start = p.lowestCheckpoint
	}
	if p.relay, err = NewRelay(relayCfg); err != nil {
		return err
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		pause := retry.Backoff{Initial: time.Second, Max: 5 * time.Second}
		for ctx.Err() == nil {
			runCtx := ctx
			if cfg.Lead != nil {
				var err error
				if runCtx, err = cfg.Lead(ctx); err != nil {
					if ctx.Err() == nil {
						log.Warn("relay leadership failed, trying again", "error", err.Error())
						pause.Wait(ctx)
					}
					continue
				}
				pause.Reset()
				log.Info("this instance leads: running the relay")
			}
			if err := p.relay.Run(runCtx); err != nil {
				p.fail(fmt.Errorf("relay: %w", err))
				return
			}
			if cfg.Lead == nil {
				return
			}
		}
	}()
	return nil
}

// Leading says whether this instance's relay is running (always, without Lead).
func (p *Pipeline) Leading() bool { return p.relay != nil && p.relay.running.Load() }

func (p *Pipeline) fail(err error) {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

// Healthy reports whether the router and the relay are still running.
func (p *Pipeline) Healthy(context.Context) error {
	p.errMu.Lock()
	err := p.err
	p.errMu.Unlock()
	if err != nil {
		return err
	}
	if p.router == nil || !p.router.IsRunning() || p.router.IsClosed() {
		return errors.New("stream: the router is not running")
	}
	return nil
}

// Consumer reports whether the named consumer is running: its router handler subscribed and not stopped,
// and its batch loop (if any) alive.
func (p *Pipeline) Consumer(name string) error {
	if err := p.Healthy(context.Background()); err != nil {
		return err
	}
	p.errMu.Lock()
	runErr := p.runErrs[name]
	p.errMu.Unlock()
	if runErr != nil {
		return fmt.Errorf("%s stopped", name)
	}
	h, ok := p.running[name]
	if !ok {
		return fmt.Errorf("no consumer %s", name)
	}
	select {
	case <-h.Stopped():
		return fmt.Errorf("%s stopped", name)
	default:
	}
	select {
	case <-h.Started():
		return nil
	default:
		return fmt.Errorf("%s has not started", name)
	}
}

// lowestCheckpoint is where a relay over a non-durable pub/sub starts: the lowest of its own checkpoint and
// every consumer's, so nothing that a consumer missed before a restart is skipped.
func (p *Pipeline) lowestCheckpoint(ctx context.Context) (int64, error) {
	low, err := p.cfg.Checkpoints.Checkpoint(ctx, RelayCheckpoint)
	if err != nil {
		return 0, err
	}
	for _, h := range p.cfg.Handlers {
		if h.Checkpoint == nil {
			return 0, nil
		}
		pos, err := h.Checkpoint(ctx)
		if err != nil {
			return 0, err
		}
		low = min(low, pos)
	}
	return low, nil
}

// Close stops the relay and the router; messages in flight are finished or redelivered later.
func (p *Pipeline) Close() error {
	if p.cancel != nil {
		p.cancel()
	}
	var err error
	if p.router != nil {
		err = p.router.Close()
	}
	p.wg.Wait()
	return err
}
