// Package retry is the one way userhook waits before trying again: a pause that doubles after each failure
// up to a ceiling, cut short when its context ends.
package retry

import (
	"context"
	"time"
)

// Backoff is a pause that starts at Initial and doubles after every Wait, up to Max; Reset starts it over
// after a success. The zero value waits 100 ms, then up to 5 s.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration

	next time.Duration
}

// Next is how long the next Wait pauses.
func (b *Backoff) Next() time.Duration {
	if b.next == 0 {
		b.next = b.Initial
		if b.next <= 0 {
			b.next = 100 * time.Millisecond
		}
	}
	return b.next
}

// Wait pauses for the current delay, then doubles it for the next time; it returns false at once when ctx
// ends first.
func (b *Backoff) Wait(ctx context.Context) bool {
	d := b.Next()
	ceiling := b.Max
	if ceiling <= 0 {
		ceiling = 5 * time.Second
	}
	b.next = min(2*d, ceiling)
	return Sleep(ctx, d)
}

// Reset starts the pause over from Initial.
func (b *Backoff) Reset() { b.next = 0 }

// Sleep pauses for d, or until ctx ends; it says whether ctx is still live.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
