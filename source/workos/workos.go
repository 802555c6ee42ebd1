// Package workos reads WorkOS's Directory Sync webhooks: a request carries one event, signed with the
// WorkOS-Signature header ("t=<ms>, v1=<hex HMAC-SHA256 of t.body>"), whose data is a directory user.
//
// The mapping: dsync.user.created is KindCreated; dsync.user.updated is KindUpdated, or KindDeactivated when
// the user's state is inactive (or suspended, which WorkOS folded into inactive in December 2023): WorkOS
// keeps a deprovisioned user that way rather than deleting it. An update whose state is active and whose
// previous_attributes (the attributes that changed, as they were) say the state was inactive is
// KindReactivated; without previous_attributes a reactivation cannot be told from any other update and is a
// KindUpdated. dsync.user.deleted is KindDeleted. Groups, connections and every other event are ignored.
package workos

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
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
)

// Tolerance is how far a request's signed timestamp may be from the time it arrived, either way (the WorkOS
// SDKs' default).
const Tolerance = 180 * time.Second

// HeaderSignature is the header WorkOS signs a request with.
const HeaderSignature = "WorkOS-Signature"

// maxMetadata bounds a metadata value taken from the request, in bytes.
const maxMetadata = 100

// Decoder reads WorkOS's requests; its zero value is ready.
type Decoder struct{}

var _ source.Decoder = Decoder{}

// Authenticate checks the WorkOS-Signature header against either secret (used as the HMAC key as it is) and
// its timestamp, in milliseconds, against Tolerance.
func (Decoder) Authenticate(r source.Request, secrets []string) error {
	header := r.Header.Get(HeaderSignature)
	if header == "" {
		return unauthorized("missing " + HeaderSignature + " header")
	}
	ts, sigs, ok := parseHeader(header)
	if !ok {
		return unauthorized("malformed " + HeaderSignature + " header")
	}
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return unauthorized("malformed " + HeaderSignature + " header")
	}
	if !within(now(r), time.UnixMilli(ms), Tolerance) {
		return unauthorized("timestamp outside the 3 minute tolerance")
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		want := mac(s, ts, r.Body)
		for _, sig := range sigs {
			if hmac.Equal(sig, want) {
				return nil
			}
		}
	}
	return unauthorized("signature does not match")
}

// parseHeader reads "t=<ms>, v1=<hex>": the timestamp as it was signed, and every v1 signature that is hex.
// Pairs of other schemes are skipped, as the SDKs do.
func parseHeader(header string) (ts string, sigs [][]byte, ok bool) {
	for _, part := range strings.Split(header, ",") {
		key, value, found := strings.Cut(strings.TrimSpace(part), "=")
		if !found {
			return "", nil, false
		}
		switch key {
		case "t":
			ts = value
		case "v1":
			if sig, err := hex.DecodeString(value); err == nil {
				sigs = append(sigs, sig)
			}
		}
	}
	return ts, sigs, ts != "" && len(sigs) > 0
}

// mac is the HMAC-SHA256 of "t.body" under the secret.
func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	return m.Sum(nil)
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

