package aggregate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/userhook/userhook/eventstore"
)

// MaxAttempts bounds how often Execute decides again after losing a race for the stream's next version.
const MaxAttempts = 20

// Service runs commands: it loads the user's stream, decides, and appends with the expected version,
// deciding again on a version conflict. It is the one place that retries conflicts.
type Service struct {
	store eventstore.Store
	now   func() time.Time
	cache *stateCache
	known *knownUsers
}

// CacheStates keeps the state of up to max users in memory, so that a decision, and a repeat call that
// changes nothing, needs no read of the store. Use it only where this process is the store's one writer.
func (s *Service) CacheStates(max int) {
	if max > 0 {
		s.cache = newStateCache(max)
	}
}

// GuessNew has a user this process has not seen lately assumed new, appended without a read of its stream:
// the common case of a user's first event then costs no read. It is safe with several writers on one store,
// unlike CacheStates: the store refuses the guess (a version conflict) when the stream exists, and the state
// is then read. max bounds the ids remembered as existing (whose events are decided from a read, as always).
func (s *Service) GuessNew(max int) {
	if max > 0 {
		s.known = newKnownUsers(max)
	}
}

// NewService returns a command service over store; now is the clock (time.Now when nil).
func NewService(store eventstore.Store, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, now: now}
}

// Options are what a transport adds to a command.
type Options struct {
	// EventID, when set, is the id of the first raised event, so a second delivery of the same provider event
	// is refused by the store as a duplicate. Further events get EventID plus "/2", "/3", ...
	EventID string
	// Metadata is stored with every raised event (request id, provenance).
	Metadata map[string]string
}

// Result is what a command did.
type Result struct {
	// User is the state after the command.
	User User
	// Events are the events stored by this command; none when it changed nothing.
	Events []eventstore.Event
}

// Position is the global position of the user's latest event after the command.
func (r Result) Position() int64 { return r.User.Position }

// Load returns the current state of a user.
func (s *Service) Load(ctx context.Context, userID string) (User, error) {
	events, err := s.store.Load(ctx, userID)
	if err != nil {
		return User{}, err
	}
	return Fold(userID, events)
}

// Execute runs cmd. A command that raises nothing returns the current state and no events. Errors are the
// command's own (validation, ErrStale, ErrUserDeleted, ErrUnknownUser), eventstore.ErrDuplicate when
// opt.EventID is stored already, or the store's.
func (s *Service) Execute(ctx context.Context, cmd Command, opt Options) (Result, error) {
	id := cmd.StreamID()
	// With the cache, a user it does not hold is first assumed new: that saves a new user (the common case
	// of a first login) the read of its empty stream. The guess is only ever trusted to append: the store's
	// unique (stream, version) index refuses it for a user that exists, and then the stream is read.
	guess := s.cache != nil || s.known != nil && !s.known.has(id)
	for attempt := 1; ; attempt++ {
		u, ids, guessed, err := s.state(ctx, id, guess)
		if err != nil {
			return Result{}, err
		}
		// A copy of a provider event that another request stored meanwhile is a duplicate, not a no-op: it
		// is checked here, before deciding, as well as by the store's unique index on append.
		if opt.EventID != "" && slices.Contains(ids, opt.EventID) {
			return Result{User: u}, &eventstore.DuplicateError{EventID: opt.EventID}
		}
		raised, err := cmd.Decide(u)
		if guessed && (err != nil || len(raised) == 0) {
			guess = false // a refusal or a no-op needs the real state
			attempt--
			continue
		}
		if err != nil {
			return Result{User: u}, err
		}
		if len(raised) == 0 {
			return Result{User: u}, nil
		}
		toStore, err := s.toStored(cmd, raised, opt)
		if err != nil {
			return Result{}, err
		}
		stored, err := s.store.Append(ctx, id, u.Version, toStore...)
		if err != nil && s.cache != nil {
			s.cache.drop(id)
		}
		if errors.Is(err, eventstore.ErrVersionConflict) && guessed {
			guess = false // the user exists: read it
			attempt--
			continue
		}
		if errors.Is(err, eventstore.ErrVersionConflict) && attempt < MaxAttempts {
			continue
		}
		if err != nil {
			return Result{User: u}, err
		}
		next := u.Clone()
		for i, e := range stored {
			next.Apply(raised[i], e.OccurredAt)
			next.Version, next.Position = e.Version, e.Position
			if opt.EventID != "" {
				// Only provider event ids can come again; generated ones need no remembering.
				ids = append(ids, e.ID)
			}
		}
		if s.cache != nil {
			s.cache.put(next, ids)
		}
		if s.known != nil {
			s.known.add(id)
		}
		return Result{User: next, Events: stored}, nil
	}
}

func (s *Service) toStored(cmd Command, raised []Event, opt Options) ([]eventstore.Event, error) {
	at := cmd.OccurredAt()
	if at.IsZero() {
		at = s.now()
	}
	out := make([]eventstore.Event, len(raised))
	for i, de := range raised {
		data, err := Encode(de)
		if err != nil {
			return nil, fmt.Errorf("aggregate: encode %s: %w", de.EventType(), err)
		}
		id := opt.EventID
		switch {
		case id == "":
			u, err := uuid.NewV7()
			if err != nil {
				return nil, err
			}
			id = u.String()
		case i > 0:
			id += "/" + strconv.Itoa(i+1)
		}
		out[i] = eventstore.Event{
			ID:         id,
			StreamType: StreamType,
			Type:       de.EventType(),
			Data:       data,
			Metadata:   opt.Metadata,
			OccurredAt: at.UTC(),
		}
	}
	return out, nil
}

// state is the user's current state and latest event ids, from the cache or the store; with guess, a user
// the cache does not hold is assumed new instead of read (guessed reports it).
func (s *Service) state(ctx context.Context, id string, guess bool) (User, []string, bool, error) {
	if s.cache != nil {
		if u, ids, ok := s.cache.get(id); ok {
			return u, ids, false, nil
		}
	}
	if guess && (s.cache != nil || s.known != nil) {
		return User{ID: id}, nil, true, nil
	}
	events, err := s.store.Load(ctx, id)
	if err != nil {
		return User{}, nil, false, err
	}
	u, err := Fold(id, events)
	if err != nil {
		return User{}, nil, false, err
	}
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	if s.cache != nil {
		s.cache.put(u, ids)
	}
	if s.known != nil && u.Version > 0 {
		s.known.add(id)
	}
	return u, ids, false, nil
}
