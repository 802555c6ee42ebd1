package aggregate

import (
	"net/mail"
	"reflect"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/userhook/userhook"
)

// MaxUserIDLength bounds a user id, in characters.
const MaxUserIDLength = 255

// MaxEmailLength bounds an email address, in characters (RFC 5321's path limit).
const MaxEmailLength = 254

// The outcomes that make a command raise nothing although it was well formed. The ingest service answers
// them as "ignored" with a reason, never as a failure of the request; elsewhere they carry a category, so that
// a transport that lets one through answers with a status that says what happened, not a 500.
var (
	// ErrStale: the command occurred before the user's last applied change. Conflict: the user's current
	// state is newer than the request, which a client can only settle by sending a newer change.
	ErrStale = userhook.Errorf(userhook.ErrConflict, "the change is older than the user's last change")
	// ErrUserDeleted: the command needs a user that is not deleted and the user is deleted. Conflict, not
	// NotFound: the user is known (its stream holds the deletion) and a later create or ensure restores it.
	ErrUserDeleted = userhook.Errorf(userhook.ErrConflict, "the user is deleted")
	// ErrUnknownUser: the command needs a user that was never registered. NotFound: there is no such user.
	ErrUnknownUser = userhook.Errorf(userhook.ErrNotFound, "the user was never registered")
)

// Attributes are what a provider said about a user; a nil field was not sent and changes nothing.
type Attributes struct {
	Email         *string
	EmailVerified *bool
	Name          *string
	Profile       map[string]any
	// Active is the state the provider gives the user along with its attributes (Clerk's banned, Keycloak's
	// enabled, WorkOS's state, Auth0's blocked): false deactivates an active user, true reactivates an
	// inactive one. A provider that only says so in lifecycle events of their own leaves it nil.
	Active *bool
}

// Command is a request to change one user. Decide returns the events it raises against the current state,
// none when nothing would change; it does not modify u.
type Command interface {
	// StreamID is the user id the command is for.
	StreamID() string
	// OccurredAt is when the change happened at the provider; zero when the provider did not say, and then
	// the command is never stale.
	OccurredAt() time.Time
	// Decide validates the command against u and returns the events it raises.
	Decide(u User) ([]Event, error)
}

// Register records a user the provider created. For a known user it applies whatever attributes differ; a
// deleted user whose creation is newer than the deletion is restored; an inactive user stays inactive.
type Register struct {
	UserID string
	Attributes
	At time.Time
}

// ChangeEmail records a new email address for a user that is not deleted (an inactive one stays inactive).
type ChangeEmail struct {
	UserID string
	Email  string
	At     time.Time
}

// UpdateProfile records a new name or profile for a user that is not deleted (an inactive one stays
// inactive).
type UpdateProfile struct {
	UserID  string
	Name    *string
	Profile map[string]any
	At      time.Time
}

// VerifyEmail records that the provider verified the user's email address. A user never seen is registered
// with the attributes given.
type VerifyEmail struct {
	UserID string
	Attributes
	At time.Time
}

// Delete records that the user was deleted. A user never seen gets a tombstone.
type Delete struct {
	UserID string
	At     time.Time
}

// Restore brings a deleted user back, active.
type Restore struct {
	UserID string
	At     time.Time
}

// Deactivate records that the provider deactivated or suspended the user: it is kept, inactive, with its
// attributes. The user must be known and not deleted; an inactive user raises nothing.
type Deactivate struct {
	UserID string
	At     time.Time
}

// Reactivate records that the provider reactivated an inactive user. The user must be known and not
// deleted; an active user raises nothing.
type Reactivate struct {
	UserID string
	At     time.Time
}

// Ensure is POST /users: the user exists afterwards, not deleted, with this email. The first call registers
// it, a new email is an email change, a deleted user is restored, and a call that changes nothing raises
// nothing.
//
// An inactive user stays inactive: Ensure comes from a login hook (the Auth0 Action), and a login at one
// provider does not override a deactivation that the provider's lifecycle (or another provider) reported.
// Only a reactivation makes the user active again.
type Ensure struct {
	UserID string
	Email  string
	At     time.Time
}

// Update is a provider's user.updated: the attributes given replace the user's. A user never seen is
// registered from them; a deleted user is left alone; an inactive one stays inactive.
type Update struct {
	UserID string
	Attributes
	At time.Time
}

// StreamID implements Command.
func (c Register) StreamID() string { return c.UserID }

// StreamID implements Command.
func (c ChangeEmail) StreamID() string { return c.UserID }

// StreamID implements Command.
func (c UpdateProfile) StreamID() string { return c.UserID }

// StreamID implements Command.
func (c VerifyEmail) StreamID() string { return c.UserID }

