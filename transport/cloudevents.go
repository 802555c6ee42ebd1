package transport

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/ingest"
)

// The CloudEvents media types.
const (
	MediaCloudEvent      = "application/cloudevents+json"
	MediaCloudEventBatch = "application/cloudevents-batch+json"
)

// MaxBatch bounds the events of one batch request.
const MaxBatch = 1000

// ceKinds are the CloudEvent types applied (the public event types) and what each says happened; any other
// type is acknowledged as ignored.
var ceKinds = map[string]ingest.Kind{
	aggregate.PublicUserCreated:       ingest.KindCreated,
	aggregate.PublicUserUpdated:       ingest.KindUpdated,
	aggregate.PublicUserDeleted:       ingest.KindDeleted,
	aggregate.PublicUserEmailVerified: ingest.KindEmailVerified,
}

// DecodeCloudEvents reads the CloudEvents of one HTTP request, in structured, binary or batch mode, into the
// events to apply (AuthPI's inner event where the envelope carries one), and validates all of them before any
// is applied: a fault anywhere refuses the whole request, with every fault in the list (fields are prefixed
// with the event's index in a batch).
func DecodeCloudEvents(header http.Header, body []byte) ([]ingest.Event, error) {
	mt, _ := mediaType(header.Get("Content-Type"))
	for name := range header {
		// A bare "ce-" header names no attribute; the SDK would index past its end (found by fuzzing).
		if len(name) <= len("ce-") && strings.EqualFold(name, "ce-") {
			return nil, userhook.FieldErrors{{Field: "ce-", Message: "a ce- header must name a CloudEvents attribute"}}
		}
	}

	// checked: the body is JSON that checkJSON accepted, so the data of its events need not be checked again.
	checked := false
	if len(body) > 0 && (mt == MediaCloudEvent || mt == MediaCloudEventBatch || mt == "application/json" || mt == "") {
		valid, err := checkedJSON(body)
		if err != nil {
			return nil, err
		}
		checked = valid
	}
	request := func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPost, "/events", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header = header.Clone()
		req.ContentLength = int64(len(body))
		return req, nil
	}
	batch := mt == MediaCloudEventBatch
	var fe userhook.FieldErrors
	var out []ingest.Event
	if batch {
		if err := checkBatchShape(body); err != nil {
			return nil, err
		}
		req, err := request()
		if err != nil {
			return nil, err
		}
		events, err := cehttp.NewEventsFromHTTPRequest(req)
		if err != nil {
			return nil, userhook.Errorf(userhook.ErrInvalid, "not a CloudEvents batch: %s", firstLine(err))
		}
		if len(events) == 0 {
			return nil, userhook.FieldErrors{{Field: "batch", Message: "a batch needs at least one event"}}
		}
		if len(events) > MaxBatch {
			return nil, userhook.FieldErrors{{Field: "batch", Message: fmt.Sprintf("a batch holds at most %d events", MaxBatch)}}
		}
		for i := range events {
			e, faults := decodeCloudEvent(&events[i], fmt.Sprintf("[%d].", i), checked && rawJSONData(&events[i]))
			fe = append(fe, faults...)
			out = append(out, e)
		}
	} else {
		if mt != MediaCloudEvent && header.Get("ce-specversion") == "" {
			return nil, userhook.FieldErrors{{Field: "ce-specversion",
				Message: "not a CloudEvent: send application/cloudevents+json, application/cloudevents-batch+json, or ce-* headers"}}
		}
		var ev *event.Event
		if object := bytes.Trim(body, " \t\r\n"); mt == MediaCloudEvent && checked && object[0] == '{' {
			// Structured mode, as the SDK reads it (its JSON format is json.Unmarshal into an event.Event, that is
			// the event's own UnmarshalJSON) without a request to carry the body, nor a second pass to check it.
			e := event.New()
			if err := e.UnmarshalJSON(object); err != nil {
				return nil, userhook.Errorf(userhook.ErrInvalid, "not a CloudEvent: %s", firstLine(err))
			}
			ev = &e
		} else {
			req, err := request()
			if err != nil {
				return nil, err
			}
			if ev, err = cehttp.NewEventFromHTTPRequest(req); err != nil {
				return nil, userhook.Errorf(userhook.ErrInvalid, "not a CloudEvent: %s", firstLine(err))
			}
		}
		// The SDK reads a body in a CloudEvents format (even where mime cannot parse the Content-Type) as the
		// structured event; any other as the data of a binary one.
		structured := format.Lookup(header.Get("Content-Type")) != nil
		e, faults := decodeCloudEvent(ev, "", checked && (!structured || rawJSONData(ev)))
		fe = append(fe, faults...)
		out = append(out, e)
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// rawJSONData says whether the SDK kept an event's data as the JSON of its structured form, byte for byte: it
// does for a JSON data media type (none is JSON too), and decodes it otherwise (a string, base64).
func rawJSONData(ev *event.Event) bool {
	if ev.DataBase64 {
		return false
	}
	switch ev.DataMediaType() {
	case "", event.ApplicationJSON, event.TextJSON, event.ApplicationCloudEventsJSON, event.ApplicationCloudEventsBatchJSON:
		return true
	}
	return false
}

// checkBatchShape refuses a batch body that is not exactly one JSON array before the SDK reads it (the SDK
// would ignore data after the array).
func checkBatchShape(body []byte) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return userhook.Errorf(userhook.ErrInvalid, "a CloudEvents batch is a JSON array of events")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return userhook.Errorf(userhook.ErrInvalid, "the batch is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return userhook.Errorf(userhook.ErrInvalid, "the batch holds data after its array")
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

// cloudEvent is what decodeCloudEvent needs of an SDK event.
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

// decodeCloudEvent reads one CloudEvent into the event to apply: the envelope's own, or AuthPI's inner event
// when its data is one. Only the data of a type that is applied is checked; any other type is taken as it
// is, to be acknowledged as ignored. checked says the data, when there is any, is JSON that checkJSON
// accepted.
func decodeCloudEvent(ev cloudEvent, prefix string, checked bool) (ingest.Event, userhook.FieldErrors) {
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
			return ingest.Event{}, fe
		}
	}
	id, source, typ := ev.ID(), ev.Source(), ev.Type()
	e := ingest.Event{
		ID: id, Source: source, ProviderEventID: id, UserID: ev.Subject(),
		Kind: ceKinds[typ], OccurredAt: ev.Time(),
		Metadata: map[string]string{"ce_id": id, "ce_source": source, "ce_type": typ},
	}
	data := ev.Data()
	if mt := ev.DataMediaType(); len(data) > 0 && mt != "" && mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		if e.Kind.Applies() {
			fe.Add(prefix+"datacontenttype", "user events carry JSON data")
		}
		return e, fe
	}
	var object map[string]json.RawMessage
	if len(data) > 0 {
		var err error
		if checked {
			object, err = objectMembers(data)
		} else {
			err = json.Unmarshal(data, &object)
		}
		if err != nil {
			if e.Kind.Applies() {
				fe.Add(prefix+"data", "must be a JSON object")
			}
			return e, fe
		}
	}
	dataPath, userIDField := prefix+"data", prefix+"subject"
	if inner, ok := asInner(ev.Type(), object, dataPath, &fe); ok {
		if object, ok = inner.applyTo(&e, dataPath, &fe, checked); !ok {
			return e, fe
		}
		dataPath, userIDField = dataPath+".data", prefix+"data.subject.user_id"
	}
	if !e.Kind.Applies() {
		return e, fe
	}
	if e.UserID == "" {
		if raw, ok := object["user_id"]; ok {
			if id, ok := jsonString(raw); ok {
				e.UserID = id
			}
		}
	}
	if msg := aggregate.CheckUserID(e.UserID); msg != "" {
		fe.Add(userIDField, msg)
	}
	e.Attributes = attributes(object, dataPath, &fe)
	return e, fe
}
