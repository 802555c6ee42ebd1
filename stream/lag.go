package stream

import (
	"fmt"
	"sync"
	"time"
)

// LagWatch judges, from the positions it is shown, whether each consumer of the event stream keeps up: a
// consumer fails when it is more than MaxLag events behind the store, or when it is behind and its position
// has not moved for Stall. A consumer that is behind but advancing, or idle with nothing to do, is fine.
type LagWatch struct {
	// MaxLag is how far behind the store a consumer may be (0: no bound).
	MaxLag int64
	// Stall is how long a consumer that is behind may go without advancing (0: no bound).
	Stall time.Duration

	mu   sync.Mutex
	seen map[string]progress // by consumer name: a fixed set, named by the server, never by a client
}

type progress struct {
	position int64
	since    time.Time
}

// Observe records a consumer's position against the store's at now and says whether it keeps up; the
// error says how it does not.
func (w *LagWatch) Observe(consumer string, position, store int64, now time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen == nil {
		w.seen = map[string]progress{}
	}
	p, ok := w.seen[consumer]
	if !ok || p.position != position {
		p = progress{position: position, since: now}
		w.seen[consumer] = p
	}
	lag := store - position
	switch {
	case w.MaxLag > 0 && lag > w.MaxLag:
		return fmt.Errorf("%d events behind the store, more than %d", lag, w.MaxLag)
	case w.Stall > 0 && lag > 0 && now.Sub(p.since) >= w.Stall:
		return fmt.Errorf("%d events behind the store and has not advanced for %s", lag, now.Sub(p.since).Round(time.Second))
	}
	return nil
}
