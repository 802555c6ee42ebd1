package stream

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/internal/retry"
)

// RelayConfig is what a Relay publishes and where.
type RelayConfig struct {
	Store       eventstore.Store
	Publisher   message.Publisher
	Checkpoints Checkpoints
	Logger      *slog.Logger
	// Start, when set, picks the first position to publish after instead of the relay's checkpoint. With a
	// pub/sub that keeps nothing (GoChannel) it is the lowest checkpoint of the subscribers, since what was
	// published and not yet applied before a restart is gone from memory.
	Start func(ctx context.Context) (int64, error)
	// Batch is how many events one read takes (1000 when zero).
	Batch int
	// Poll is the fallback interval for stores without commit notifications, or written by other processes
	// (1 s when zero).
	Poll time.Duration
	// Namespace prefixes the topics published to.
	Namespace string
	// Linger is how long the relay waits, once woken by a commit, before it reads (0: not at all): a little
	// latency for fewer, larger messages, which pays where each message costs a broker round trip and a
	// transaction in each consumer (JetStream).
	Linger time.Duration
	// SaveEvery is how often, at most, the relay saves its checkpoint while it publishes (1 s when zero); it
	// saves it again when it stops. A crash republishes what was published since the last save, which every
	// consumer skips; saving after every read would cost the database a write per read.
	SaveEvery time.Duration
}

func (c *RelayConfig) setDefaults() {
	if c.Batch <= 0 {
		c.Batch = 1000
	}
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.SaveEvery <= 0 {
		c.SaveEvery = time.Second
	}
}

// Validate reports every fault of the configuration at once.
func (c RelayConfig) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("stream: the relay has no store"))
	}
	if c.Publisher == nil {
		errs = append(errs, errors.New("stream: the relay has no publisher"))
	}
	if c.Checkpoints == nil {
		errs = append(errs, errors.New("stream: the relay has no checkpoints"))
	}
	return errors.Join(errs...)
}

// Relay publishes the event store to Watermill in position order. It reads after its checkpoint, publishes
// each event, and saves the checkpoint only once the publisher acknowledged (with the in-process GoChannel,
// once every subscriber acked). A crash repeats the last batch; subscribers skip what they already have.
type Relay struct {
	cfg      RelayConfig
	position atomic.Int64
	running  atomic.Bool
}

// NewRelay checks cfg and returns a relay ready to Run.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Relay{cfg: cfg}, nil
}

// Position is the position of the last event the relay published.
func (r *Relay) Position() int64 { return r.position.Load() }

// Run publishes until ctx ends. A failed publish is retried after a pause; nothing is skipped.
func (r *Relay) Run(ctx context.Context) error {
	cfg, log := r.cfg, r.cfg.Logger
	// The start position is read until it can be: a relay that gave up here would stop the whole pipeline
	// (and, leading, keep others from taking over).
	pause := retry.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	after, err := r.startPosition(ctx)
	for err != nil {
		log.Error("relay cannot read where to start, retrying", "error", err.Error())
		if !pause.Wait(ctx) {
			return nil
		}
		after, err = r.startPosition(ctx)
	}
	r.running.Store(true)
	defer r.running.Store(false)
	r.position.Store(after)
	saved, savedAt := after, time.Now()
	save := func(ctx context.Context) error {
		if after == saved {
			return nil
		}
		if err := cfg.Checkpoints.SaveCheckpoint(ctx, RelayCheckpoint, after); err != nil {
			return err
		}
		saved, savedAt = after, time.Now()
		return nil
	}
	defer func() {
		// What was published is saved as the relay stops, so a restart does not publish it again.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := save(ctx); err != nil {
			log.Warn("relay could not save its checkpoint on stopping", "error", err.Error())
		}
	}()
	notifier, _ := cfg.Store.(eventstore.Notifier)
	recent, _ := cfg.Store.(eventstore.Recent)
	polled := false
	for {
		var committed <-chan struct{}
		if notifier != nil {
			committed = notifier.Committed()
		}
		// What this process just committed is taken from memory; the store is read for the rest (an older
		// position, one another instance committed) and on every poll, which also finds what a process
		// that announces nothing wrote.
		var events []eventstore.Event
		var err error
		all := false
		if recent != nil && !polled {
			events, all = recent.Recent(after, cfg.Batch)
		}
		if len(events) == 0 && !all {
			events, err = cfg.Store.ReadAll(ctx, after, cfg.Batch)
		}
		polled = false
		if err == nil && len(events) > 0 {
			err = r.publish(events)
		}
		if err == nil && len(events) > 0 {
			after = events[len(events)-1].Position
			r.position.Store(after)
			if time.Since(savedAt) >= cfg.SaveEvery {
				if err := save(ctx); err != nil && ctx.Err() == nil {
					log.Error("relay could not save its checkpoint, retrying later", "after", after, "error", err.Error())
				}
			}
			continue
		}
		if err == nil && ctx.Err() == nil && time.Since(savedAt) >= cfg.SaveEvery {
			// Caught up, and the last save is old enough: the poll below brings the relay back here, so what
			// was published is saved within SaveEvery and the poll interval after a burst ends.
			if serr := save(ctx); serr != nil && ctx.Err() == nil {
				log.Error("relay could not save its checkpoint, retrying later", "after", after, "error", serr.Error())
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
			// Let a few more commits land, so that one read, one message and one transaction of each
			// consumer carry them all.
			if cfg.Linger > 0 && !retry.Sleep(ctx, cfg.Linger) {
				return nil
			}
		case <-time.After(cfg.Poll):
			polled = true
		}
	}
}

func (r *Relay) startPosition(ctx context.Context) (int64, error) {
	if r.cfg.Start != nil {
		return r.cfg.Start(ctx)
	}
	return r.cfg.Checkpoints.Checkpoint(ctx, RelayCheckpoint)
}

func (r *Relay) publish(events []eventstore.Event) error {
	// Runs of one stream type go to its topic together, in as few messages as fit, in one Publish call: one
	// stream lookup and a handful of acknowledgements for a whole read instead of one for each event.
	for len(events) > 0 {
		n := 1
		for n < len(events) && events[n].StreamType == events[0].StreamType {
			n++
		}
		msgs, err := Messages(events[:n])
		if err != nil {
			return err
		}
		if err := r.cfg.Publisher.Publish(r.cfg.Namespace+Topic(events[0].StreamType), msgs...); err != nil {
			return errors.Join(errors.New("stream: publish"), err)
		}
		events = events[n:]
	}
	return nil
}
