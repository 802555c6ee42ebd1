// Package keycloak reads the webhooks of Phase Two's keycloak-events extension
// (https://github.com/p2-inc/keycloak-events): one event a request, a Keycloak user event ("access.REGISTER")
// or admin event ("admin.USER-UPDATE") with the extension's uid, signed with X-Keycloak-Signature, the hex
// HMAC-SHA256 of the body keyed with the webhook's secret. Each request is read into one ingest.Event keyed
// by the uid, which the extension keeps across its retries.
package keycloak

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/ingest"
	"github.com/userhook/userhook/source"
)

var _ source.Decoder = Decoder{}

// SignatureHeader carries the hex HMAC-SHA256 of the body.
const SignatureHeader = "X-Keycloak-Signature"

// The event types that concern a user's state: a self-registration, and the admin operations on a user
// (the extension names them "admin." + resource type + "-" + operation).
const (
	typeRegister   = "access.REGISTER"
	typeUserCreate = "admin.USER-CREATE"
	typeUserUpdate = "admin.USER-UPDATE"
	typeUserDelete = "admin.USER-DELETE"
)

var kinds = map[string]ingest.Kind{
	typeRegister:   ingest.KindCreated,
	typeUserCreate: ingest.KindCreated,
	typeUserUpdate: ingest.KindUpdated,
	typeUserDelete: ingest.KindDeleted,
}

// Decoder reads keycloak-events webhook requests. Its zero value is ready to use.
type Decoder struct{}

// Authenticate checks X-Keycloak-Signature against the HMAC-SHA256 of the raw body under each secret. The
// extension signs nothing else, no timestamp: the uid's idempotency and the event time guard replays.
func (Decoder) Authenticate(r source.Request, secrets []string) error {
	header := strings.TrimSpace(r.Header.Get(SignatureHeader))
	if header == "" {
		return userhook.Errorf(userhook.ErrUnauthorized, "missing "+SignatureHeader)
	}
	got, err := hex.DecodeString(header)
	if err != nil || len(got) != sha256.Size {
		return userhook.Errorf(userhook.ErrUnauthorized, "signature does not match")
	}
	match := false
	for _, secret := range secrets {
		if secret == "" {
			continue // an empty secret never authenticates anything
		}
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(r.Body)
		if hmac.Equal(got, mac.Sum(nil)) {
			match = true
		}
	}
	if !match {
		return userhook.Errorf(userhook.ErrUnauthorized, "signature does not match")
	}
	return nil
}

// head is what every event is read for.
type head struct {
	UID   string `json:"uid"`
	Type  string `json:"type"`
	Error string `json:"error"`
}

// event is what an event that changes a user is read for: the extension's ExtendedAdminEvent.
type event struct {
	Time        int64  `json:"time"`
	RealmID     string `json:"realmId"`
	AuthDetails *struct {
		UserID string `json:"userId"`
	} `json:"authDetails"`
	Details *struct {
		UserID   string `json:"userId"`
		Username string `json:"username"`
		Email    string `json:"email"`
	} `json:"details"`
	ResourcePath   string          `json:"resourcePath"`
	Representation json.RawMessage `json:"representation"`
}

// representation is a Keycloak UserRepresentation, as far as it is read.
type representation struct {
	ID            *string `json:"id"`
	Username      *string `json:"username"`
	Email         *string `json:"email"`
	EmailVerified *bool   `json:"emailVerified"`
	FirstName     *string `json:"firstName"`
	LastName      *string `json:"lastName"`
	Enabled       *bool   `json:"enabled"`
}

// Decode reads the request's one event.
func (Decoder) Decode(r source.Request) ([]ingest.Event, error) {
	var fe userhook.FieldErrors
	e, ok := decode(r.Body, &fe)
	if err := fe.Err(); err != nil {
		return nil, err
	}
	if !ok {
		return nil, userhook.Errorf(userhook.ErrInvalid, "the event could not be read")
	}
	return []ingest.Event{e}, nil
}

// decode reads an event. Only the uid, type and error of an event that changes no user are read, so that
// nothing else in it can make the request fail.
func decode(body []byte, fe *userhook.FieldErrors) (ingest.Event, bool) {
	var h head
	if err := json.Unmarshal(body, &h); err != nil {
		fault(fe, "", err)
		return ingest.Event{}, false
	}
	if h.UID == "" {
		fe.Add("uid", "every webhook event has a uid, its idempotency key")
		return ingest.Event{}, false
	}
	e := ingest.Event{
		ID: h.UID, ProviderEventID: h.UID, Kind: kinds[h.Type],
		Metadata: map[string]string{"provider": string(source.Keycloak), "provider_event_type": cut(h.Type)},
	}
	if h.Error != "" {
		e.Kind = "" // the operation failed: the user is as it was
	}
	if e.Kind == "" {
		return e, true
	}
	var ev event
	if err := json.Unmarshal(body, &ev); err != nil {
		fault(fe, "", err)
		return e, false
	}
	if ev.RealmID != "" {
		e.Metadata["provider_realm"] = cut(ev.RealmID)
	}
	if ev.Time > 0 {
		e.OccurredAt = time.UnixMilli(ev.Time).UTC()
	}
	if h.Type == typeRegister {
		return register(e, ev, fe)
	}
	return admin(e, h.Type, ev, fe)
}

