// Package zitadel reads the events a Zitadel Actions v2 target receives: one event of Zitadel's event store
// per request, signed with the ZITADEL-Signature header ("t=<unix s>,v1=<hex HMAC-SHA256 of t.body>", one
// v1 per signing key).
//
// The mapping: user.human.added and user.human.selfregistered are KindCreated; user.human.profile.changed and
// user.human.email.changed are KindUpdated; user.deactivated and user.locked are KindDeactivated;
// user.reactivated and user.unlocked are KindReactivated; user.removed is KindDeleted. Every other event is
// ignored.
//
// Zitadel's events are changes, not snapshots: a profile change carries only the fields that changed, an
// email change only the address. So an update says only what its event says: the name when the event gives
// the display name or both first and last names, the email when it gives the address, and never the
// profile, which userhook replaces whole; the profile is read from the creation events alone, which carry
// the whole user.
package zitadel

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
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

// Tolerance is how far a request's signed timestamp may be from the time it arrived, either way (Zitadel's
// own DefaultTolerance).
const Tolerance = 300 * time.Second

// HeaderSignature is the header Zitadel signs a request with.
const HeaderSignature = "ZITADEL-Signature"

// maxMetadata bounds a metadata value taken from the request, in bytes.
const maxMetadata = 100

// Decoder reads the requests of a Zitadel Actions v2 target; its zero value is ready.
type Decoder struct{}

var _ source.Decoder = Decoder{}

// Authenticate checks the ZITADEL-Signature header against either secret (the target's signing key, used as
// the HMAC key as it is) and its timestamp, in seconds, against Tolerance.
func (Decoder) Authenticate(r source.Request, secrets []string) error {
	header := r.Header.Get(HeaderSignature)
	if header == "" {
		return unauthorized("missing " + HeaderSignature + " header")
	}
	ts, sigs, ok := parseHeader(header)
	if !ok {
		return unauthorized("malformed " + HeaderSignature + " header")
	}
	seconds, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return unauthorized("malformed " + HeaderSignature + " header")
	}
	if !within(now(r), time.Unix(seconds, 0), Tolerance) {
		return unauthorized("timestamp outside the 5 minute tolerance")
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

// parseHeader reads "t=<s>,v1=<hex>[,v1=<hex>...]": the timestamp as it was signed, and every v1 signature
// that is hex. Pairs of other schemes are skipped, as Zitadel's own check does.
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

// mac is the HMAC-SHA256 of "t.body" under the signing key.
func mac(key, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(key))
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

// envelope is the body Zitadel posts for an event (its ContextInfoEvent). sequence is the event's position
// in its aggregate; event_payload is the event's own data, which older versions send as base64 (a Go
// []byte) and newer ones as the JSON object itself.
type envelope struct {
	AggregateID  string          `json:"aggregateID"`
	InstanceID   string          `json:"instanceID"`
	Sequence     json.RawMessage `json:"sequence"`
	EventType    string          `json:"event_type"`
	CreatedAt    *string         `json:"created_at"`
	EventPayload json.RawMessage `json:"event_payload"`
}

// payload is what userhook reads of a human user event's data. Whatever else it holds (a password hash in
// secret or encodedHash, an initial code, a phone number and address) is not read.
type payload struct {
	UserName          *string `json:"userName"`
	FirstName         *string `json:"firstName"`
	LastName          *string `json:"lastName"`
	NickName          *string `json:"nickName"`
	DisplayName       *string `json:"displayName"`
	PreferredLanguage *string `json:"preferredLanguage"`
	Gender            any     `json:"gender"` // Zitadel's enum: 1 female, 2 male, 3 diverse
	Email             *string `json:"email"`
}

// kinds maps Zitadel's user event types.
var kinds = map[string]ingest.Kind{
	"user.human.added":           ingest.KindCreated,
	"user.human.selfregistered":  ingest.KindCreated,
	"user.human.profile.changed": ingest.KindUpdated,
	"user.human.email.changed":   ingest.KindUpdated,
	"user.deactivated":           ingest.KindDeactivated,
	"user.locked":                ingest.KindDeactivated,
	"user.reactivated":           ingest.KindReactivated,
	"user.unlocked":              ingest.KindReactivated,
	"user.removed":               ingest.KindDeleted,
}

// Decode reads the request's one event. Its ID and ProviderEventID are instanceID:aggregateID:sequence,
// which names one event of one Zitadel instance.
func (Decoder) Decode(r source.Request) ([]ingest.Event, error) {
	var fe userhook.FieldErrors
	var env envelope
	if err := json.Unmarshal(r.Body, &env); err != nil {
		typeFault(&fe, "", err)
		return nil, fe.Err()
	}
	sequence, seqErr := parseSequence(env.Sequence)
	e := ingest.Event{
		Metadata: map[string]string{"provider": string(source.Zitadel), "provider_event_type": truncate(env.EventType)},
	}
	if seqErr == nil && sequence != "" {
		e.ID = env.InstanceID + ":" + env.AggregateID + ":" + sequence
		e.ProviderEventID = e.ID
	}
	occurred, timeErr := parseTime(env.CreatedAt)
	e.OccurredAt = occurred
	kind, ok := kinds[env.EventType]
	if !ok {
		return []ingest.Event{e}, nil // not about a user: acknowledged as ignored
	}
	if msg := aggregate.CheckUserID(env.AggregateID); msg != "" {
		fe.Add("aggregateID", strings.Replace(msg, "user_id", "the user id", 1))
	}
	switch {
	case seqErr != nil:
		fe.Add("sequence", "must be a positive integer")
	case sequence == "":
		fe.Add("sequence", "the event's sequence is required")
	}
	if timeErr != nil {
		fe.Add("created_at", "must be an RFC 3339 time")
	}
	var p payload
	if kind == ingest.KindCreated || kind == ingest.KindUpdated {
		p = readPayload(env.EventPayload, &fe)
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	e.UserID, e.Kind = env.AggregateID, kind
	switch env.EventType {
	case "user.human.added", "user.human.selfregistered":
		e.Attributes = created(p)
	case "user.human.profile.changed":
		e.Attributes.Name = changedName(p)
	case "user.human.email.changed":
		e.Attributes.Email = email(p.Email)
	}
	return []ingest.Event{e}, nil
}

// parseSequence reads the sequence, a JSON number (or, leniently, a string of digits), as its decimal
// digits; "" when none was sent.
func parseSequence(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	s := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return "", errors.New("not a positive integer")
	}
	return strconv.FormatUint(n, 10), nil
}

// readPayload reads event_payload, as base64 or as JSON; an absent or null payload says nothing.
func readPayload(raw json.RawMessage, fe *userhook.FieldErrors) payload {
	var p payload
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return p
	}
	if raw[0] == '"' {
		var encoded string
		if err := json.Unmarshal(raw, &encoded); err != nil {
			fe.Add("event_payload", "must be a JSON object or its base64")
			return p
		}
		decoded, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil || !json.Valid(decoded) {
			fe.Add("event_payload", "must be a JSON object or its base64")
			return p
		}
		if raw = bytes.TrimSpace(decoded); len(raw) == 0 || string(raw) == "null" {
			return p
		}
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		typeFault(fe, "event_payload", err)
	}
	return p
}

