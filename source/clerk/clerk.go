// Package clerk reads Clerk's webhooks, which Svix delivers: a request is signed the Standard Webhooks way
// with the svix- header prefix, and carries one event whose data is a Clerk User.
//
// The mapping: user.created is KindCreated; user.updated is KindUpdated, or KindDeactivated when the user is
// banned (a ban is how Clerk deactivates a user, and it arrives as a user.updated); user.deleted is
// KindDeleted; any other type (sessions, organizations, emails...) concerns no user state and is ignored.
// Clerk sends the whole user on every update without saying what changed, so an unban is an ordinary
// KindUpdated: a decoder of one request cannot tell it from any other update. Clerk's `locked` (a lockout
// after failed sign-ins, which expires by itself) is not a deactivation and is not read.
package clerk

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/ingest"
	"github.com/userhook/userhook/source"
	"github.com/userhook/userhook/standardwebhooks"
)

// Tolerance is how far a request's svix-timestamp may be from the time it arrived, either way (Svix's).
const Tolerance = 5 * time.Minute

// The headers Svix signs a request with.
const (
	HeaderID        = "svix-id"
	HeaderTimestamp = "svix-timestamp"
	HeaderSignature = "svix-signature"
)

// maxMetadata bounds a metadata value taken from the request, in bytes.
const maxMetadata = 100

// Decoder reads Clerk's requests; its zero value is ready.
type Decoder struct{}

var _ source.Decoder = Decoder{}

// Authenticate checks the Svix signature against either secret (whsec_ and base64, as Clerk shows it) and
// the signed timestamp against Tolerance.
func (Decoder) Authenticate(r source.Request, secrets []string) error {
	id, ts, sig := r.Header.Get(HeaderID), r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature)
	for _, h := range []struct{ name, value string }{{HeaderID, id}, {HeaderTimestamp, ts}, {HeaderSignature, sig}} {
		if h.value == "" {
			return unauthorized("missing " + h.name + " header")
		}
	}
	seconds, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return unauthorized("malformed " + HeaderTimestamp + " header")
	}
	if !within(now(r), time.Unix(seconds, 0), Tolerance) {
		return unauthorized("timestamp outside the 5 minute tolerance")
	}
	if !hasV1(sig) {
		return unauthorized("malformed " + HeaderSignature + " header")
	}
	keys := make([][]byte, 0, len(secrets))
	for _, s := range secrets {
		if key, err := standardwebhooks.ParseSecret(s); err == nil {
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		return unauthorized("the source has no valid whsec_ secret")
	}
	if standardwebhooks.Match(sig, id, ts, r.Body, keys) < 0 {
		return unauthorized("signature does not match")
	}
	return nil
}

// hasV1 says whether a svix-signature header holds at least one "v1,<base64>" signature.
func hasV1(header string) bool {
	for _, s := range strings.Fields(header) {
		version, value, ok := strings.Cut(s, ",")
		if _, err := base64.StdEncoding.DecodeString(value); ok && version == "v1" && err == nil {
			return true
		}
	}
	return false
}

func unauthorized(reason string) error {
	return userhook.Errorf(userhook.ErrUnauthorized, "%s", reason)
}

func now(r source.Request) time.Time {
	if r.Now.IsZero() {
		return time.Now()
	}
	return r.Now
}

func within(now, t time.Time, tolerance time.Duration) bool {
	d := now.Sub(t)
	return d <= tolerance && d >= -tolerance
}

// envelope is the body of a Clerk webhook.
type envelope struct {
	Type      string          `json:"type"`
	Timestamp *int64          `json:"timestamp"` // milliseconds
	Data      json.RawMessage `json:"data"`
}

// user is what userhook reads of a Clerk User. private_metadata and unsafe_metadata are not read: the first
// is Clerk's place for secrets, the second is whatever the user's browser wrote.
type user struct {
	ID                    string         `json:"id"`
	EmailAddresses        []emailAddress `json:"email_addresses"`
	PrimaryEmailAddressID *string        `json:"primary_email_address_id"`
	FirstName             *string        `json:"first_name"`
	LastName              *string        `json:"last_name"`
	Username              *string        `json:"username"`
	ExternalID            *string        `json:"external_id"`
	ImageURL              *string        `json:"image_url"`
	PublicMetadata        map[string]any `json:"public_metadata"`
	Banned                bool           `json:"banned"`
	UpdatedAt             *int64         `json:"updated_at"` // milliseconds
}

type emailAddress struct {
	ID           string `json:"id"`
	EmailAddress string `json:"email_address"`
	Verification *struct {
		Status string `json:"status"`
	} `json:"verification"`
}

