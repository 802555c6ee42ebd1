// Package ingest turns what identity providers say about their users into commands, whatever format they say
// it in. A decoder (in transport: the Auth0 Action body, CloudEvents with AuthPI's inner event, and later each
// provider's own webhook) reads one request into provider-neutral Events; the Service applies each one and
// answers the documented Result: applied, duplicate or ignored, with a reason and a position.
//
// The Service is the one way a user is written: it owns the idempotency key, the receipts of events that
// raised nothing, the duplicate check before deciding, the mapping of a Kind to an aggregate command, the
// classification of the command's outcome and the counting of it. It knows no HTTP and no wire format.
package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/userhook/userhook/aggregate"
)

// Kind is what an event says happened to a user at its provider.
type Kind string

// The kinds the Service applies. A decoder leaves the Kind empty for an event of its provider that is none of
// them (an organization event, say): the Service acknowledges any other Kind as ignored, reason
// unsupported_type.
const (
	// KindCreated: the provider created the user (a known user takes the attributes; a deleted one whose
	// creation is newer than its deletion is restored).
	KindCreated Kind = "created"
	// KindUpdated: the provider changed the user's attributes.
	KindUpdated Kind = "updated"
	// KindDeleted: the provider deleted the user.
	KindDeleted Kind = "deleted"
	// KindEmailVerified: the provider verified the user's email address.
	KindEmailVerified Kind = "email_verified"
	// KindEnsured: the user exists, not deleted, with the email of Attributes (an Auth0 Action's POST /users).
	// It restores a deleted user, leaves an inactive one inactive, and changes nothing for a user that is
	// already so.
	KindEnsured Kind = "ensured"
	// KindDeactivated: the provider deactivated, suspended or blocked the user; it is kept, inactive, and can
	// be reactivated. A user never registered is ignored (no_change: there is no active user to deactivate).
	KindDeactivated Kind = "deactivated"
	// KindReactivated: the provider reactivated (unsuspended, unblocked) the user. A user never registered
	// is ignored (no_change).
	KindReactivated Kind = "reactivated"
)

// Event is one thing a provider said about one user, as every decoder hands it to the Service.
type Event struct {
	// ID is the event's id as the request named it; its Result echoes it (a CloudEvent's id, even when the
	// event applied is AuthPI's inner event).
	ID string
	// Source and ProviderEventID identify the event at its provider (a CloudEvent's source and id, the
	// inner event's for AuthPI); together they are its idempotency key. An event with neither has no key:
	// it cannot be told from a copy of itself, so it is applied as what it says each time.
	Source          string
	ProviderEventID string
	// UserID is the provider's id of the user.
	UserID string
	// Kind is what happened.
	Kind Kind
	// OccurredAt is when it happened at the provider; zero when the provider did not say, and then the event
	// is never older than anything.
	OccurredAt time.Time
	// Attributes are what the provider said about the user: email, email verified, name, and the rest as the
	// profile; a nil attribute was not sent and changes nothing.
	Attributes aggregate.Attributes
	// Metadata is stored with the events the event raises (provenance, request id).
	Metadata map[string]string
}

// Key is the event's idempotency key: its source and provider event id hashed to a fixed length, the id of
// the first event it raises; "" for an event with neither. The prefix "ce_" dates from when CloudEvents were
// the only format: it stays, so that a copy of an event received before this package existed is still
// recognised.
func (e Event) Key() string {
	if e.Source == "" && e.ProviderEventID == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(e.Source + "\n" + e.ProviderEventID))
	return "ce_" + hex.EncodeToString(sum[:16])
}

// commands maps each Kind the Service applies to its aggregate command: the one list of them.
var commands = map[Kind]func(e Event) aggregate.Command{
	KindCreated: func(e Event) aggregate.Command {
		return aggregate.Register{UserID: e.UserID, Attributes: e.Attributes, At: e.OccurredAt}
	},
	KindUpdated: func(e Event) aggregate.Command {
		return aggregate.Update{UserID: e.UserID, Attributes: e.Attributes, At: e.OccurredAt}
	},
	KindDeleted: func(e Event) aggregate.Command { return aggregate.Delete{UserID: e.UserID, At: e.OccurredAt} },
	KindDeactivated: func(e Event) aggregate.Command {
		return aggregate.Deactivate{UserID: e.UserID, At: e.OccurredAt}
	},
	KindReactivated: func(e Event) aggregate.Command {
		return aggregate.Reactivate{UserID: e.UserID, At: e.OccurredAt}
	},
	KindEmailVerified: func(e Event) aggregate.Command {
		return aggregate.VerifyEmail{UserID: e.UserID, Attributes: e.Attributes, At: e.OccurredAt}
	},
	KindEnsured: func(e Event) aggregate.Command {
		var email string
		if e.Attributes.Email != nil {
			email = *e.Attributes.Email
		}
		return aggregate.Ensure{UserID: e.UserID, Email: email, At: e.OccurredAt}
	},
}

// Command is the aggregate command for the event, or nil when its Kind is not one the Service applies.
func (e Event) Command() aggregate.Command {
	if command, ok := commands[e.Kind]; ok {
		return command(e)
	}
	return nil
}

// Applies says whether the Service turns events of kind k into a command.
func (k Kind) Applies() bool {
	_, ok := commands[k]
	return ok
}

// The statuses of a Result (API.md, POST /events).
const (
	// StatusApplied: the event changed the user.
	StatusApplied = "applied"
	// StatusDuplicate: this event (its idempotency key) was received before, whatever became of it.
	StatusDuplicate = "duplicate"
	// StatusIgnored: the event raised nothing; Reason says why.
	StatusIgnored = "ignored"
)

// The reasons of an ignored Result.
const (
	// ReasonUnsupportedType: the event's Kind is not one the Service applies.
	ReasonUnsupportedType = "unsupported_type"
	// ReasonStale: the event occurred before the user's last applied change.
	ReasonStale = "stale"
	// ReasonNoChange: the user already is as the event says (or, for a deactivation or reactivation, was never
	// registered: nothing to change).
	ReasonNoChange = "no_change"
	// ReasonDeleted: the event needs a user that is not deleted and the user is deleted.
	ReasonDeleted = "deleted"
)

// Reasons lists every reason an event is ignored for.
func Reasons() []string {
	return []string{ReasonUnsupportedType, ReasonStale, ReasonNoChange, ReasonDeleted}
}

// Result is what became of one event; its JSON is one result of POST /events.
type Result struct {
	EventID string `json:"eventId"`
	UserID  string `json:"userId,omitempty"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	// Position is the global position of the last event the event raised; only when it was applied.
	Position int64 `json:"position,omitempty"`
	// UserPosition is the global position of the user's latest event as the Service found or left it,
	// whatever the status (0 when it did not look): what a client waits for to read its write.
	UserPosition int64 `json:"-"`
}