// envelope is the body of a WorkOS webhook.
type envelope struct {
	ID        string          `json:"id"`
	Event     string          `json:"event"`
	CreatedAt *string         `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

// directoryUser is what userhook reads of a WorkOS directory user. raw_attributes, the identity provider's
// own record, is not read: it is large and may hold anything the directory keeps.
type directoryUser struct {
	ID               string  `json:"id"`
	DirectoryID      *string `json:"directory_id"`
	OrganizationID   *string `json:"organization_id"`
	IdpID            *string `json:"idp_id"`
	FirstName        *string `json:"first_name"`
	LastName         *string `json:"last_name"`
	Email            *string `json:"email"`
	State            string  `json:"state"`
	CreatedAt        *string `json:"created_at"`
	UpdatedAt        *string `json:"updated_at"`
	CustomAttributes any     `json:"custom_attributes"`
	// PreviousAttributes holds, on an update, the attributes that changed as they were before; it is read
	// leniently (only its state), since it says nothing userhook stores.
	PreviousAttributes json.RawMessage `json:"previous_attributes"`
	// Emails is how the API said the email before it had email: the primary one is the user's.
	Emails []struct {
		Primary bool   `json:"primary"`
		Value   string `json:"value"`
	} `json:"emails"`
}

// kinds maps WorkOS's directory user event types; dsync.user.updated may become KindDeactivated or
// KindReactivated.
var kinds = map[string]ingest.Kind{
	"dsync.user.created": ingest.KindCreated,
	"dsync.user.updated": ingest.KindUpdated,
	"dsync.user.deleted": ingest.KindDeleted,
}

// Decode reads the request's one event. Its ID and ProviderEventID are the event's id, the same on every
// retry.
func (Decoder) Decode(r source.Request) ([]ingest.Event, error) {
	var fe userhook.FieldErrors
	var env envelope
	if err := json.Unmarshal(r.Body, &env); err != nil {
		typeFault(&fe, "", err)
		return nil, fe.Err()
	}
	e := ingest.Event{
		ID:              env.ID,
		ProviderEventID: env.ID,
		Metadata:        map[string]string{"provider": string(source.WorkOS), "provider_event_type": truncate(env.Event)},
	}
	kind, ok := kinds[env.Event]
	if !ok {
		e.OccurredAt, _ = parseTime(env.CreatedAt)
		return []ingest.Event{e}, nil // not about a user: acknowledged as ignored
	}
	if env.ID == "" {
		fe.Add("id", "the event id is required")
	}
	var u directoryUser
	if len(env.Data) > 0 && string(env.Data) != "null" {
		if err := json.Unmarshal(env.Data, &u); err != nil {
			typeFault(&fe, "data", err)
			return nil, fe.Err()
		}
	}
	if msg := aggregate.CheckUserID(u.ID); msg != "" {
		fe.Add("data.id", strings.Replace(msg, "user_id", "the user id", 1))
	}
	times := map[string]*string{"created_at": env.CreatedAt, "data.created_at": u.CreatedAt, "data.updated_at": u.UpdatedAt}
	parsed := make(map[string]time.Time, len(times))
	for _, field := range []string{"created_at", "data.created_at", "data.updated_at"} {
		t, err := parseTime(times[field])
		if err != nil {
			fe.Add(field, "must be an RFC 3339 time")
		}
		parsed[field] = t
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	e.UserID, e.Kind = u.ID, kind
	e.OccurredAt = occurredAt(kind, parsed)
	if kind == ingest.KindDeleted {
		return []ingest.Event{e}, nil
	}
	if kind == ingest.KindUpdated {
		switch {
		case inactive(u.State):
			e.Kind = ingest.KindDeactivated
		case u.State == "active" && inactive(previousState(u.PreviousAttributes)):
			e.Kind = ingest.KindReactivated
		}
	}
	e.Attributes = attributes(u)
	return []ingest.Event{e}, nil
}

func inactive(state string) bool { return state == "inactive" || state == "suspended" }

// previousState is the state previous_attributes says the user had, or "" when it says none.
func previousState(previous json.RawMessage) string {
	var p struct {
		State any `json:"state"`
	}
	if json.Unmarshal(previous, &p) != nil {
		return ""
	}
	state, _ := p.State.(string)
	return state
}

// occurredAt is when the user last changed (WorkOS's advice for ordering its unordered deliveries); for a
// deletion, when the event was made, since the user's updated_at is its last change before it.
func occurredAt(kind ingest.Kind, times map[string]time.Time) time.Time {
	order := []string{"data.updated_at", "data.created_at", "created_at"}
	if kind == ingest.KindDeleted {
		order = []string{"created_at", "data.updated_at"}
	}
	for _, field := range order {
		if t := times[field]; !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

// parseTime reads an RFC 3339 time; zero when none was sent.
func parseTime(s *string) (time.Time, error) {
	if s == nil || *s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	return t.UTC(), err
}

// attributes reads the email, the name and the profile of a directory user. WorkOS says nothing of whether
// the address was verified: EmailVerified stays nil.
func attributes(u directoryUser) aggregate.Attributes {
	var a aggregate.Attributes
	if u.Email != nil && *u.Email != "" {
		email := *u.Email
		a.Email = &email
	} else {
		for _, e := range u.Emails {
			if e.Primary && e.Value != "" {
				email := e.Value
				a.Email = &email
				break
			}
		}
	}
	a.Name = joinName(u.FirstName, u.LastName)
	profile := map[string]any{}
	for key, value := range map[string]*string{
		"directory_id": u.DirectoryID, "organization_id": u.OrganizationID, "idp_id": u.IdpID,
		"first_name": u.FirstName, "last_name": u.LastName,
	} {
		if value != nil && *value != "" {
			profile[key] = *value
		}
	}
	if m, isObject := u.CustomAttributes.(map[string]any); u.CustomAttributes != nil && (!isObject || len(m) > 0) {
		profile["custom_attributes"] = u.CustomAttributes
	}
	// WorkOS sends the whole user, so the profile replaces the stored one.
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