// StreamID implements Command.
func (c Delete) StreamID() string { return c.UserID }

// StreamID implements Command.
func (c Restore) StreamID() string { return c.UserID }

// StreamID implements Command.
func (c Deactivate) StreamID() string { return c.UserID }

// StreamID implements Command.
func (c Reactivate) StreamID() string { return c.UserID }

// StreamID implements Command.
func (c Ensure) StreamID() string { return c.UserID }

// StreamID implements Command.
func (c Update) StreamID() string { return c.UserID }

// OccurredAt implements Command.
func (c Register) OccurredAt() time.Time { return c.At }

// OccurredAt implements Command.
func (c ChangeEmail) OccurredAt() time.Time { return c.At }

// OccurredAt implements Command.
func (c UpdateProfile) OccurredAt() time.Time { return c.At }

// OccurredAt implements Command.
func (c VerifyEmail) OccurredAt() time.Time { return c.At }

// OccurredAt implements Command.
func (c Delete) OccurredAt() time.Time { return c.At }

// OccurredAt implements Command.
func (c Restore) OccurredAt() time.Time { return c.At }

// OccurredAt implements Command.
func (c Deactivate) OccurredAt() time.Time { return c.At }

// OccurredAt implements Command.
func (c Reactivate) OccurredAt() time.Time { return c.At }

// OccurredAt implements Command.
func (c Ensure) OccurredAt() time.Time { return c.At }

// OccurredAt implements Command.
func (c Update) OccurredAt() time.Time { return c.At }

// Decide implements Command.
func (c Register) Decide(u User) ([]Event, error) {
	email := c.Email
	if email != nil && u.Exists() && *email == u.Email {
		email = nil // the stored address was checked when it was stored: a repeat login need not parse it again
	}
	if err := validate(c.UserID, email); err != nil {
		return nil, err
	}
	if err := stale(u, c.At); err != nil {
		return nil, err
	}
	if !u.Exists() {
		return registeredWith(c.Attributes), nil
	}
	var out []Event
	if u.Deleted() {
		out = append(out, UserRestored{})
	}
	return append(out, changes(u, c.Attributes)...), nil
}

// Decide implements Command.
func (c ChangeEmail) Decide(u User) ([]Event, error) {
	if err := validate(c.UserID, &c.Email); err != nil {
		return nil, err
	}
	if err := existing(u, c.At); err != nil {
		return nil, err
	}
	return changes(u, Attributes{Email: &c.Email}), nil
}

// Decide implements Command.
func (c UpdateProfile) Decide(u User) ([]Event, error) {
	if err := validate(c.UserID, nil); err != nil {
		return nil, err
	}
	if err := existing(u, c.At); err != nil {
		return nil, err
	}
	return changes(u, Attributes{Name: c.Name, Profile: c.Profile}), nil
}

// Decide implements Command.
func (c VerifyEmail) Decide(u User) ([]Event, error) {
	if err := validate(c.UserID, c.Email); err != nil {
		return nil, err
	}
	if err := stale(u, c.At); err != nil {
		return nil, err
	}
	verified := true
	a := c.Attributes
	a.EmailVerified = &verified
	if !u.Exists() {
		return registeredWith(a), nil
	}
	if u.Deleted() {
		return nil, ErrUserDeleted
	}
	return changes(u, a), nil
}

// Decide implements Command.
func (c Delete) Decide(u User) ([]Event, error) {
	if err := validate(c.UserID, nil); err != nil {
		return nil, err
	}
	if err := stale(u, c.At); err != nil {
		return nil, err
	}
	if u.Deleted() {
		return nil, nil
	}
	return []Event{UserDeleted{}}, nil
}

// Decide implements Command.
func (c Restore) Decide(u User) ([]Event, error) {
	if err := validate(c.UserID, nil); err != nil {
		return nil, err
	}
	if !u.Exists() {
		return nil, ErrUnknownUser
	}
	if err := stale(u, c.At); err != nil {
		return nil, err
	}
	if !u.Deleted() {
		return nil, nil
	}
	return []Event{UserRestored{}}, nil
}

// Decide implements Command.
func (c Deactivate) Decide(u User) ([]Event, error) {
	if err := validate(c.UserID, nil); err != nil {
		return nil, err
	}
	if err := existing(u, c.At); err != nil {
		return nil, err
	}
	if u.Inactive() {
		return nil, nil
	}
	return []Event{UserDeactivated{}}, nil
}

// Decide implements Command.
func (c Reactivate) Decide(u User) ([]Event, error) {
	if err := validate(c.UserID, nil); err != nil {
		return nil, err
	}
	if err := existing(u, c.At); err != nil {
		return nil, err
	}
	if !u.Inactive() {
		return nil, nil
	}
	return []Event{UserReactivated{}}, nil
}

