package transport

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
)

// The CloudEvents media types.
const (
	MediaCloudEvent      = "application/cloudevents+json"
	MediaCloudEventBatch = "application/cloudevents-batch+json"
)

// MaxBatch bounds the events of one batch request.
const MaxBatch = 1000

// The user event types this receiver applies.
const (
	TypeUserCreated       = "user.created"
	TypeUserUpdated       = "user.updated"
	TypeUserDeleted       = "user.deleted"
	TypeUserEmailVerified = "user.email_verified"
)

// Incoming is one provider event as received: the envelope, and the event that is applied (AuthPI's inner
// event when the envelope's data is one, the envelope itself otherwise).
type Incoming struct {
	// EnvelopeID, EnvelopeSource and EnvelopeType are the CloudEvent's own attributes.
	EnvelopeID     string
	EnvelopeSource string
	EnvelopeType   string
	// Inner says the applied event is the one carried in the envelope's data.
	Inner bool
	// ID, Source and Type are the applied event's; together ID and Source identify it.
	ID     string
	Source string
	Type   string
	// Trace is AuthPI's trace id, when sent.
	Trace string
	// UserID is the user the event is about.
	UserID string
	// Time is when the event occurred; zero when the provider did not say.
	Time time.Time
	// Attributes are the user's attributes from the event's data.
	Attributes aggregate.Attributes
}

// Key is the idempotency key of the applied event: its source and id, hashed to a fixed length.
func (in Incoming) Key() string {
	sum := sha256.Sum256([]byte(in.Source + "\n" + in.ID))
	return "ce_" + hex.EncodeToString(sum[:16])
}

// Supported says whether the applied type is one this receiver turns into a command.
func (in Incoming) Supported() bool {
	switch in.Type {
	case TypeUserCreated, TypeUserUpdated, TypeUserDeleted, TypeUserEmailVerified:
		return true
	}
	return false
}

// Command is the UserAggregate command for a supported event.
func (in Incoming) Command() aggregate.Command {
	switch in.Type {
	case TypeUserCreated:
		return aggregate.Register{UserID: in.UserID, Attributes: in.Attributes, At: in.Time}
	case TypeUserUpdated:
		return aggregate.Update{UserID: in.UserID, Attributes: in.Attributes, At: in.Time}
	case TypeUserDeleted:
		return aggregate.Delete{UserID: in.UserID, At: in.Time}
	case TypeUserEmailVerified:
		return aggregate.VerifyEmail{UserID: in.UserID, Attributes: in.Attributes, At: in.Time}
	}
	return nil
}

// Metadata is the provenance stored with the events the incoming event raises.
func (in Incoming) Metadata() map[string]string {
	m := map[string]string{
		"ce_id": in.EnvelopeID, "ce_source": in.EnvelopeSource, "ce_type": in.EnvelopeType,
	}
	if in.Inner {
		m["inner_id"], m["inner_source"], m["inner_type"] = in.ID, in.Source, in.Type
	}
	if in.Trace != "" {
		m["trace"] = in.Trace
	}
	return m
}

