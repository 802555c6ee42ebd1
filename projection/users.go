package projection

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/stream"
)

// Users is the users projection: it applies each UserAggregate event to its row of the read model.
type Users struct {
	Model   ReadModel
	Tracker *Tracker
	// Store, when set, fills a gap in a user's stream instead of failing the message.
	Store eventstore.Store
	// FailNext, when positive, makes that many messages or batches fail before touching the read model; tests
	// use it to show that failed work is done again and the read model still converges.
	FailNext atomic.Int64
	applied  atomic.Int64
}

// Applied counts the events this projection changed a row for (skipped repeats excluded).
func (p *Users) Applied() int64 { return p.applied.Load() }

// Handle is the Watermill handler for a broker that redelivers what was not acknowledged: it applies the
// message's events in one transaction (stream.Durable).
func (p *Users) Handle(msg *message.Message) error { return stream.Durable(p.ProjectBatch)(msg) }

// Project applies one stored event: skipped when the row already has its version, ErrGap when an earlier one
// is missing, applied otherwise; the checkpoint advances with the row in one transaction.
func (p *Users) Project(ctx context.Context, e eventstore.Event) error {
	return p.ProjectBatch(ctx, []eventstore.Event{e})
}

// ProjectBatch applies events in position order in one transaction with the checkpoint. An event whose
// version a row already has is skipped. A gap (an earlier event of the stream missing) is filled from the
// store when Store is set, and is ErrGap otherwise, so the batch fails and is tried again.
//
// A user whose first event in the batch has version 1 starts from nothing: its row after the batch is
// determined by the batch's events alone, so it is not read (BatchUsers.Fresh), and the read model keeps a
// stored row that already has that version or a later one (a redelivery).
func (p *Users) ProjectBatch(ctx context.Context, events []eventstore.Event) error {
	if len(events) == 0 {
		return nil
	}
	if p.FailNext.Load() > 0 && p.FailNext.Add(-1) >= 0 {
		return fmt.Errorf("projection: injected failure at position %d", events[0].Position)
	}
	var users BatchUsers
	seen := make(map[string]bool, len(events))
	for _, e := range events {
		if seen[e.StreamID] {
			continue
		}
		seen[e.StreamID] = true
		if e.Version == 1 {
			users.Fresh = append(users.Fresh, e.StreamID)
		} else {
			users.Read = append(users.Read, e.StreamID)
		}
	}
	type change struct {
		user    string
		version int64
	}
	var done []change // the events applied, to count those that were not repeats once the batch committed
	last := events[len(events)-1].Position
	existing, err := p.Model.Batch(ctx, UsersProjection, last, users, func(rows map[string]*aggregate.User) ([]string, error) {
		done = done[:0]
		var changed []string
		dirty := map[string]bool{}
		for _, e := range events {
			u := rows[e.StreamID]
			if e.Version <= u.Version {
				continue
			}
			if e.Version > u.Version+1 {
				if err := p.fillGap(ctx, u, e); err != nil {
					return nil, err
				}
			}
			if err := u.ApplyStored(e); err != nil {
				return nil, fmt.Errorf("%w: event %s at position %d: %v", stream.ErrUnprocessable, e.ID, e.Position, err)
			}
			done = append(done, change{e.StreamID, e.Version})
			if !dirty[e.StreamID] {
				dirty[e.StreamID] = true
				changed = append(changed, e.StreamID)
			}
		}
		return changed, nil
	})
	if err != nil {
		return err
	}
	// A fresh user's stored row, if it had one, already held the events up to its version.
	var applied int64
	for _, c := range done {
		if c.version > existing[c.user] {
			applied++
		}
	}
	p.applied.Add(applied)
	if p.Tracker != nil {
		p.Tracker.Advance(last)
	}
	return nil
}

// fillGap applies the stored events of u's stream between its version and e's.
func (p *Users) fillGap(ctx context.Context, u *aggregate.User, e eventstore.Event) error {
	if p.Store == nil {
		return fmt.Errorf("%w: %s is at version %d, event %s has %d", ErrGap, e.StreamID, u.Version, e.ID, e.Version)
	}
	history, err := p.Store.Load(ctx, e.StreamID)
	if err != nil {
		return err
	}
	for _, se := range history {
		if se.Version > u.Version && se.Version < e.Version {
			if err := u.ApplyStored(se); err != nil {
				return fmt.Errorf("%w: event %s at position %d: %v", stream.ErrUnprocessable, se.ID, se.Position, err)
			}
		}
	}
	if u.Version != e.Version-1 {
		return fmt.Errorf("%w: %s is at version %d, event %s has %d", ErrGap, e.StreamID, u.Version, e.ID, e.Version)
	}
	return nil
}
