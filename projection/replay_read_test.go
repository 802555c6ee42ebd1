package projection

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/eventstore"
)

// gappyStore holds events at the given positions only, as a store whose sequence skipped some.
type gappyStore struct {
	eventstore.Store
	events []eventstore.Event
	fail   int64 // ReadAll after this position fails, when positive
}

func newGappyStore(positions ...int64) *gappyStore {
	s := &gappyStore{}
	for _, p := range positions {
		s.events = append(s.events, eventstore.Event{Position: p, ID: fmt.Sprint(p)})
	}
	return s
}

func (s *gappyStore) ReadAll(ctx context.Context, after int64, limit int) ([]eventstore.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.fail > 0 && after >= s.fail {
		return nil, errors.New("read failed")
	}
	i := sort.Search(len(s.events), func(i int) bool { return s.events[i].Position > after })
	return append([]eventstore.Event(nil), s.events[i:min(i+limit, len(s.events))]...), nil
}

func positionsOf(events []eventstore.Event) []int64 {
	var out []int64
	for _, e := range events {
		out = append(out, e.Position)
	}
	return out
}

// TestReadInOrderHandsOverEveryEventOnceInOrder: with gaps in the positions, a range read as "the first
// size events after lo" reaches into the next range, which must not see them twice.
func TestReadInOrderHandsOverEveryEventOnceInOrder(t *testing.T) {
	t.Parallel()
	var positions []int64
	for p := int64(1); p <= 1000; p++ {
		if p%7 != 0 && (p < 300 || p > 420) { // scattered gaps, and ranges with no event at all
			positions = append(positions, p)
		}
	}
	store := newGappyStore(positions...)
	for _, size := range []int64{1, 3, 10, 64, 1000, 5000} {
		var got []int64
		calls := 0
		require.NoError(t, readInOrder(context.Background(), store, 1000, size, func(events []eventstore.Event) error {
			calls++
			got = append(got, positionsOf(events)...)
			return nil
		}))
		assert.Equal(t, positions, got, "size %d", size)
		assert.Equal(t, int((1000+size-1)/size), calls, "size %d: one call for each range", size)
	}
	// Only up to last: later events are the caller's to read.
	var got []int64
	require.NoError(t, readInOrder(context.Background(), store, 500, 16, func(events []eventstore.Event) error {
		got = append(got, positionsOf(events)...)
		return nil
	}))
	assert.Equal(t, positions[:sort.Search(len(positions), func(i int) bool { return positions[i] > 500 })], got)
	require.NoError(t, readInOrder(context.Background(), store, 0, 16, func([]eventstore.Event) error {
		t.Error("an empty store has no range")
		return nil
	}))
}

func TestReadInOrderStopsAtTheFirstError(t *testing.T) {
	t.Parallel()
	var positions []int64
	for p := int64(1); p <= 500; p++ {
		positions = append(positions, p)
	}
	store := newGappyStore(positions...)
	store.fail = 200
	var got []int64
	err := readInOrder(context.Background(), store, 500, 10, func(events []eventstore.Event) error {
		got = append(got, positionsOf(events)...)
		return nil
	})
	assert.EqualError(t, err, "read failed")
	assert.Equal(t, positions[:200], got, "the ranges before the failed one are handed over")

	store.fail = 0
	calls := 0
	err = readInOrder(context.Background(), store, 500, 10, func([]eventstore.Event) error {
		calls++
		if calls == 3 {
			return errors.New("fold failed")
		}
		return nil
	})
	assert.EqualError(t, err, "fold failed")
	assert.Equal(t, 3, calls)

	ctx, cancel := context.WithCancel(context.Background())
	err = readInOrder(ctx, store, 500, 10, func([]eventstore.Event) error {
		cancel()
		return nil
	})
	assert.ErrorIs(t, err, context.Canceled)
}
