// Package okta reads Okta Event Hooks (https://developer.okta.com/docs/concepts/event-hooks/): a request
// carries the Authorization value configured in Okta, and its body holds one or more System Log events, each
// read into one ingest.Event keyed by the log event's uuid. Okta verifies the endpoint first with a GET whose
// X-Okta-Verification-Challenge header it wants echoed; Decoder answers it as a source.Challenger.
package okta

import (
	"crypto/sha256"
	"crypto/subtle"
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

var (
	_ source.Decoder    = Decoder{}
	_ source.Challenger = Decoder{}
)

// ChallengeHeader is the header of Okta's verification GET; its value is echoed back.
const ChallengeHeader = "X-Okta-Verification-Challenge"

// kinds maps the System Log event types that change a user to what they say. user.lifecycle.activate follows
// user.lifecycle.create for every new user, and activates a user that was never active: a reactivation, which
// the service answers as no_change for a user that is already active.
var kinds = map[string]ingest.Kind{
	"user.lifecycle.create":           ingest.KindCreated,
	"user.lifecycle.activate":         ingest.KindReactivated,
	"user.lifecycle.reactivate":       ingest.KindReactivated,
	"user.lifecycle.unsuspend":        ingest.KindReactivated,
	"user.lifecycle.deactivate":       ingest.KindDeactivated,
	"user.lifecycle.suspend":          ingest.KindDeactivated,
	"user.lifecycle.delete.initiated": ingest.KindDeleted,
	"user.account.update_profile":     ingest.KindUpdated,
}

// Decoder reads Okta Event Hook requests. Its zero value is ready to use.
type Decoder struct{}

// Authenticate checks that the Authorization header is one of the secrets: Okta sends the value configured
// for the hook as it is, with no signature. The comparison is of SHA-256 digests in constant time, so that
// neither the content nor the length of a secret shows in the time it takes.
func (Decoder) Authenticate(r source.Request, secrets []string) error {
	got := r.Header.Get("Authorization")
	if got == "" {
		return userhook.Errorf(userhook.ErrUnauthorized, "missing Authorization")
	}
	sum := sha256.Sum256([]byte(got))
	match := 0
	for _, secret := range secrets {
		if secret == "" {
			continue // an empty secret never authenticates anything
		}
		want := sha256.Sum256([]byte(secret))
		match |= subtle.ConstantTimeCompare(sum[:], want[:])
	}
	if match != 1 {
		return userhook.Errorf(userhook.ErrUnauthorized, "Authorization does not match")
	}
	return nil
}

// Verification is the answer to Okta's verification GET.
type Verification struct {
	Verification string `json:"verification"`
}

// Challenge answers Okta's one-time verification GET with the value of its X-Okta-Verification-Challenge
// header.
func (Decoder) Challenge(r source.Request) (any, error) {
	value := r.Header.Get(ChallengeHeader)
	if value == "" {
		var fe userhook.FieldErrors
		fe.Add(ChallengeHeader, "the verification request carries this header")
		return nil, fe
	}
	return Verification{Verification: value}, nil
}

// hook is the body of an Event Hook delivery.
type hook struct {
	EventType string `json:"eventType"`
	EventID   string `json:"eventId"`
	Data      *struct {
		Events json.RawMessage `json:"events"`
	} `json:"data"`
}

// head is what every log event is read for: its key and its type.
type head struct {
	UUID      string `json:"uuid"`
	EventType string `json:"eventType"`
	Outcome   *struct {
		Result string `json:"result"`
	} `json:"outcome"`
}

// logEvent is what a log event that changes a user is read for.
type logEvent struct {
	Published string   `json:"published"`
	Target    []target `json:"target"`
}

type target struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	AlternateID string `json:"alternateId"`
	DisplayName string `json:"displayName"`
}

