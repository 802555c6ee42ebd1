package retry

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestBackoffDoublesUpToMax(t *testing.T) {
	b := Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond}
	var got []time.Duration
	for range 5 {
		got = append(got, b.Next())
		assert.True(t, b.Wait(context.Background()))
	}
	ms := time.Millisecond
	assert.Equal(t, []time.Duration{ms, 2 * ms, 4 * ms, 5 * ms, 5 * ms}, got)
	b.Reset()
	assert.Equal(t, ms, b.Next())
}

func TestWaitEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := Backoff{Initial: time.Hour}
	start := time.Now()
	assert.False(t, b.Wait(ctx))
	assert.Less(t, time.Since(start), time.Second)
}
