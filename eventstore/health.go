package eventstore

import (
	"context"
	"sync"
	"time"
)

// Writes is what a store knows of its own writes: when a commit last succeeded and when one last failed.
type Writes struct {
	LastSuccess time.Time
	LastFailure time.Time
}

// Failing says whether the latest write failed (no write succeeded after it).
func (w Writes) Failing() bool { return w.LastFailure.After(w.LastSuccess) }

// WriteHealth records the outcome of a store's writes for readiness checks; the zero value is ready to use.
type WriteHealth struct {
	mu sync.Mutex
	w  Writes
}

// Record notes one write's outcome at now.
func (h *WriteHealth) Record(now time.Time, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.w.LastFailure = now
	} else {
		h.w.LastSuccess = now
	}
}

// Writes returns the latest outcomes.
func (h *WriteHealth) Writes() Writes {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.w
}

// Prober is implemented by stores that can tell whether they still take writes: Writes reports their
// appends' latest outcomes, and Probe makes one small durable write of its own (not an event) through the
// same connection, for when no append happened lately.
type Prober interface {
	Writes() Writes
	Probe(ctx context.Context) error
}

// CommitObserver is implemented by stores that can report the size (in appends) of each group commit.
type CommitObserver interface {
	ObserveCommits(fn func(appends int))
}
