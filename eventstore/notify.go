package eventstore

import "sync"

// Notifier is implemented by stores that can tell in-process readers that new events were committed, so a
// reader waits for a signal instead of polling. Stores shared between processes may still need a poll as
// a fallback.
type Notifier interface {
	// Committed returns a channel that is closed at the next commit after the call.
	Committed() <-chan struct{}
}

// Broadcast is a reusable Notifier: Signal closes the channel every pending Committed call returned.
type Broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

// Committed returns a channel closed by the next Signal.
func (b *Broadcast) Committed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

// Signal wakes every waiter.
func (b *Broadcast) Signal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}
