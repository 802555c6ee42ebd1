// Package eventstore defines the append-only event store that userhook writes every user event to.
//
// The store is the outbox: a request is acknowledged once its events are committed here, and everything
// downstream (projections, deliveries) reads from it by global position. This package uses the standard
// library alone; implementations live in sub-packages (sqlite, postgres) and all of them pass the
// contract suite in storetest.
package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Event is one stored fact of one stream.
type Event struct {
	// ID is unique across the whole store; a second event with the same ID is rejected with ErrDuplicate.
	ID string
	// StreamID names the aggregate instance, for users the user id.
	StreamID string
	// StreamType names the aggregate kind, for example "UserAggregate".
	StreamType string
	// Version is the event's 1-based position within its stream.
	Version int64
	// Position is the event's 1-based position in the whole store, assigned at commit.
	Position int64
	// Type is the versioned type string, for example "user.registered.v1".
	Type string
	// Data is the event payload as JSON.
	Data json.RawMessage
	// Metadata carries provenance (request id, source, outer and inner event ids, trace).
	Metadata map[string]string
	// OccurredAt is when the change happened at the provider.
	OccurredAt time.Time
	// RecordedAt is when the store committed the event.
	RecordedAt time.Time
}

// ExpectAny disables the optimistic concurrency check of an append.
const ExpectAny int64 = -1

// Store is an append-only, totally ordered log of events grouped into streams.
type Store interface {
	// Append adds events to the end of stream, provided the stream is at expectedVersion (0 for a new stream,
	// ExpectAny to skip the check). The events get consecutive versions after expectedVersion, global positions
	// in commit order, and their recorded time; the stored events are returned. All or none are stored.
	Append(ctx context.Context, stream string, expectedVersion int64, events ...Event) ([]Event, error)
	// Load returns every event of stream in version order; an unknown stream has none.
	Load(ctx context.Context, stream string) ([]Event, error)
	// ReadAll returns up to limit events with a position greater than after, in position order.
	// A reader that resumes from the last position it saw never skips an event.
	ReadAll(ctx context.Context, after int64, limit int) ([]Event, error)
	// LastPosition returns the position of the newest committed event, 0 for an empty store.
	LastPosition(ctx context.Context) (int64, error)
	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's resources; pending appends finish first.
	Close() error
}

// ErrVersionConflict is returned by Append when the stream is not at the expected version.
var ErrVersionConflict = errors.New("eventstore: version conflict")

// ErrDuplicate is returned by Append when an event with one of the given IDs is already stored.
var ErrDuplicate = errors.New("eventstore: duplicate event id")

// ErrClosed is returned by an operation on a closed store.
var ErrClosed = errors.New("eventstore: closed")

// VersionConflictError says which stream was at which version; it matches ErrVersionConflict.
type VersionConflictError struct {
	Stream   string
	Expected int64
	Actual   int64
}

// Error says which stream was at which version.
func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("eventstore: stream %q is at version %d, expected %d", e.Stream, e.Actual, e.Expected)
}

// Is makes errors.Is(err, ErrVersionConflict) true.
func (e *VersionConflictError) Is(target error) bool { return target == ErrVersionConflict }

// DuplicateError names the event id that is already stored; it matches ErrDuplicate.
type DuplicateError struct {
	EventID string
}

// Error names the event id that is stored already.
func (e *DuplicateError) Error() string {
	return fmt.Sprintf("eventstore: event %q is already stored", e.EventID)
}

// Is makes errors.Is(err, ErrDuplicate) true.
func (e *DuplicateError) Is(target error) bool { return target == ErrDuplicate }

// Validate reports what makes an append request unacceptable before it reaches storage.
func Validate(stream string, expectedVersion int64, events []Event) error {
	if stream == "" {
		return errors.New("eventstore: empty stream id")
	}
	if expectedVersion < ExpectAny {
		return fmt.Errorf("eventstore: invalid expected version %d", expectedVersion)
	}
	if len(events) == 0 {
		return errors.New("eventstore: no events to append")
	}
	seen := make(map[string]struct{}, len(events))
	for i, e := range events {
		if e.ID == "" {
			return fmt.Errorf("eventstore: event %d has no id", i)
		}
		if e.Type == "" {
			return fmt.Errorf("eventstore: event %d has no type", i)
		}
		if _, ok := seen[e.ID]; ok {
			return &DuplicateError{EventID: e.ID}
		}
		seen[e.ID] = struct{}{}
	}
	return nil
}

// Receipts is implemented by stores that also remember provider events that were received but raised no event
// (ignored ones), so that a second copy of any provider event is recognised as a duplicate, whatever became of
// the first.
type Receipts interface {
	// Received says whether key was recorded as a receipt or is the id of a stored event.
	Received(ctx context.Context, key string) (bool, error)
	// Receive records key with what became of it; ErrDuplicate when key is already recorded or stored.
	Receive(ctx context.Context, key, outcome string) error
}