// Decode reads the delivery's log events, in order, one ingest.Event each.
func (Decoder) Decode(r source.Request) ([]ingest.Event, error) {
	var fe userhook.FieldErrors
	var h hook
	if err := json.Unmarshal(r.Body, &h); err != nil {
		fault(&fe, "", err)
		return nil, fe
	}
	if h.Data == nil || len(h.Data.Events) == 0 || string(h.Data.Events) == "null" {
		fe.Add("data.events", "an Event Hook delivery carries its log events here")
		return nil, fe
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(h.Data.Events, &raws); err != nil {
		fault(&fe, "data.events", err)
		return nil, fe
	}
	events := make([]ingest.Event, 0, len(raws))
	for i, raw := range raws {
		e, ok := decodeEvent(raw, "data.events["+strconv.Itoa(i)+"]", h.EventID, &fe)
		if ok {
			events = append(events, e)
		}
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	return events, nil
}

// decodeEvent reads one log event. Only the uuid and type of an event that changes no user are read, so
// that nothing else in it can make the delivery fail.
func decodeEvent(raw json.RawMessage, path, hookID string, fe *userhook.FieldErrors) (ingest.Event, bool) {
	var h head
	if err := json.Unmarshal(raw, &h); err != nil {
		fault(fe, path, err)
		return ingest.Event{}, false
	}
	if h.UUID == "" {
		fe.Add(path+".uuid", "every log event has a uuid, its idempotency key")
		return ingest.Event{}, false
	}
	e := ingest.Event{
		ID: h.UUID, ProviderEventID: h.UUID, Kind: kinds[h.EventType],
		Metadata: map[string]string{"provider": string(source.Okta), "provider_event_type": cut(h.EventType)},
	}
	if hookID != "" {
		e.Metadata["provider_delivery_id"] = cut(hookID)
	}
	if h.Outcome != nil && h.Outcome.Result == "FAILURE" {
		e.Kind = "" // the operation failed: the user is as it was
	}
	if e.Kind == "" {
		return e, true
	}
	var le logEvent
	if err := json.Unmarshal(raw, &le); err != nil {
		fault(fe, path, err)
		return e, false
	}
	if le.Published != "" {
		t, err := time.Parse(time.RFC3339Nano, le.Published)
		if err != nil {
			fe.Add(path+".published", "must be an RFC 3339 time")
			return e, false
		}
		e.OccurredAt = t
	}
	user := -1
	for j, t := range le.Target {
		if t.Type == "User" {
			user = j
			break
		}
	}
	if user < 0 {
		fe.Add(path+".target", "a user event names its user as a target of type User")
		return e, false
	}
	t := le.Target[user]
	userPath := path + ".target[" + strconv.Itoa(user) + "]"
	if msg := aggregate.CheckUserID(t.ID); msg != "" {
		fe.Add(userPath+".id", msg)
		return e, false
	}
	e.UserID = t.ID
	if t.AlternateID != "" {
		// The login is an email address in most orgs, but need not be one: an address the aggregate
		// would refuse is kept as the login alone.
		if strings.Contains(t.AlternateID, "@") && aggregate.CheckEmail(t.AlternateID) == "" {
			email := t.AlternateID
			e.Attributes.Email = &email
		}
		e.Attributes.Profile = map[string]any{"login": t.AlternateID}
	}
	if t.DisplayName != "" {
		if strings.ContainsRune(t.DisplayName, 0) || len(t.DisplayName) > maxName {
			fe.Add(userPath+".displayName", "must be at most 1024 bytes, without NUL characters")
			return e, false
		}
		name := t.DisplayName
		e.Attributes.Name = &name
	}
	return e, true
}

// maxName bounds a name, in bytes, as the transport's own decoders do.
const maxName = 1024

// maxMetadata bounds a metadata value, in bytes.
const maxMetadata = 64

// cut shortens s to at most maxMetadata bytes, on a character boundary.
func cut(s string) string {
	if len(s) <= maxMetadata {
		return s
	}
	i := maxMetadata
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// fault reports a JSON decoding error at path: a value of the wrong type where it is, anything else as a
// body that is not JSON.
func fault(fe *userhook.FieldErrors, path string, err error) {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := path
		if te.Field != "" {
			if field != "" {
				field += "."
			}
			field += te.Field
		}
		if field == "" {
			field = "body"
		}
		fe.Add(field, "must be "+describe(te.Type))
		return
	}
	if path == "" {
		path = "body"
	}
	fe.Add(path, "is not valid JSON")
}

// describe names the JSON type that decodes into t.
func describe(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map, reflect.Pointer:
		return "an object"
	default:
		return "a number"
	}
}
