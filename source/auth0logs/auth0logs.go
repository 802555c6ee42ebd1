// Package auth0logs reads Auth0 Log Streams of the custom webhook kind
// (https://auth0.com/docs/customize/log-streams/custom-log-streams): a request carries the Authorization value
// configured for the stream, and its body holds tenant log records as a JSON array, as JSON lines or as one
// JSON object. Each record is read into one ingest.Event keyed by its log_id; the few log types that change a
// user (https://auth0.com/docs/deploy-monitor/logs/log-event-type-codes) are mapped, all others are ignored.
package auth0logs

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/url"
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

var _ source.Decoder = Decoder{}

// The log types that concern a user's state.
const (
	typeSignup     = "ss"   // Success Signup
	typeDeleted    = "sdu"  // Success User Deletion
	typeDeletedOld = "du"   // Deleted User, the older code
	typeAPI        = "sapi" // Success API Operation: a Management API call, told apart by its description
)

// The descriptions of the Management API operations on users ("sapi").
const (
	createUser = "Create a User"
	updateUser = "Update a User"
	deleteUser = "Delete a User"
)

// profileFields are the Management API user fields kept as the profile: the user's own, never a password,
// a connection secret or app_metadata.
var profileFields = []string{"username", "given_name", "family_name", "nickname", "picture", "phone_number"}

// Decoder reads Auth0 Log Stream requests. Its zero value is ready to use.
type Decoder struct{}

// Authenticate checks that the Authorization header is one of the secrets: Auth0 sends the value configured
// for the stream as it is, with no signature. The comparison is of SHA-256 digests in constant time, so that
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

// record is one log record as a stream sends it.
type record struct {
	LogID string          `json:"log_id"`
	Data  json.RawMessage `json:"data"`
}

// head is what every record's data is read for.
type head struct {
	Type        string          `json:"type"`
	Description string          `json:"description"`
	UserID      json.RawMessage `json:"user_id"`
}

// logData is what the data of a record that changes a user is read for.
type logData struct {
	Date     string          `json:"date"`
	UserID   string          `json:"user_id"`
	UserName string          `json:"user_name"`
	Details  json.RawMessage `json:"details"`
}

// apiDetails are the details of a Management API operation.
type apiDetails struct {
	Request *struct {
		Path string          `json:"path"`
		Body json.RawMessage `json:"body"`
	} `json:"request"`
	Response *struct {
		Body json.RawMessage `json:"body"`
	} `json:"response"`
}

// Decode reads the request's log records, in order, one ingest.Event each.
func (Decoder) Decode(r source.Request) ([]ingest.Event, error) {
	var fe userhook.FieldErrors
	raws, paths := records(r.Body, &fe)
	if err := fe.Err(); err != nil {
		return nil, err
	}
	events := make([]ingest.Event, 0, len(raws))
	for i, raw := range raws {
		if e, ok := decodeRecord(raw, paths[i], &fe); ok {
			events = append(events, e)
		}
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	return events, nil
}

// records splits the body into its records and names the path of each in faults: "[i]" in an array or in
// JSON lines, nothing for a body of one object.
func records(body []byte, fe *userhook.FieldErrors) ([]json.RawMessage, []string) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		fe.Add("body", "a log stream sends a JSON array, JSON lines or a JSON object")
		return nil, nil
	}
	var raws []json.RawMessage
	if trimmed[0] == '[' {
		if err := json.Unmarshal(trimmed, &raws); err != nil {
			fe.Add("body", "is not a valid JSON array")
			return nil, nil
		}
	} else {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		for {
			var raw json.RawMessage
			err := dec.Decode(&raw)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				fe.Add("body", "line "+strconv.Itoa(len(raws)+1)+" is not valid JSON")
				return nil, nil
			}
			raws = append(raws, raw)
		}
		if len(raws) == 1 {
			return raws, []string{""}
		}
	}
	paths := make([]string, len(raws))
	for i := range raws {
		paths[i] = "[" + strconv.Itoa(i) + "]"
	}
	return raws, paths
}

// decodeRecord reads one log record. Only the log_id, type and description of a record that changes no user
// are read, so that nothing else in it can make the request fail.
func decodeRecord(raw json.RawMessage, path string, fe *userhook.FieldErrors) (ingest.Event, bool) {
	var rec record
	if err := json.Unmarshal(raw, &rec); err != nil {
		fault(fe, path, err)
		return ingest.Event{}, false
	}
	if rec.LogID == "" {
		fe.Add(join(path, "log_id"), "every log record has a log_id, its idempotency key")
		return ingest.Event{}, false
	}
	dataPath := join(path, "data")
	var h head
	if len(rec.Data) > 0 {
		if err := json.Unmarshal(rec.Data, &h); err != nil {
			fault(fe, dataPath, err)
			return ingest.Event{}, false
		}
	}
	e := ingest.Event{
		ID: rec.LogID, ProviderEventID: rec.LogID,
		Metadata: map[string]string{"provider": string(source.Auth0Logs), "provider_event_type": cut(h.Type)},
	}
	_ = json.Unmarshal(h.UserID, &e.UserID) // an ignored record's user is for the result alone
	if h.Type == typeAPI && h.Description != "" {
		e.Metadata["provider_description"] = cut(h.Description)
	}
	var op string
	switch h.Type {
	case typeSignup:
		e.Kind = ingest.KindCreated
	case typeDeleted, typeDeletedOld:
		e.Kind = ingest.KindDeleted
	case typeAPI:
		switch {
		case strings.EqualFold(h.Description, createUser):
			e.Kind, op = ingest.KindCreated, createUser
		case strings.EqualFold(h.Description, updateUser):
			e.Kind, op = ingest.KindUpdated, updateUser
		case strings.EqualFold(h.Description, deleteUser):
			e.Kind, op = ingest.KindDeleted, deleteUser
		}
	}
	if e.Kind == "" {
		return e, true
	}
	var d logData
	if err := json.Unmarshal(rec.Data, &d); err != nil {
		fault(fe, dataPath, err)
		return e, false
	}
	e.UserID = d.UserID
	if d.Date != "" {
		t, err := time.Parse(time.RFC3339Nano, d.Date)
		if err != nil {
			fe.Add(dataPath+".date", "must be an RFC 3339 time")
			return e, false
		}
		e.OccurredAt = t
	}
	userIDField := dataPath + ".user_id"
	switch {
	case h.Type == typeSignup:
		// user_name is what the user signed up with: an email address, or a username or phone number.
		if d.UserName != "" {
			if strings.Contains(d.UserName, "@") && aggregate.CheckEmail(d.UserName) == "" {
				email := d.UserName
				e.Attributes.Email = &email
			} else {
				e.Attributes.Profile = map[string]any{"user_name": d.UserName}
			}
		}
	case op != "":
		var ok bool
		e, userIDField, ok = apiOperation(e, op, d, dataPath, fe)
		if !ok {
			return e, false
		}
	}
	if msg := aggregate.CheckUserID(e.UserID); msg != "" {
		fe.Add(userIDField, msg)
		return e, false
	}
	return e, true
}

