package eventstore

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// since is Since's positions, and whether they are all there is.
func since(tl *Tail, after int64, limit int) ([]int64, bool) {
	events, all := tl.Since(after, limit)
	var out []int64
	for _, e := range events {
		out = append(out, e.Position)
	}
	return out, all
}

func TestTailStopsAtAPositionItDoesNotHold(t *testing.T) {
	var tl Tail
	got, all := since(&tl, 0, 10)
	assert.Empty(t, got)
	assert.False(t, all, "before the store said where it stands, nothing is claimed complete")
	tl.Heard(0)
	_, all = since(&tl, 0, 10)
	assert.True(t, all, "an empty store")

	// Position 4 was committed by another process, which announced it.
	tl.add([]Event{{Position: 1}, {Position: 2}, {Position: 3}})
	tl.Heard(4)
	tl.add([]Event{{Position: 5}, {Position: 6}})
	got, all = since(&tl, 0, 10)
	assert.Equal(t, []int64{1, 2, 3}, got)
	assert.False(t, all)
	got, all = since(&tl, 1, 1)
	assert.Equal(t, []int64{2}, got)
	assert.False(t, all)
	got, all = since(&tl, 3, 10)
	assert.Empty(t, got, "the reader must read position 4 from the store")
	assert.False(t, all)
	got, all = since(&tl, 4, 10)
	assert.Equal(t, []int64{5, 6}, got)
	assert.True(t, all)
	got, all = since(&tl, 6, 10)
	assert.Empty(t, got)
	assert.True(t, all, "caught up")

	// Another process committed 7 and 8: heard of, not held.
	tl.Heard(8)
	got, all = since(&tl, 6, 10)
	assert.Empty(t, got)
	assert.False(t, all)
	tl.Heard(3) // an old announcement does not lower what is known
	_, all = since(&tl, 6, 10)
	assert.False(t, all)

	got, all = since(&tl, -1, 10)
	assert.Empty(t, got)
	assert.False(t, all)
}

func TestTailKeepsABoundedWindow(t *testing.T) {
	var tl Tail
	tl.Heard(0)
	var events []Event
	for p := int64(1); p <= 3*TailSize; p++ {
		events = append(events, Event{Position: p})
	}
	tl.add(events)
	got, all := since(&tl, 0, 10)
	assert.Empty(t, got, "overwritten by newer positions")
	assert.False(t, all)
	got, _ = since(&tl, 2*TailSize-1, 10)
	assert.Empty(t, got, "position 2*TailSize was overwritten too")
	got, all = since(&tl, 2*TailSize, 2*TailSize)
	assert.Len(t, got, TailSize, "at most TailSize events are held")
	assert.Equal(t, int64(2*TailSize+1), got[0])
	assert.True(t, all)
	assert.Len(t, tl.slots, TailSize)
}
