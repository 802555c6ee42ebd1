package projection

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
)

// ReplayPage is how many positions one read of a replay covers: at most that many events.
const ReplayPage = 5000

// Replay rebuilds the users read model from the whole event store: it folds every event into its user in
// memory, then writes each user once, in user id order, into a fresh table that replaces the old one in the
// same transaction as the projection's checkpoint, and finally applies the events stored meanwhile.
// progress, when set, is told the events folded so far and the store's last position at the start.
//
// The store is read by several goroutines at once, a range of positions each (readInOrder), and folded in
// position order on the caller's (folding).
func Replay(ctx context.Context, store eventstore.Store, model ReadModel, progress func(done, total int64)) (Summary, error) {
	start := time.Now()
	total, err := store.LastPosition(ctx)
	if err != nil {
		return Summary{}, err
	}
	folded := newFolding()
	var sum Summary
	after := int64(0)
	fold := func(events []eventstore.Event) error {
		if len(events) == 0 {
			return nil
		}
		for i := range events {
			if err := folded.fold(&events[i]); err != nil {
				return err
			}
		}
		sum.Events += int64(len(events))
		after = events[len(events)-1].Position
		if progress != nil {
			progress(sum.Events, total)
		}
		return nil
	}
	if err := readInOrder(ctx, store, total, ReplayPage, fold); err != nil {
		return Summary{}, err
	}
	// Then the events stored since the replay began.
	for from := total; ; {
		events, err := store.ReadAll(ctx, from, ReplayPage)
		if err != nil {
			return Summary{}, err
		}
		if len(events) == 0 {
			break
		}
		if err := fold(events); err != nil {
			return Summary{}, err
		}
		from = after
	}
	rows, err := folded.rows()
	if err != nil {
		return Summary{}, err
	}
	if err := model.Rebuild(ctx, UsersProjection, after, rows); err != nil {
		return Summary{}, err
	}
	// Events stored after the last read may have been applied by a running projection to the table that was
	// just replaced; catching up from the replay's position applies them to the new one. The version check
	// makes this and the live projection harmless to each other.
	catchUp := &Users{Model: model}
	for {
		page, err := store.ReadAll(ctx, after, ReplayPage)
		if err != nil {
			return Summary{}, err
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if e.StreamType != aggregate.StreamType {
				continue
			}
			if err := catchUp.Project(ctx, e); err != nil && !errors.Is(err, ErrGap) {
				return Summary{}, err
			}
		}
		sum.Events += int64(len(page))
		after = page[len(page)-1].Position
	}
	sum.Users = len(rows)
	sum.Position = after
	sum.Elapsed = time.Since(start)
	return sum, nil
}

// maxReplayReaders bounds the goroutines that read a replay's pages: past a few, the fold is slower than
// they are.
const maxReplayReaders = 4

// readInOrder reads the events at positions up to last and hands them to fn in position order, a range of
// size positions at a time. One goroutine for each CPU (at most maxReplayReaders) reads the ranges
// ahead, each its own, while fn runs on the caller's: reading the store (SQLite, through cgo) is most of a
// replay, and folding what was read takes a fraction of it.
//
// A range (lo, hi] is read as the first hi-lo events after lo, which hold every event of the range since
// positions are distinct integers, less those past hi, which are the next range's. fn sees empty ranges too.
func readInOrder(ctx context.Context, store eventstore.Store, last, size int64, fn func([]eventstore.Event) error) error {
	ranges := (last + size - 1) / size
	readers := max(1, min(runtime.GOMAXPROCS(0), maxReplayReaders, int(ranges)))
	type page struct {
		events []eventstore.Event
		err    error
	}
	// Range i is read into slot i%len(slots). A reader takes a token before it takes a range and fn's side
	// gives it back once the range is handed to fn, so at most len(slots) ranges are read ahead, and the
	// slot of range i was emptied, with range i-len(slots), before range i is taken.
	slots := make([]chan page, 2*readers)
	for i := range slots {
		slots[i] = make(chan page, 1)
	}
	tokens := make(chan struct{}, len(slots))
	var next atomic.Int64
	readCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	for range readers {
		wg.Go(func() {
			for {
				select {
				case tokens <- struct{}{}:
				case <-readCtx.Done():
					return
				}
				i := next.Add(1) - 1
				if i >= ranges {
					<-tokens
					return
				}
				lo := i * size
				hi := min(lo+size, last)
				events, err := store.ReadAll(readCtx, lo, int(hi-lo))
				for len(events) > 0 && events[len(events)-1].Position > hi {
					events = events[:len(events)-1]
				}
				slots[i%int64(len(slots))] <- page{events: events, err: err}
			}
		})
	}
	for i := range ranges {
		var p page
		select {
		case p = <-slots[i%int64(len(slots))]:
		case <-ctx.Done():
			return ctx.Err()
		}
		<-tokens
		if p.err != nil {
			return p.err
		}
		if err := fn(p.events); err != nil {
			return err
		}
	}
	return nil
}