// created reads the attributes of a user Zitadel created: its email, its name and its profile.
func created(p payload) aggregate.Attributes {
	a := aggregate.Attributes{Email: email(p.Email), Name: nonEmpty(p.DisplayName)}
	if a.Name == nil {
		a.Name = joinName(p.FirstName, p.LastName)
	}
	profile := map[string]any{}
	for key, value := range map[string]*string{
		"userName": p.UserName, "firstName": p.FirstName, "lastName": p.LastName, "nickName": p.NickName,
		"displayName": p.DisplayName, "preferredLanguage": p.PreferredLanguage,
	} {
		if value != nil && *value != "" && !(key == "preferredLanguage" && *value == "und") {
			profile[key] = *value
		}
	}
	if p.Gender != nil && p.Gender != float64(0) {
		profile["gender"] = p.Gender
	}
	if len(profile) > 0 {
		a.Profile = profile
	}
	return a
}

// changedName is the name a profile change says: its display name, or its first and last names when it
// gives both (a change of one of them alone cannot say the whole name).
func changedName(p payload) *string {
	if name := nonEmpty(p.DisplayName); name != nil {
		return name
	}
	if p.FirstName == nil || p.LastName == nil {
		return nil
	}
	return joinName(p.FirstName, p.LastName)
}

// email is the address as Zitadel sent it (the aggregate checks it); nil when there is none.
func email(s *string) *string {
	if s == nil || *s == "" {
		return nil
	}
	v := *s
	return &v
}

// nonEmpty is a name trimmed, nil when it is blank.
func nonEmpty(s *string) *string {
	if s == nil || strings.TrimSpace(*s) == "" {
		return nil
	}
	v := strings.TrimSpace(*s)
	return &v
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

// parseTime reads an RFC 3339 time; zero when none was sent.
func parseTime(s *string) (time.Time, error) {
	if s == nil || *s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	return t.UTC(), err
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
	if t.Kind() == reflect.String {
		return "a string"
	}
	return "a JSON object"
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
