package ingest

import (
	"context"
	"errors"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
)

// Observer counts what the Service does; *metrics.Metrics is one. It is called from concurrent requests. A nil
// Observer counts nothing.
type Observer interface {
	// Appended counts events stored, by stored type.
	Appended(types ...string)
	// Duplicate counts an event received again, by the route it came in on.
	Duplicate(route string)
	// Ignored counts an event acknowledged without a change, by reason.
	Ignored(reason string)
}

// ReceiptsOnly is implemented by Receipts that can also say, cheaply, whether a key was recorded by Receive,
// not looking at the events stored (the SQLite store answers from memory for a key never recorded). With it,
// the Service checks only that before deciding: a copy of an event that was stored is refused all the same,
// by the store's unique event id when the copy would append, or by Receive when it would raise nothing.
type ReceiptsOnly interface {
	// Receipted says whether key was recorded by Receive.
	Receipted(ctx context.Context, key string) (bool, error)
}

// Service applies provider events to users: the one way a user is written.
type Service struct {
	users    *aggregate.Service
	receipts eventstore.Receipts
	only     ReceiptsOnly // receipts, when it is one
	observer Observer
}

// NewService returns a Service that runs commands with users and remembers the events that raised nothing in
// receipts (needed for every event with an idempotency key); observer, when not nil, counts the outcomes.
func NewService(users *aggregate.Service, receipts eventstore.Receipts, observer Observer) *Service {
	only, _ := receipts.(ReceiptsOnly)
	return &Service{users: users, receipts: receipts, only: only, observer: observer}
}

// Apply applies one event and says what became of it. route names the entry point the event came in on (a
// route template such as "/events", never client input): it labels the duplicate count. An error is a
// failure to apply (the store's, or a command the decoder should have refused): the event may be sent again.
//
// An event whose key was received before is a duplicate, checked before deciding; so is a copy stored by
// another request meanwhile. An event that raises nothing is ignored with a reason, and its key is
// recorded so that its next copy is a duplicate too; an event without a key records nothing and is not
// counted as ignored (an ensure that changes nothing is the common repeated login, not an event set aside).
func (s *Service) Apply(ctx context.Context, route string, e Event) (Result, error) {
	r, err := s.apply(ctx, e)
	if err != nil || s.observer == nil {
		return r, err
	}
	switch {
	case r.Status == StatusDuplicate:
		s.observer.Duplicate(route)
	case r.Status == StatusIgnored && e.Key() != "":
		s.observer.Ignored(r.Reason)
	}
	return r, nil
}

func (s *Service) apply(ctx context.Context, e Event) (Result, error) {
	r := Result{EventID: e.ID, UserID: e.UserID}
	key := e.Key()
	if key != "" {
		var seen bool
		var err error
		if s.only != nil {
			// A receipt is checked here; a stored event is found below, by Execute or by Receive.
			seen, err = s.only.Receipted(ctx, key)
		} else {
			seen, err = s.receipts.Received(ctx, key)
		}
		if err != nil {
			return r, err
		}
		if seen {
			r.Status = StatusDuplicate
			return r, nil
		}
	}
	cmd := e.Command()
	if cmd == nil {
		return s.ignore(ctx, r, key, ReasonUnsupportedType)
	}
	res, err := s.users.Execute(ctx, cmd, aggregate.Options{EventID: key, Metadata: e.Metadata})
	r.UserPosition = res.Position()
	switch {
	case errors.Is(err, eventstore.ErrDuplicate):
		r.Status = StatusDuplicate
		return r, nil
	case errors.Is(err, aggregate.ErrStale):
		return s.ignore(ctx, r, key, ReasonStale)
	case errors.Is(err, aggregate.ErrUserDeleted):
		return s.ignore(ctx, r, key, ReasonDeleted)
	case errors.Is(err, aggregate.ErrUnknownUser):
		// A deactivation or reactivation of a user never registered: acknowledged, as every well-formed
		// event is (a provider retries a refusal forever), and nothing to change.
		return s.ignore(ctx, r, key, ReasonNoChange)
	case err != nil:
		return s.failed(ctx, r, key, err)
	case len(res.Events) == 0:
		return s.ignore(ctx, r, key, ReasonNoChange)
	}
	if s.observer != nil {
		types := make([]string, len(res.Events))
		for i, stored := range res.Events {
			types[i] = stored.Type
		}
		s.observer.Appended(types...)
	}
	r.Status, r.Position = StatusApplied, res.Position()
	return r, nil
}

// failed answers an event whose command failed: a duplicate when the event's key was stored before (what the
// check before deciding says when it looks at the stored events too), else the command's error.
func (s *Service) failed(ctx context.Context, r Result, key string, err error) (Result, error) {
	if key == "" || s.only == nil {
		return r, err
	}
	seen, rerr := s.receipts.Received(ctx, key)
	if rerr != nil || !seen {
		return r, err
	}
	r.Status = StatusDuplicate
	return r, nil
}

// ignore records that an event raised nothing, so that its next copy is a duplicate; a copy that recorded it
// first makes this one the duplicate.
func (s *Service) ignore(ctx context.Context, r Result, key, reason string) (Result, error) {
	if key != "" {
		err := s.receipts.Receive(ctx, key, StatusIgnored+":"+reason)
		if errors.Is(err, eventstore.ErrDuplicate) {
			r.Status = StatusDuplicate
			return r, nil
		}
		if err != nil {
			return r, err
		}
	}
	r.Status, r.Reason = StatusIgnored, reason
	return r, nil
}
