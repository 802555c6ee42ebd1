package projection

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
)

// Users is the users projection: it applies each UserAggregate event to its row of the read model.
type Users struct {
	Model   ReadModel
	Tracker *Tracker
	// FailNext, when positive, makes that many handled messages fail before touching the read model; tests use
	// it to show that a failed message is redelivered and the read model still converges.
	FailNext atomic.Int64
	applied  atomic.Int64
}

// Applied counts the events this projection changed a row for (skipped repeats excluded).
func (p *Users) Applied() int64 { return p.applied.Load() }

// Handle is the Watermill handler.
func (p *Users) Handle(msg *message.Message) error {
	if p.FailNext.Load() > 0 && p.FailNext.Add(-1) >= 0 {
		return fmt.Errorf("projection: injected failure for %s", msg.UUID)
	}
	e, err := EventOf(msg)
	if err != nil {
		return err
	}
	return p.Project(msg.Context(), e)
}

// Project applies one stored event: skipped when the row already has its version, ErrGap when an earlier one
// is missing, applied otherwise; the checkpoint advances with the row in one transaction.
func (p *Users) Project(ctx context.Context, e eventstore.Event) error {
	changed := false
	err := p.Model.Update(ctx, UsersProjection, e.Position, e.StreamID, func(u *aggregate.User) (bool, error) {
		switch {
		case e.Version <= u.Version:
			return false, nil
		case e.Version > u.Version+1:
			return false, fmt.Errorf("%w: %s is at version %d, event %s has %d", ErrGap, e.StreamID, u.Version, e.ID, e.Version)
		}
		if err := u.ApplyStored(e); err != nil {
			return false, err
		}
		changed = true
		return true, nil
	})
	if err != nil {
		return err
	}
	if changed {
		p.applied.Add(1)
	}
	if p.Tracker != nil {
		p.Tracker.Advance(e.Position)
	}
	return nil
}
