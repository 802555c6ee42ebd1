package projection_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/projection"
)

// wakeLatency bounds how long a waiter may take to return after the Advance that satisfies it. A tracker that
// polled would miss it at any useful poll interval; a woken goroutine returns in microseconds.
const wakeLatency = 10 * time.Millisecond

type waitResult struct {
	pos int64
	err error
	at  time.Time
}

// waitAsync starts WaitFor in its own goroutine and returns the channel its result arrives on.
func waitAsync(ctx context.Context, tr *projection.Tracker, position int64) <-chan waitResult {
	out := make(chan waitResult, 1)
	go func() {
		pos, err := tr.WaitFor(ctx, position)
		out <- waitResult{pos: pos, err: err, at: time.Now()}
	}()
	return out
}

// requireBlocked fails when the waiter returns within d.
func requireBlocked(t *testing.T, done <-chan waitResult, d time.Duration) {
	t.Helper()
	select {
	case r := <-done:
		require.Failf(t, "WaitFor returned too early", "position %d, error %v", r.pos, r.err)
	case <-time.After(d):
	}
}

// receive returns the waiter's result, failing when it does not come within a second.
func receive(t *testing.T, done <-chan waitResult) waitResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(time.Second):
		require.FailNow(t, "WaitFor did not return within a second")
		return waitResult{}
	}
}

func TestTrackerWaitForReturnsAtOnceWhenReached(t *testing.T) {
	t.Parallel()
	tr := projection.NewTracker(7)
	// A context that is already over shows that WaitFor does not even look at it when the position is reached.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, want := range []int64{0, 1, 7} {
		pos, err := tr.WaitFor(ctx, want)
		require.NoError(t, err, "WaitFor(%d) at position 7", want)
		assert.Equal(t, int64(7), pos)
	}
}

// Not parallel: the latency bound is about the tracker, not about a scheduler busy with parallel SQLite tests.
// Top-level sequential tests run while the parallel ones are still paused.
func TestTrackerWaitForWakesOnAdvance(t *testing.T) {
	tr := projection.NewTracker(0)
	for target := int64(10); target <= 50; target += 10 {
		done := waitAsync(context.Background(), tr, target)
		requireBlocked(t, done, 20*time.Millisecond)

		tr.Advance(target - 5) // short of the target: the waiter wakes, looks, and waits again
		requireBlocked(t, done, 20*time.Millisecond)

		advanced := time.Now()
		tr.Advance(target)
		r := receive(t, done)
		require.NoError(t, r.err)
		assert.Equal(t, target, r.pos)
		assert.Less(t, r.at.Sub(advanced), wakeLatency, "WaitFor(%d) returned %s after Advance", target, r.at.Sub(advanced))
	}
}

func TestTrackerAdvanceWakesEveryWaiter(t *testing.T) {
	t.Parallel()
	tr := projection.NewTracker(0)
	var waiters []<-chan waitResult
	for _, p := range []int64{1, 2, 3, 3} {
		waiters = append(waiters, waitAsync(context.Background(), tr, p))
	}
	tr.Advance(3)
	for i, done := range waiters {
		r := receive(t, done)
		assert.NoError(t, r.err, "waiter %d", i)
		assert.Equal(t, int64(3), r.pos, "waiter %d", i)
	}
}

func TestTrackerWaitForTimeout(t *testing.T) {
	t.Parallel()
	tr := projection.NewTracker(3)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := waitAsync(ctx, tr, 10)
	tr.Advance(7) // progress short of the target is what the caller is told it reached
	r := receive(t, done)
	require.ErrorIs(t, r.err, context.DeadlineExceeded)
	assert.Equal(t, int64(7), r.pos, "WaitFor reports the position reached when its context ends")
	assert.Equal(t, int64(7), tr.Position())

	cancelled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	pos, err := tr.WaitFor(cancelled, 8)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, int64(7), pos)
}

func TestTrackerAdvanceNeverGoesBackwards(t *testing.T) {
	t.Parallel()
	tr := projection.NewTracker(5)
	tr.Advance(3)
	assert.Equal(t, int64(5), tr.Position(), "a smaller position changes nothing")
	tr.Advance(5)
	assert.Equal(t, int64(5), tr.Position())
	tr.Advance(9)
	assert.Equal(t, int64(9), tr.Position())
	tr.Advance(0)
	assert.Equal(t, int64(9), tr.Position())
}

func TestTrackerResetGoesBackwards(t *testing.T) {
	t.Parallel()
	tr := projection.NewTracker(9)
	tr.Reset(2)
	assert.Equal(t, int64(2), tr.Position(), "Reset moves back, as after a replay")

	// A waiter for a position the tracker had passed before the reset waits again.
	done := waitAsync(context.Background(), tr, 4)
	requireBlocked(t, done, 20*time.Millisecond)
	tr.Reset(3)
	requireBlocked(t, done, 20*time.Millisecond)
	tr.Advance(4)
	r := receive(t, done)
	require.NoError(t, r.err)
	assert.Equal(t, int64(4), r.pos)

	// Reset forward wakes a waiter too.
	done = waitAsync(context.Background(), tr, 20)
	requireBlocked(t, done, 20*time.Millisecond)
	tr.Reset(20)
	r = receive(t, done)
	require.NoError(t, r.err)
	assert.Equal(t, int64(20), r.pos)
}
