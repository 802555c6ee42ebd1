package eventstore

import (
	"sync"
	"sync/atomic"
)

// Recent is implemented by stores that keep the events this process committed last in memory, so that a
// reader close behind the writer (the relay) takes them from there instead of reading back what was just
// written.
type Recent interface {
	// Recent returns up to limit events with consecutive positions from after+1, as ReadAll would return
	// them, from memory. all says that nothing committed after them is known to this process: a reader
	// that got no events and all is caught up without reading the store; otherwise it reads the store for
	// what memory does not hold (an older position, or one another process committed).
	Recent(after int64, limit int) (events []Event, all bool)
}

// TailSize is how many of the newest committed events a Tail keeps.
const TailSize = 2048

// Tail holds the newest events committed through one GroupCommit, each in the slot of its position modulo
// TailSize: an event overwritten by a newer one, or a position committed by another process, is simply not
// found, and Since stops at the first position it does not hold. Memory is bounded by TailSize events.
//
// It also knows the newest committed position it has heard of: its own commits, and what the store learns
// of other processes' (Heard). Until the store has told it where the store stood when it opened (Heard,
// once), it claims nothing is complete.
type Tail struct {
	mu    sync.Mutex
	slots []Event
	known atomic.Int64
	ready atomic.Bool
}

// add records committed events; their positions ascend.
func (t *Tail) add(events []Event) {
	if len(events) == 0 {
		return
	}
	t.mu.Lock()
	for _, e := range events {
		if e.Position > 0 {
			if t.slots == nil {
				t.slots = make([]Event, TailSize)
			}
			t.slots[e.Position%TailSize] = e
		}
	}
	t.mu.Unlock()
	t.raise(events[len(events)-1].Position)
}

// Heard tells the tail that position is committed (by any process); the first call also says the store's
// starting point is known.
func (t *Tail) Heard(position int64) {
	t.raise(position)
	t.ready.Store(true)
}

func (t *Tail) raise(position int64) {
	for {
		k := t.known.Load()
		if position <= k || t.known.CompareAndSwap(k, position) {
			return
		}
	}
}

// Since returns up to limit held events at consecutive positions from after+1, and whether they reach the
// newest position heard of.
func (t *Tail) Since(after int64, limit int) ([]Event, bool) {
	// known is read first: a commit heard of after this read is followed by a wake-up of the reader.
	known, ready := t.known.Load(), t.ready.Load()
	if after < 0 {
		return nil, false
	}
	limit = min(limit, TailSize)
	var out []Event
	t.mu.Lock()
	if t.slots != nil {
		for p := after + 1; len(out) < limit; p++ {
			e := t.slots[p%TailSize]
			if e.Position != p {
				break
			}
			if out == nil {
				out = make([]Event, 0, min(limit, 64))
			}
			out = append(out, e)
		}
	}
	t.mu.Unlock()
	return out, ready && after+int64(len(out)) >= known
}
