// Package aggregate is UserAggregate: the user's state folded from its stream, the commands that decide which
// events a request raises, and the command service that loads, decides and appends.
//
// Commands decide and apply only changes state: a command validates and returns the events it raises (none
// for a no-op), apply never fails and never validates, so rebuilding from history always succeeds.
package aggregate

import (
	"encoding/json"
	"maps"
	"time"

	"github.com/userhook/userhook/eventstore"
)

// Status is whether a user is active, inactive or deleted.
type Status string

// The user statuses.
const (
	// StatusActive: the user is registered and in use.
	StatusActive Status = "active"
	// StatusInactive: the provider deactivated or suspended the user; it is kept, with its attributes, and
	// can be reactivated.
	StatusInactive Status = "inactive"
	// StatusDeleted: the provider deleted the user; a later creation or ensure restores it.
	StatusDeleted Status = "deleted"
)

// User is the state of one user stream.
type User struct {
	ID            string
	Email         string
	EmailVerified bool
	Name          string
	Profile       map[string]any
	Status        Status
	// Version is the stream version of the last applied event, 0 for a user never seen.
	Version int64
	// Position is the global position of the last applied event.
	Position int64
	// CreatedAt is when the user was first registered at the provider.
	CreatedAt time.Time
	// UpdatedAt is when the last applied change occurred at the provider; an event older than this is stale.
	UpdatedAt time.Time
}

// Exists says whether any event of the user has been stored (a tombstone counts).
func (u *User) Exists() bool { return u.Version > 0 }

// Deleted says whether the user is deleted.
func (u *User) Deleted() bool { return u.Status == StatusDeleted }

// Inactive says whether the user is deactivated (or suspended) at its provider.
func (u *User) Inactive() bool { return u.Status == StatusInactive }

// Clone returns a copy that shares nothing mutable with u.
func (u User) Clone() User {
	u.Profile = maps.Clone(u.Profile)
	return u
}

// Fold rebuilds a user from its stored events.
func Fold(id string, events []eventstore.Event) (User, error) {
	u := User{ID: id}
	for _, e := range events {
		if err := u.ApplyStored(e); err != nil {
			return User{}, err
		}
	}
	return u, nil
}

// ApplyStored applies one stored event of the user's stream and takes its version and position. It fails
// only when the payload cannot be decoded.
func (u *User) ApplyStored(e eventstore.Event) error {
	de, err := Decode(e)
	if err != nil {
		return err
	}
	if u.ID == "" {
		u.ID = e.StreamID
	}
	u.Apply(de, e.OccurredAt)
	u.Version = e.Version
	u.Position = e.Position
	return nil
}

// Apply changes the state by one event that occurred at the given time. It never fails.
func (u *User) Apply(e Event, occurredAt time.Time) {
	switch e := e.(type) {
	case UserRegistered:
		u.Email = e.Email
		u.EmailVerified = e.EmailVerified
		u.Name = e.Name
		u.Profile = maps.Clone(e.Profile)
		u.Status = StatusActive
		u.CreatedAt = occurredAt
	case UserEmailChanged:
		u.Email = e.Email
		u.EmailVerified = false
	case UserProfileUpdated:
		if e.Name != nil {
			u.Name = *e.Name
		}
		if e.Profile != nil {
			u.Profile = maps.Clone(e.Profile)
		}
	case UserEmailVerified:
		u.EmailVerified = true
	case UserDeleted:
		u.Status = StatusDeleted
	case UserRestored:
		u.Status = StatusActive
		if u.CreatedAt.IsZero() {
			u.CreatedAt = occurredAt
		}
	case UserDeactivated:
		u.Status = StatusInactive
	case UserReactivated:
		u.Status = StatusActive
	}
	if occurredAt.After(u.UpdatedAt) {
		u.UpdatedAt = occurredAt
	}
}

// Encode is the JSON payload stored for a domain event.
func Encode(e Event) (json.RawMessage, error) {
	switch e.(type) {
	case UserDeleted, UserRestored, UserDeactivated, UserReactivated:
		return json.RawMessage(`{}`), nil
	}
	return json.Marshal(e)
}
