package projection

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
)

// ReplayPage is how many events replay reads at a time.
const ReplayPage = 5000

// Replay rebuilds the users read model from the whole event store: it folds every event into its user in
// memory, then writes each user once, in user id order, into a fresh table that replaces the old one in the
// same transaction as the projection's checkpoint, and finally applies the events stored meanwhile.
// progress, when set, is told the events folded so far and the store's last position at the start.
func Replay(ctx context.Context, store eventstore.Store, model ReadModel, progress func(done, total int64)) (Summary, error) {
	start := time.Now()
	total, err := store.LastPosition(ctx)
	if err != nil {
		return Summary{}, err
	}
	// Reading (SQLite, through cgo) and folding (JSON decoding) run side by side: one goroutine reads the
	// pages ahead while this one folds the previous page.
	type page struct {
		events []eventstore.Event
		err    error
	}
	pages := make(chan page, 1)
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	go func() {
		defer close(pages)
		after := int64(0)
		for {
			events, err := store.ReadAll(readCtx, after, ReplayPage)
			if err != nil || len(events) == 0 {
				if err != nil {
					pages <- page{err: err}
				}
				return
			}
			after = events[len(events)-1].Position
			select {
			case pages <- page{events: events}:
			case <-readCtx.Done():
				return
			}
		}
	}()
	users := map[string]*aggregate.User{}
	var sum Summary
	after := int64(0)
	for p := range pages {
		if p.err != nil {
			return Summary{}, p.err
		}
		for _, e := range p.events {
			if e.StreamType != aggregate.StreamType {
				continue
			}
			u := users[e.StreamID]
			if u == nil {
				u = &aggregate.User{ID: e.StreamID}
				users[e.StreamID] = u
			}
			if e.Version != u.Version+1 {
				return Summary{}, fmt.Errorf("%w: %s at version %d, event %s has %d", ErrGap, e.StreamID, u.Version, e.ID, e.Version)
			}
			if err := u.ApplyStored(e); err != nil {
				return Summary{}, err
			}
		}
		sum.Events += int64(len(p.events))
		after = p.events[len(p.events)-1].Position
		if progress != nil {
			progress(sum.Events, total)
		}
	}
	rows := make([]aggregate.User, 0, len(users))
	for _, u := range users {
		rows = append(rows, *u)
	}
	users = nil
	sort.Slice(rows, func(i, j int) bool { return rows[i].ID < rows[j].ID })
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