// DecodeCloudEvents reads the CloudEvents of one HTTP request, in structured, binary or batch mode, and
// validates all of them before any is applied: a fault anywhere refuses the whole request, with every fault in
// the list (fields are prefixed with the event's index in a batch).
func DecodeCloudEvents(header http.Header, body []byte) ([]Incoming, error) {
	mt, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	req, err := http.NewRequest(http.MethodPost, "/events", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = header.Clone()
	req.ContentLength = int64(len(body))
	for name := range req.Header {
		// A bare "ce-" header names no attribute; the SDK would index past its end (found by fuzzing).
		if len(name) <= len("ce-") && strings.EqualFold(name, "ce-") {
			return nil, userhook.FieldErrors{{Field: "ce-", Message: "a ce- header must name a CloudEvents attribute"}}
		}
	}

	if len(body) > 0 && (mt == MediaCloudEvent || mt == MediaCloudEventBatch || mt == "application/json" || mt == "") {
		if err := checkJSON(body); err != nil {
			return nil, err
		}
	}
	batch := mt == MediaCloudEventBatch
	var fe userhook.FieldErrors
	var out []Incoming
	if batch {
		if err := checkBatchShape(body); err != nil {
			return nil, err
		}
		events, err := cehttp.NewEventsFromHTTPRequest(req)
		if err != nil {
			return nil, fmt.Errorf("%w: not a CloudEvents batch: %s", userhook.ErrInvalid, firstLine(err))
		}
		if len(events) == 0 {
			return nil, userhook.FieldErrors{{Field: "batch", Message: "a batch needs at least one event"}}
		}
		if len(events) > MaxBatch {
			return nil, userhook.FieldErrors{{Field: "batch", Message: fmt.Sprintf("a batch holds at most %d events", MaxBatch)}}
		}
		for i := range events {
			in, faults := incoming(&events[i], fmt.Sprintf("[%d].", i))
			fe = append(fe, faults...)
			out = append(out, in)
		}
	} else {
		if mt != MediaCloudEvent && header.Get("ce-specversion") == "" {
			return nil, userhook.FieldErrors{{Field: "ce-specversion",
				Message: "not a CloudEvent: send application/cloudevents+json, application/cloudevents-batch+json, or ce-* headers"}}
		}
		ev, err := cehttp.NewEventFromHTTPRequest(req)
		if err != nil {
			return nil, fmt.Errorf("%w: not a CloudEvent: %s", userhook.ErrInvalid, firstLine(err))
		}
		in, faults := incoming(ev, "")
		fe = append(fe, faults...)
		out = append(out, in)
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// checkBatchShape refuses a batch body that is not exactly one JSON array before the SDK reads it (the SDK
// would ignore data after the array).
func checkBatchShape(body []byte) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return fmt.Errorf("%w: a CloudEvents batch is a JSON array of events", userhook.ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("%w: the batch is not valid JSON", userhook.ErrInvalid)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: the batch holds data after its array", userhook.ErrInvalid)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "")
	}
	return s
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return truncate(s, 200)
}

// cloudEvent is what incoming needs of an SDK event.
type cloudEvent interface {
	ID() string
	Source() string
	Type() string
	Subject() string
	Time() time.Time
	Data() []byte
	DataMediaType() string
	Validate() error
}

// innerEvent is AuthPI's event inside the envelope's data (seed 001).
type innerEvent struct {
	ID      string
	Type    string
	Trace   string
	Source  string
	Time    time.Time
	Subject json.RawMessage
	Data    json.RawMessage
}

func incoming(ev cloudEvent, prefix string) (Incoming, userhook.FieldErrors) {
	var fe userhook.FieldErrors
	if err := ev.Validate(); err != nil {
		// The SDK says one fault per line, in no fixed order: every one is reported, sorted.
		lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
		sort.Strings(lines)
		for _, line := range lines {
			if line = strings.TrimSpace(line); line != "" {
				fe.Add(prefix+"envelope", "not a valid CloudEvent: "+truncate(line, 200))
			}
		}
		if ev.Type() == "" {
			return Incoming{}, fe
		}
	}
	in := Incoming{
		EnvelopeID: ev.ID(), EnvelopeSource: ev.Source(), EnvelopeType: ev.Type(),
		ID: ev.ID(), Source: ev.Source(), Type: ev.Type(), UserID: ev.Subject(), Time: ev.Time(),
	}
	data := ev.Data()
	if mt := ev.DataMediaType(); len(data) > 0 && mt != "" && mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		if in.Supported() {
			fe.Add(prefix+"datacontenttype", "user events carry JSON data")
		}
		return in, fe
	}
	var object map[string]json.RawMessage
	if len(data) > 0 {
		if err := json.Unmarshal(data, &object); err != nil {
			if in.Supported() {
				fe.Add(prefix+"data", "must be a JSON object")
			}
			return in, fe
		}
	}
	dataPath := prefix + "data"
	if inner, ok := asInner(in.Type, object, dataPath, &fe); ok {
		in.Inner = true
		in.ID, in.Type, in.Trace = inner.ID, inner.Type, inner.Trace
		if inner.Source != "" {
			in.Source = inner.Source
		}
		if !inner.Time.IsZero() {
			in.Time = inner.Time
		}
		in.UserID = subjectUserID(inner.Subject)
		object = nil
		if len(inner.Data) > 0 && string(inner.Data) != "null" {
			if err := json.Unmarshal(inner.Data, &object); err != nil {
				if in.Supported() {
					fe.Add(dataPath+".data", "must be a JSON object")
				}
				return in, fe
			}
		}
		dataPath += ".data"
	}
	if !in.Supported() {
		return in, fe
	}
	if in.UserID == "" {
		if raw, ok := object["user_id"]; ok {
			_ = json.Unmarshal(raw, &in.UserID)
		}
	}
	if msg := aggregate.CheckUserID(in.UserID); msg != "" {
		field := prefix + "subject"
		if in.Inner {
			field = prefix + "data.subject.user_id"
		}
		fe.Add(field, msg)
	}
	in.Attributes = attributes(object, dataPath, &fe)
	return in, fe
}

// asInner recognises AuthPI's shape: an envelope that is not itself a user event, whose data is an event
// with a type and a subject or an id. Once recognised, a malformed inner event is a fault (with a wrong inner
// time, say), never a reason to fall back to the envelope: that would ignore the event for good.
func asInner(envelopeType string, object map[string]json.RawMessage, path string, fe *userhook.FieldErrors) (innerEvent, bool) {
	if object == nil || (Incoming{Type: envelopeType}).Supported() {
		return innerEvent{}, false
	}
	var inner innerEvent
	if json.Unmarshal(object["type"], &inner.Type) != nil || inner.Type == "" {
		return innerEvent{}, false
	}
	_, hasSubject := object["subject"]
	_, hasID := object["id"]
	if !hasSubject && !hasID {
		return innerEvent{}, false
	}
	str := func(key string, dst *string, required bool) {
		raw, ok := object[key]
		if !ok || string(raw) == "null" {
			if required {
				fe.Add(path+"."+key, key+" is required in an inner event")
			}
			return
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			fe.Add(path+"."+key, "must be a string")
		}
	}
	str("id", &inner.ID, true)
	str("source", &inner.Source, false)
	str("trace", &inner.Trace, false)
	if raw, ok := object["time"]; ok && string(raw) != "null" {
		var ts string
		t, err := time.Time{}, json.Unmarshal(raw, &ts)
		if err == nil {
			t, err = time.Parse(time.RFC3339Nano, ts)
		}
		if err != nil {
			fe.Add(path+".time", "must be an RFC 3339 time")
		}
		inner.Time = t
	}
	inner.Subject, inner.Data = object["subject"], object["data"]
	return inner, true
}

// subjectUserID reads AuthPI's subject: {"user_id": "..."}, or a plain string.
func subjectUserID(raw json.RawMessage) string {
	var s struct {
		UserID string `json:"user_id"`
	}
	if json.Unmarshal(raw, &s) == nil && s.UserID != "" {
		return s.UserID
	}
	var plain string
	if json.Unmarshal(raw, &plain) == nil {
		return plain
	}
	return ""
}

// attributes reads email, email_verified and name from data; everything else but user_id is the profile.
func attributes(object map[string]json.RawMessage, path string, fe *userhook.FieldErrors) aggregate.Attributes {
	var a aggregate.Attributes
	profile := map[string]any{}
	keys := make([]string, 0, len(object))
	for k := range object {
		keys = append(keys, k)
	}
	sort.Strings(keys) // faults come in a stable order
	for _, k := range keys {
		raw := object[k]
		if string(raw) == "null" {
			continue // a null attribute says nothing
		}
		switch k {
		case "email":
			var email string
			if err := json.Unmarshal(raw, &email); err != nil {
				fe.Add(path+".email", "must be a string")
				continue
			}
			if msg := aggregate.CheckEmail(email); msg != "" {
				fe.Add(path+".email", msg)
				continue
			}
			a.Email = &email
		case "email_verified":
			var v bool
			if err := json.Unmarshal(raw, &v); err != nil {
				fe.Add(path+".email_verified", "must be a boolean")
				continue
			}
			a.EmailVerified = &v
		case "name":
			var name string
			if err := json.Unmarshal(raw, &name); err != nil {
				fe.Add(path+".name", "must be a string")
				continue
			}
			if strings.ContainsRune(name, 0) || len(name) > 1024 {
				fe.Add(path+".name", "must be at most 1024 bytes, without NUL characters")
				continue
			}
			a.Name = &name
		case "user_id":
		default:
			var v any
			if err := json.Unmarshal(raw, &v); err == nil {
				profile[k] = v
			}
		}
	}
	if len(profile) > 0 {
		a.Profile = profile
	}
	return a
}
