package aggregate

import (
	"encoding/json"
	"fmt"

	"github.com/userhook/userhook/eventstore"
)

// StreamType is the stream type of every user stream.
const StreamType = "UserAggregate"

// The stored type strings of the domain events. They are versioned so the schema can evolve: a changed
// payload gets a new version and apply keeps reading the old ones.
const (
	TypeUserRegistered     = "user.registered.v1"
	TypeUserEmailChanged   = "user.email_changed.v1"
	TypeUserProfileUpdated = "user.profile_updated.v1"
	TypeUserEmailVerified  = "user.email_verified.v1"
	TypeUserDeleted        = "user.deleted.v1"
	TypeUserRestored       = "user.restored.v1"
	TypeUserDeactivated    = "user.deactivated.v1"
	TypeUserReactivated    = "user.reactivated.v1"
)

// Event is a domain event of UserAggregate: a past-tense fact about one user.
type Event interface {
	// EventType is the stored, versioned type string.
	EventType() string
}

// UserRegistered: the user became known, with the attributes the provider sent.
type UserRegistered struct {
	Email         string         `json:"email,omitempty"`
	EmailVerified bool           `json:"emailVerified,omitempty"`
	Name          string         `json:"name,omitempty"`
	Profile       map[string]any `json:"profile,omitempty"`
}

// UserEmailChanged: the user's email address changed; a new address is not verified.
type UserEmailChanged struct {
	Email    string `json:"email"`
	Previous string `json:"previous,omitempty"`
}

// UserProfileUpdated: the name or the profile changed. A nil Name leaves the name as it was; a nil Profile
// leaves the profile as it was.
type UserProfileUpdated struct {
	Name *string `json:"name,omitempty"`
	// Profile has no omitempty: an empty profile ({}) clears it, an absent one (null) keeps it.
	Profile map[string]any `json:"profile"`
}

// UserEmailVerified: the provider verified the user's email address.
type UserEmailVerified struct {
	Email string `json:"email,omitempty"`
}

// UserDeleted: the user was deleted at the provider. A deletion of a user never seen before is kept too, as a
// tombstone, so that an older creation arriving late does not bring the user back.
type UserDeleted struct{}

// UserRestored: a deleted user came back (posted again, or created again after the deletion).
type UserRestored struct{}

// UserDeactivated: the provider deactivated or suspended the user. The user is kept, inactive, with its
// attributes, until a UserReactivated (or a deletion).
type UserDeactivated struct{}

// UserReactivated: the provider reactivated an inactive user.
type UserReactivated struct{}

// EventType implements Event.
func (UserRegistered) EventType() string { return TypeUserRegistered }

// EventType implements Event.
func (UserEmailChanged) EventType() string { return TypeUserEmailChanged }

// EventType implements Event.
func (UserProfileUpdated) EventType() string { return TypeUserProfileUpdated }

// EventType implements Event.
func (UserEmailVerified) EventType() string { return TypeUserEmailVerified }

// EventType implements Event.
func (UserDeleted) EventType() string { return TypeUserDeleted }

// EventType implements Event.
func (UserRestored) EventType() string { return TypeUserRestored }

// EventType implements Event.
func (UserDeactivated) EventType() string { return TypeUserDeactivated }

// EventType implements Event.
func (UserReactivated) EventType() string { return TypeUserReactivated }

// Decode turns a stored event's payload back into its domain event.
func Decode(e eventstore.Event) (Event, error) {
	var target Event
	switch e.Type {
	case TypeUserRegistered:
		var v UserRegistered
		if err := unmarshal(e.Data, &v); err != nil {
			return nil, fmt.Errorf("aggregate: decode %s %s: %w", e.Type, e.ID, err)
		}
		target = v
	case TypeUserEmailChanged:
		var v UserEmailChanged
		if err := unmarshal(e.Data, &v); err != nil {
			return nil, fmt.Errorf("aggregate: decode %s %s: %w", e.Type, e.ID, err)
		}
		target = v
	case TypeUserProfileUpdated:
		var v UserProfileUpdated
		if err := unmarshal(e.Data, &v); err != nil {
			return nil, fmt.Errorf("aggregate: decode %s %s: %w", e.Type, e.ID, err)
		}
		target = v
	case TypeUserEmailVerified:
		var v UserEmailVerified
		if err := unmarshal(e.Data, &v); err != nil {
			return nil, fmt.Errorf("aggregate: decode %s %s: %w", e.Type, e.ID, err)
		}
		target = v
	case TypeUserDeleted:
		target = UserDeleted{}
	case TypeUserRestored:
		target = UserRestored{}
	case TypeUserDeactivated:
		target = UserDeactivated{}
	case TypeUserReactivated:
		target = UserReactivated{}
	default:
		return nil, fmt.Errorf("aggregate: unknown event type %q", e.Type)
	}
	return target, nil
}

func unmarshal(data json.RawMessage, v any) error {
	if len(data) == 0 || string(data) == "null" {
		return nil
	}
	return json.Unmarshal(data, v)
}

// The public event types: the names the outside world uses for what happened to a user. Providers send them
// (CloudEvents types), webhooks subscribe to them and receive them (the delivered CloudEvent's type). They are
// written here, once; stored types are finer and versioned, and PublicType maps them.
const (
	PublicUserCreated       = "user.created"
	PublicUserUpdated       = "user.updated"
	PublicUserDeleted       = "user.deleted"
	PublicUserEmailVerified = "user.email_verified"
	PublicUserDeactivated   = "user.deactivated"
	PublicUserReactivated   = "user.reactivated"
)

// PublicTypes returns every public event type, in the order they are listed to subscribers.
func PublicTypes() []string {
	return []string{PublicUserCreated, PublicUserUpdated, PublicUserDeleted, PublicUserEmailVerified,
		PublicUserDeactivated, PublicUserReactivated}
}

// StoredTypes returns every stored event type that Decode reads.
func StoredTypes() []string {
	return []string{TypeUserRegistered, TypeUserEmailChanged, TypeUserProfileUpdated, TypeUserEmailVerified,
		TypeUserDeleted, TypeUserRestored, TypeUserDeactivated, TypeUserReactivated}
}

// PublicType is the public type of a stored event type: an email or profile change is a user.updated, a
// restore a user.created. It is "" for a type that is not a user event.
func PublicType(storedType string) string {
	switch storedType {
	case TypeUserRegistered, TypeUserRestored:
		return PublicUserCreated
	case TypeUserEmailChanged, TypeUserProfileUpdated:
		return PublicUserUpdated
	case TypeUserDeleted:
		return PublicUserDeleted
	case TypeUserEmailVerified:
		return PublicUserEmailVerified
	case TypeUserDeactivated:
		return PublicUserDeactivated
	case TypeUserReactivated:
		return PublicUserReactivated
	}
	return ""
}