// apiOperation reads a Management API operation on a user: the user it names, and for a creation or an
// update the attributes of its request body; an update that sets blocked is a deactivation or a
// reactivation. The user id is the one of the request path (/api/v2/users/<id>) for an update or a deletion,
// and that of the response for a creation: data.user_id only when neither says, as it may name the caller.
// It returns the field to report a missing user id on.
func apiOperation(e ingest.Event, op string, d logData, dataPath string, fe *userhook.FieldErrors) (ingest.Event, string, bool) {
	detailsPath := dataPath + ".details"
	var details apiDetails
	if len(d.Details) > 0 {
		if err := json.Unmarshal(d.Details, &details); err != nil {
			fault(fe, detailsPath, err)
			return e, "", false
		}
	}
	userIDField := dataPath + ".user_id"
	switch op {
	case createUser:
		if details.Response != nil {
			var created struct {
				UserID string `json:"user_id"`
			}
			if json.Unmarshal(details.Response.Body, &created) == nil && created.UserID != "" {
				e.UserID = created.UserID
			}
		}
	default:
		if details.Request != nil {
			if id, ok := pathUserID(details.Request.Path); ok {
				e.UserID, userIDField = id, detailsPath+".request.path"
			}
		}
	}
	if op == deleteUser || details.Request == nil {
		return e, userIDField, true
	}
	body := details.Request.Body
	if len(body) == 0 || string(body) == "null" {
		return e, userIDField, true
	}
	bodyPath := detailsPath + ".request.body"
	var object map[string]json.RawMessage
	if err := json.Unmarshal(body, &object); err != nil {
		fault(fe, bodyPath, err)
		return e, userIDField, false
	}
	var ok bool
	e.Attributes, ok = attributes(object, bodyPath, fe)
	if !ok {
		return e, userIDField, false
	}
	if op == updateUser {
		if raw, sent := object["blocked"]; sent && string(raw) != "null" {
			var blocked bool
			if err := json.Unmarshal(raw, &blocked); err != nil {
				fe.Add(bodyPath+".blocked", "must be a boolean")
				return e, userIDField, false
			}
			// One record is one event: blocking wins over whatever else the same call changed.
			e.Kind = ingest.KindReactivated
			if blocked {
				e.Kind = ingest.KindDeactivated
			}
		}
	}
	return e, userIDField, true
}

// attributes reads a Management API user body: email, email_verified, name, and the profile fields.
func attributes(object map[string]json.RawMessage, path string, fe *userhook.FieldErrors) (aggregate.Attributes, bool) {
	var a aggregate.Attributes
	ok := true
	str := func(key string) (string, bool) {
		raw, sent := object[key]
		if !sent || string(raw) == "null" {
			return "", false
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			fe.Add(path+"."+key, "must be a string")
			ok = false
			return "", false
		}
		return s, true
	}
	if email, sent := str("email"); sent {
		if msg := aggregate.CheckEmail(email); msg != "" {
			fe.Add(path+".email", msg)
			ok = false
		} else {
			a.Email = &email
		}
	}
	if raw, sent := object["email_verified"]; sent && string(raw) != "null" {
		var v bool
		if err := json.Unmarshal(raw, &v); err != nil {
			fe.Add(path+".email_verified", "must be a boolean")
			ok = false
		} else {
			a.EmailVerified = &v
		}
	}
	if name, sent := str("name"); sent {
		if strings.ContainsRune(name, 0) || len(name) > maxName {
			fe.Add(path+".name", "must be at most 1024 bytes, without NUL characters")
			ok = false
		} else {
			a.Name = &name
		}
	}
	for _, key := range profileFields {
		if v, sent := str(key); sent {
			if a.Profile == nil {
				a.Profile = map[string]any{}
			}
			a.Profile[key] = v
		}
	}
	return a, ok
}

// pathUserID reads the user id of a Management API path /api/v2/users/<id>, URL-escaped as Auth0 logs it.
func pathUserID(p string) (string, bool) {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	const prefix = "/api/v2/users/"
	if !strings.HasPrefix(p, prefix) {
		return "", false
	}
	segment := strings.TrimSuffix(p[len(prefix):], "/")
	if segment == "" || strings.Contains(segment, "/") {
		return "", false // /api/v2/users/<id>/roles and the like are other operations
	}
	id, err := url.PathUnescape(segment)
	if err != nil || id == "" {
		return "", false
	}
	return id, true
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
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
			field = join(path, te.Field)
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
