package transport

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestLimiterKeepsAtMostMaxCallersBuckets(t *testing.T) {
	t.Parallel()
	l := newLimiter(&RateLimit{PerSecond: 1, Burst: 1}, nil)
	now := time.Now()
	ok, _ := l.allow("busy", now)
	assert.True(t, ok)
	for i := 0; i < 3*maxCallers; i++ {
		l.allow("caller-"+strconv.Itoa(i), now.Add(time.Duration(i)*time.Millisecond))
		if len(l.m) > maxCallers {
			t.Fatalf("%d buckets after %d callers", len(l.m), i+1)
		}
	}
	later := now.Add(time.Duration(3*maxCallers) * time.Millisecond)
	ok, _ = l.allow("fresh", later)
	assert.True(t, ok, "a new caller starts with a full bucket")
	ok, wait := l.allow("fresh", later)
	assert.False(t, ok, "and its bucket is kept")
	assert.Greater(t, wait, time.Duration(0))
}
