package projection

import (
	"context"
	"sync"
)

// Tracker holds the position a projection has applied up to and wakes readers waiting for a position, so
// read-your-writes waits on a notification instead of polling.
type Tracker struct {
	mu      sync.Mutex
	pos     int64
	changed chan struct{}
}

// NewTracker starts at position.
func NewTracker(position int64) *Tracker {
	return &Tracker{pos: position, changed: make(chan struct{})}
}

// Position is the position applied so far.
func (t *Tracker) Position() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pos
}

// Advance records that everything up to position is applied; a smaller position changes nothing.
func (t *Tracker) Advance(position int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if position <= t.pos {
		return
	}
	t.pos = position
	close(t.changed)
	t.changed = make(chan struct{})
}

// Reset sets the position, even backwards (after a replay).
func (t *Tracker) Reset(position int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pos = position
	close(t.changed)
	t.changed = make(chan struct{})
}

// WaitFor blocks until position is applied or ctx ends, and returns the position reached.
func (t *Tracker) WaitFor(ctx context.Context, position int64) (int64, error) {
	for {
		t.mu.Lock()
		pos, ch := t.pos, t.changed
		t.mu.Unlock()
		if pos >= position {
			return pos, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return pos, ctx.Err()
		}
	}
}