// Decide implements Command.
func (c Ensure) Decide(u User) ([]Event, error) {
	return Register{UserID: c.UserID, Attributes: Attributes{Email: &c.Email}, At: c.At}.Decide(u)
}

// Decide implements Command.
func (c Update) Decide(u User) ([]Event, error) {
	if err := validate(c.UserID, c.Email); err != nil {
		return nil, err
	}
	if err := stale(u, c.At); err != nil {
		return nil, err
	}
	if !u.Exists() {
		return registeredWith(c.Attributes), nil
	}
	if u.Deleted() {
		return nil, ErrUserDeleted
	}
	return changes(u, c.Attributes), nil
}

// registeredWith is the registration of a new user with a, deactivated at once when a says it is not active.
func registeredWith(a Attributes) []Event {
	out := []Event{registered(a)}
	if a.Active != nil && !*a.Active {
		out = append(out, UserDeactivated{})
	}
	return out
}

func registered(a Attributes) UserRegistered {
	e := UserRegistered{Profile: a.Profile}
	if a.Email != nil {
		e.Email = *a.Email
	}
	if a.EmailVerified != nil {
		e.EmailVerified = *a.EmailVerified
	}
	if a.Name != nil {
		e.Name = *a.Name
	}
	if len(e.Profile) == 0 {
		e.Profile = nil
	}
	return e
}

// changes lists the events that bring u's attributes to a, in a fixed order: email, profile, verification,
// then the state a gives (a deleted user being restored counts as active).
func changes(u User, a Attributes) []Event {
	var out []Event
	emailChanged := a.Email != nil && *a.Email != u.Email
	if emailChanged {
		out = append(out, UserEmailChanged{Email: *a.Email, Previous: u.Email})
	}
	var p UserProfileUpdated
	if a.Name != nil && *a.Name != u.Name {
		p.Name = a.Name
	}
	if a.Profile != nil && !sameProfile(a.Profile, u.Profile) {
		p.Profile = a.Profile
	}
	if p.Name != nil || p.Profile != nil {
		out = append(out, p)
	}
	if a.EmailVerified != nil && *a.EmailVerified && (emailChanged || !u.EmailVerified) {
		email := u.Email
		if a.Email != nil {
			email = *a.Email
		}
		out = append(out, UserEmailVerified{Email: email})
	}
	if a.Active != nil {
		switch {
		case !*a.Active && u.Status != StatusInactive:
			out = append(out, UserDeactivated{})
		case *a.Active && u.Status == StatusInactive:
			out = append(out, UserReactivated{})
		}
	}
	return out
}

func sameProfile(a, b map[string]any) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

func stale(u User, at time.Time) error {
	if !at.IsZero() && u.Exists() && at.Before(u.UpdatedAt) {
		return ErrStale
	}
	return nil
}

// existing checks, in this order, that u is known, that at is not older than u's last change, and that u is
// not deleted (an inactive user passes).
func existing(u User, at time.Time) error {
	if !u.Exists() {
		return ErrUnknownUser
	}
	if err := stale(u, at); err != nil {
		return err
	}
	if u.Deleted() {
		return ErrUserDeleted
	}
	return nil
}

func validate(userID string, email *string) error {
	var fe userhook.FieldErrors
	if msg := CheckUserID(userID); msg != "" {
		fe.Add("user_id", msg)
	}
	if email != nil {
		if msg := CheckEmail(*email); msg != "" {
			fe.Add("email", msg)
		}
	}
	return fe.Err()
}

// CheckUserID returns what is wrong with a user id, or "" when it is acceptable.
func CheckUserID(id string) string {
	switch {
	case id == "":
		return "user_id is required"
	case !utf8.ValidString(id):
		return "user_id must be valid UTF-8"
	case utf8.RuneCountInString(id) > MaxUserIDLength:
		return "user_id must be at most 255 characters"
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return "user_id must not contain control characters"
	case strings.TrimSpace(id) != id:
		return "user_id must not start or end with white space"
	}
	return ""
}

// CheckEmail returns what is wrong with an email address, or "" when it is acceptable: a bare address
// (no display name), local@domain with a dot-free or dotted domain, at most 254 characters.
func CheckEmail(email string) string {
	if email == "" {
		return "Email is required"
	}
	if len(email) > MaxEmailLength || !utf8.ValidString(email) || strings.IndexFunc(email, unicode.IsControl) >= 0 {
		return "Invalid email format"
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" {
		return "Invalid email format"
	}
	at := strings.LastIndexByte(email, '@')
	if at <= 0 || at == len(email)-1 || strings.ContainsAny(email, " \t") {
		return "Invalid email format"
	}
	return ""
}