// kinds maps Clerk's user event types; user.updated may become KindDeactivated (see the package comment).
var kinds = map[string]ingest.Kind{
	"user.created": ingest.KindCreated,
	"user.updated": ingest.KindUpdated,
	"user.deleted": ingest.KindDeleted,
}

// Decode reads the request's one event. Its ID and ProviderEventID are the svix-id, the same on every retry
// of one message.
func (Decoder) Decode(r source.Request) ([]ingest.Event, error) {
	var fe userhook.FieldErrors
	id := r.Header.Get(HeaderID)
	if id == "" {
		fe.Add(HeaderID, "header is required")
	}
	var env envelope
	if err := json.Unmarshal(r.Body, &env); err != nil {
		typeFault(&fe, "", err)
		return nil, fe.Err()
	}
	e := ingest.Event{
		ID:              id,
		ProviderEventID: id,
		Metadata:        map[string]string{"provider": string(source.Clerk), "provider_event_type": truncate(env.Type)},
	}
	if env.Timestamp != nil {
		e.OccurredAt = time.UnixMilli(*env.Timestamp).UTC()
	}
	kind, ok := kinds[env.Type]
	if !ok {
		if err := fe.Err(); err != nil {
			return nil, err
		}
		return []ingest.Event{e}, nil // not about a user: acknowledged as ignored
	}
	var u user
	if len(env.Data) > 0 && string(env.Data) != "null" {
		if err := json.Unmarshal(env.Data, &u); err != nil {
			typeFault(&fe, "data", err)
			return nil, fe.Err()
		}
	}
	if msg := aggregate.CheckUserID(u.ID); msg != "" {
		fe.Add("data.id", strings.Replace(msg, "user_id", "the user id", 1))
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	e.UserID, e.Kind = u.ID, kind
	if e.OccurredAt.IsZero() && u.UpdatedAt != nil {
		e.OccurredAt = time.UnixMilli(*u.UpdatedAt).UTC()
	}
	if kind == ingest.KindDeleted {
		return []ingest.Event{e}, nil // data is only {id, object, deleted}
	}
	if kind == ingest.KindUpdated && u.Banned {
		e.Kind = ingest.KindDeactivated
	}
	e.Attributes = attributes(u)
	return []ingest.Event{e}, nil
}

// attributes reads the primary email address, its verification, the name and the profile of a user.
func attributes(u user) aggregate.Attributes {
	var a aggregate.Attributes
	if u.PrimaryEmailAddressID != nil {
		for _, addr := range u.EmailAddresses {
			if addr.ID != *u.PrimaryEmailAddressID || addr.EmailAddress == "" {
				continue
			}
			email := addr.EmailAddress
			a.Email = &email
			if addr.Verification != nil && addr.Verification.Status != "" {
				verified := addr.Verification.Status == "verified"
				a.EmailVerified = &verified
			}
			break
		}
	}
	a.Name = joinName(u.FirstName, u.LastName)
	profile := map[string]any{}
	for key, value := range map[string]*string{
		"username": u.Username, "first_name": u.FirstName, "last_name": u.LastName,
		"external_id": u.ExternalID, "image_url": u.ImageURL,
	} {
		if value != nil && *value != "" {
			profile[key] = *value
		}
	}
	if len(u.PublicMetadata) > 0 {
		profile["public_metadata"] = u.PublicMetadata
	}
	// Clerk sends the whole user, so an empty profile is one whose fields were all cleared: it replaces the
	// stored one (a user registered from it has none).
	a.Profile = profile
	return a
}

// joinName is "first last", trimmed; nil when both are empty.
func joinName(first, last *string) *string {
	var parts []string
	for _, p := range []*string{first, last} {
		if p != nil && strings.TrimSpace(*p) != "" {
			parts = append(parts, strings.TrimSpace(*p))
		}
	}
	if len(parts) == 0 {
		return nil
	}
	name := strings.Join(parts, " ")
	return &name
}

// typeFault reports a JSON decoding error of the value at path as a field fault.
func typeFault(fe *userhook.FieldErrors, path string, err error) {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := strings.Trim(path+"."+te.Field, ".")
		if field == "" {
			field = "body"
		}
		fe.Add(field, "must be "+jsonKind(te.Type))
		return
	}
	if path == "" {
		path = "body"
	}
	fe.Add(path, "must be a JSON object")
}

// jsonKind names the JSON value a Go type is read from.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	default:
		return "a JSON object"
	}
}

// truncate keeps metadata short: at most maxMetadata bytes, cut on a character boundary.
func truncate(s string) string {
	if len(s) <= maxMetadata {
		return s
	}
	cut := maxMetadata
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