// register reads a self-registration: the user is the event's, its email and username in the details.
func register(e ingest.Event, ev event, fe *userhook.FieldErrors) (ingest.Event, bool) {
	field := "authDetails.userId"
	if ev.Details != nil && ev.Details.UserID != "" {
		e.UserID, field = ev.Details.UserID, "details.userId"
	} else if ev.AuthDetails != nil {
		e.UserID = ev.AuthDetails.UserID
	}
	if msg := aggregate.CheckUserID(e.UserID); msg != "" {
		fe.Add(field, msg)
		return e, false
	}
	if ev.Details == nil {
		return e, true
	}
	if email := ev.Details.Email; email != "" {
		if msg := aggregate.CheckEmail(email); msg != "" {
			fe.Add("details.email", msg)
			return e, false
		}
		e.Attributes.Email = &email
	}
	if ev.Details.Username != "" {
		e.Attributes.Profile = map[string]any{"username": ev.Details.Username}
	}
	return e, true
}

// admin reads an admin operation on a user. The user is the one of the resource path "users/<id>"; an
// operation on a path below it (users/<id>/groups/...) is on something else, and ignored. authDetails name
// the administrator, never the user.
func admin(e ingest.Event, typ string, ev event, fe *userhook.FieldErrors) (ingest.Event, bool) {
	id, found := strings.CutPrefix(ev.ResourcePath, "users/")
	if ev.ResourcePath != "" && (!found || strings.Contains(id, "/")) {
		e.Kind = ""
		return e, true
	}
	var rep representation
	if typ != typeUserDelete {
		var ok bool
		if rep, ok = readRepresentation(ev.Representation, fe); !ok {
			return e, false
		}
	}
	field := "resourcePath"
	switch {
	case found:
		e.UserID = id
	case rep.ID != nil:
		e.UserID, field = *rep.ID, "representation.id"
	case ev.Details != nil:
		e.UserID, field = ev.Details.UserID, "details.userId"
	}
	if msg := aggregate.CheckUserID(e.UserID); msg != "" {
		fe.Add(field, msg)
		return e, false
	}
	if typ == typeUserDelete {
		return e, true
	}
	if rep.Email != nil && *rep.Email != "" {
		if msg := aggregate.CheckEmail(*rep.Email); msg != "" {
			fe.Add("representation.email", msg)
			return e, false
		}
		e.Attributes.Email = rep.Email
	}
	e.Attributes.EmailVerified = rep.EmailVerified
	if rep.FirstName != nil || rep.LastName != nil {
		name := strings.TrimSpace(deref(rep.FirstName) + " " + deref(rep.LastName))
		if strings.ContainsRune(name, 0) || len(name) > maxName {
			fe.Add("representation.firstName", "the name must be at most 1024 bytes, without NUL characters")
			return e, false
		}
		e.Attributes.Name = &name
	}
	profile := map[string]any{}
	for key, v := range map[string]*string{"username": rep.Username, "firstName": rep.FirstName, "lastName": rep.LastName} {
		if v != nil {
			profile[key] = *v
		}
	}
	if len(profile) > 0 {
		e.Attributes.Profile = profile
	}
	// A disabled user is an update whose representation says enabled: false. An update that says
	// enabled: true stays an update: the admin console sends the whole user, enabled or not, with every
	// change, so that alone says nothing about a reactivation.
	if typ == typeUserUpdate && rep.Enabled != nil && !*rep.Enabled {
		e.Kind = ingest.KindDeactivated
	}
	return e, true
}

// readRepresentation reads the user of an admin event: the extension sends Keycloak's representation as a
// string holding JSON; an object is read as well. It is absent when the realm does not include
// representations in admin events.
func readRepresentation(raw json.RawMessage, fe *userhook.FieldErrors) (representation, bool) {
	var rep representation
	if len(raw) == 0 || string(raw) == "null" {
		return rep, true
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			fe.Add("representation", "must be a string holding a JSON object")
			return rep, false
		}
		if strings.TrimSpace(s) == "" {
			return rep, true
		}
		raw = json.RawMessage(s)
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		fault(fe, "representation", err)
		return rep, false
	}
	return rep, true
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
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
