package transport

import (
	"bytes"
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
	var out []ingest.Event
	if batch {
		if err := checkBatchShape(body); err != nil {
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
			e, faults := decodeCloudEvent(&events[i], fmt.Sprintf("[%d].", i))
			fe = append(fe, faults...)
			out = append(out, e)
		}
	} else {
		if mt != MediaCloudEvent && header.Get("ce-specversion") == "" {
			return nil, userhook.FieldErrors{{Field: "ce-specversion",
				Message: "not a CloudEvent: send application/cloudevents+json, application/cloudevents-batch+json, or ce-* headers"}}
		}
		ev, err := cehttp.NewEventFromHTTPRequest(req)
		if err != nil {
			return nil, userhook.Errorf(userhook.ErrInvalid, "not a CloudEvent: %s", firstLine(err))
		}
		e, faults := decodeCloudEvent(ev, "")
		fe = append(fe, faults...)
		out = append(out, e)
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
// is, to be acknowledged as ignored.
func decodeCloudEvent(ev cloudEvent, prefix string) (ingest.Event, userhook.FieldErrors) {
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
	e := ingest.Event{
		ID: ev.ID(), Source: ev.Source(), ProviderEventID: ev.ID(), UserID: ev.Subject(),
		Kind: ceKinds[ev.Type()], OccurredAt: ev.Time(),
		Metadata: map[string]string{"ce_id": ev.ID(), "ce_source": ev.Source(), "ce_type": ev.Type()},
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
		if err := json.Unmarshal(data, &object); err != nil {
			if e.Kind.Applies() {
				fe.Add(prefix+"data", "must be a JSON object")
			}
			return e, fe
		}
	}
	dataPath, userIDField := prefix+"data", prefix+"subject"
	if inner, ok := asInner(ev.Type(), object, dataPath, &fe); ok {
		if object, ok = inner.applyTo(&e, dataPath, &fe); !ok {
			return e, fe
		}
		dataPath, userIDField = dataPath+".data", prefix+"data.subject.user_id"
	}
	if !e.Kind.Applies() {
		return e, fe
	}
	if e.UserID == "" {
		if raw, ok := object["user_id"]; ok {
			_ = json.Unmarshal(raw, &e.UserID)
		}
	}
	if msg := aggregate.CheckUserID(e.UserID); msg != "" {
		fe.Add(userIDField, msg)
	}
	e.Attributes = attributes(object, dataPath, &fe)
	return e, fe
}
