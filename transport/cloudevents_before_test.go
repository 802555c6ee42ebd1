package transport

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"sort"
	"strings"
	"testing"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/stretchr/testify/assert"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/ingest"
)

// The decoder reads a structured CloudEvent without a request around it and the data of an event without
// encoding/json where checkJSON has already accepted the body. The fuzz targets below hold it to the answers of
// the decoder as it was before (refDecodeCloudEvents: the SDK reading every request from an http.Request,
// encoding/json reading every value), kept here for that alone.

// FuzzDecodeCloudEventsAsBefore compares structured and batch mode: the Content-Type and the body.
func FuzzDecodeCloudEventsAsBefore(f *testing.F) {
	for _, name := range []string{
		"authpi-email-verified.json", "authpi-user-created.json", "authpi-user-deleted.json",
		"authpi-user-updated.json", "structured-user-created.json", "batch.json",
	} {
		body := readSeed(f, "cloudevents", name)
		f.Add(MediaCloudEvent, body)
		f.Add(MediaCloudEventBatch, body)
		f.Add(MediaCloudEventBatch, append(append([]byte("["), body...), ']'))
	}
	const head = `{"specversion":"1.0","id":"e1","source":"s","type":"user.updated","subject":"u1"`
	for _, body := range []string{
		head + `}`,
		"  \n\t" + head + "}\r\n ",
		head + `,"data":null}`,
		head + `,"data":{}}`,
		head + `,"data": { } }`,
		head + `,"data":[]}`,
		head + `,"data":"x"}`,
		head + `,"data":1}`,
		head + `,"data":true}`,
		head + `,"data" : { "email" : "a@b.c" , "name" : "Ada" , "plan" : "pro" } }`,
		head + `,"data":{"email":"a@b.c","name":"\u0041da \"Lovelace\"","x":"\ud83d\ude00","y":"é✓😀"}}`,
		head + `,"data":{"\u0065mail":"a@b.c","n\u0061me":"Ada"}}`,
		head + `,"data":{"email":null,"name":null,"email_verified":null,"p":null}}`,
		head + `,"data":{"email":1,"name":[],"email_verified":"yes","p":{"q":[1,2,{"r":"s"}]},"n":-1.5e3,"t":true,"f":false}}`,
		head + `,"data":{"email":"a@b.c","email_verified":true,"name":"Ada","profile":{"a":"b"},"user_id":"u9"}}`,
		`{"specversion":"1.0","id":"e1","source":"s","type":"user.created","data":{"user_id":"u1","email":"a@b.c"}}`,
		`{"specversion":"1.0","id":"e1","source":"s","type":"user.created","data":{"user_id":7,"email":"a@b.c"}}`,
		`{"specversion":"1.0","id":"e1","source":"s","type":"user.created","data":{"user_id":"u\u0031"}}`,
		`{"specversion":"1.0","id":"e1","source":"s","type":"user.created","data":{"user_id":null}}`,
		head + `,"datacontenttype":"application/json","data":{"email":"a@b.c"}}`,
		head + `,"datacontenttype":"text/json","data":{"email":"a@b.c"}}`,
		head + `,"datacontenttype":"application/vnd.x+json","data":"{\"email\":\"a@b.c\"}"}`,
		head + `,"datacontenttype":"application/vnd.x+json","data":"{\"email\":\"a@b.c\",\"email\":\"x\"}"}`,
		head + `,"datacontenttype":"application/vnd.x+json","data":"{\"email\":\"a\\ud800@b.c\"}"}`,
		head + `,"datacontenttype":"text/plain","data":"hi"}`,
		head + `,"datacontenttype":"application/json","data_base64":"eyJlbWFpbCI6ImFAYi5jIn0="}`,
		head + `,"data_base64":"eyJlbWFpbCI6ImFAYi5jIiwiZW1haWwiOiJ4In0="}`,
		head + `,"data_base64":"eyJlbWFpbCI6ImH/QGIuYyJ9"}`,
		`{"data":{"email":"a@b.c"},"specversion":"1.0","id":"e1","source":"s","type":"user.updated","subject":"u1"}`,
		`{"datacontenttype":"text/plain","data":"x","specversion":"1.0","id":"e1","source":"s","type":"user.updated","subject":"u1"}`,
		`{"specversion":"0.3","id":"e1","source":"s","type":"user.updated","subject":"u1","data":{"email":"a@b.c"}}`,
		`{"specversion":"0.3","id":"e1","source":"s","type":"user.updated","subject":"u1","datacontentencoding":"base64","data":"eyJlbWFpbCI6ImFAYi5jIn0="}`,
		`{"specversion":"1.0","id":"e1","source":"s","type":"user.updated","subject":"u1","ext":"v","data":{"email":"a@b.c"}}`,
		`{"specversion":"1.0","id":"","source":"","type":"","data":{}}`,
		`{"specversion":"2.0","id":"e1","source":"s","type":"user.updated"}`,
		`{"id":"e1","source":"s","type":"user.updated"}`,
		`{"specversion":"1.0","id":"e1","source":"s","type":"user.updated","subject":"u1","time":"nope"}`,
		`{"specversion":"1.0","id":"e1","source":"s","type":"event","data":{"id":"i","type":"user.updated","subject":{"user_id":"u1"},"data":{"email":"a@b.c","x":"y"}}}`,
		`{"specversion":"1.0","id":"e1","source":"s","type":"event","data":{"id":"i","type":"user.updated","subject":"u1","data":"x"}}`,
		`{"specversion":"1.0","id":"e1","source":"s","type":"organization.created","data":{"name":"Acme"}}`,
		`{"specversion":"1.0","id":"e1","source":"s","type":"user.updated","subject":"u1","data":{"email":"a@b.c"}} x`,
		`{"specversion":"1.0","id":"e1","source":"s","type":"user.updated","subject":"u1","data":{"email":"a@b.c"}`,
		`{"specversion":"1.0","id":"e1","source":"s","type":"user.updated","subject":"u1","data":{"email":"a@b.c","email":"x"}}`,
		`null`, `[]`, `1`, `"x"`, ``, ` `,
	} {
		f.Add(MediaCloudEvent, []byte(body))
		f.Add(MediaCloudEvent+"; charset=utf-8", []byte(body))
		f.Add(MediaCloudEventBatch, []byte("["+body+"]"))
		f.Add("application/json", []byte(body))
		f.Add("", []byte(body))
	}
	f.Add("application/cloudevents+json; charset=", []byte(head+`,"data":{"email":"a@b.c"}}`))
	f.Add("APPLICATION/CLOUDEVENTS+JSON", []byte(head+`,"data":{"email":"a@b.c"}}`))
	f.Add("application/cloudevents-batch+json; charset=", []byte("["+head+`,"data":{"email":"a@b.c"}}]`))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		for _, specversion := range []string{"", "1.0"} {
			h := http.Header{}
			h.Set("Content-Type", contentType)
			if specversion != "" {
				h.Set("ce-specversion", specversion)
				h.Set("ce-id", "b1")
				h.Set("ce-source", "https://idp.example.com")
				h.Set("ce-type", aggregate.PublicUserUpdated)
				h.Set("ce-subject", "u2")
			}
			assertDecodesAsBefore(t, h, body)
		}
	})
}

// FuzzDecodeBinaryCloudEventAsBefore compares binary mode: the data's media type and the body.
func FuzzDecodeBinaryCloudEventAsBefore(f *testing.F) {
	for _, s := range []struct{ ct, body string }{
		{"application/json", `{"email":"a@b.c","name":"Ada","plan":"pro"}`},
		{"application/json", ` { "email" : "a@b.c" } `},
		{"application/json", `{"\u0065mail":"a@b.c","name":"\u00e9"}`},
		{"application/json", `{"email":"a@b.c","email":"x"}`},
		{"application/json", `null`},
		{"application/json", `[1]`},
		{"application/json", `"x"`},
		{"application/json", ``},
		{"application/json", `{"email":"a@b.c"`},
		{"", `{"email":"a@b.c"}`},
		{"text/json", `{"email":"a@b.c"}`},
		{"application/vnd.x+json", `{"email":"a@b.c","email":"x"}`},
		{"application/vnd.x+json", "{\"email\":\"a\xff@b.c\"}"},
		{"application/vnd.x+json", `{"email":"a\ud800@b.c"}`},
		{"text/plain", `{"email":"a@b.c"}`},
		{"application/json; charset=", `{"email":"a@b.c"}`},
		{"application/cloudevents+json", `{"email":"a@b.c"}`},
	} {
		f.Add(s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		h := http.Header{}
		h.Set("Content-Type", contentType)
		h.Set("ce-specversion", "1.0")
		h.Set("ce-id", "b1")
		h.Set("ce-source", "https://idp.example.com")
		h.Set("ce-type", aggregate.PublicUserUpdated)
		h.Set("ce-subject", "u2")
		assertDecodesAsBefore(t, h, body)
	})
}

func assertDecodesAsBefore(t *testing.T, h http.Header, body []byte) {
	t.Helper()
	want, wantErr := refDecodeCloudEvents(h.Clone(), bytes.Clone(body))
	got, err := DecodeCloudEvents(h, body)
	if !assert.Equal(t, wantErr, err, "the refusal, for %q %q", h.Get("Content-Type"), body) {
		return
	}
	assert.Equal(t, want, got, "the events, for %q %q", h.Get("Content-Type"), body)
}

// FuzzObjectMembers holds objectMembers and jsonString to encoding/json's readings of JSON that checkJSON
// accepts.
func FuzzObjectMembers(f *testing.F) {
	for _, s := range []string{
		`{}`, ` { } `, `null`, ` null `, `[]`, `1`, `"x"`, `true`, `{"a":1}`, `{"a":"b","c":[1,{"d":"}"}],"e":{"f":"]"}}`,
		`{"\u0061":"\u00e9\n","b":"\"","c":"\\","d":"✓","e":-0.5e+3,"f":null,"g":false}`,
		`{"a" : "b" , "c" : [ ] }`, `{"a":{"b":{"c":{}}}}`, `{"a":"\ud83d\ude00"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if valid, err := checkedJSON(data); !valid || err != nil {
			t.Skip("not JSON checkJSON accepts")
		}
		var want map[string]json.RawMessage
		wantErr := json.Unmarshal(data, &want)
		got, err := objectMembers(data)
		assert.Equal(t, wantErr != nil, err != nil, "%q", data)
		assert.Equal(t, want, got, "%q", data)
		for _, raw := range want {
			var s string
			wantErr := json.Unmarshal(raw, &s)
			got, ok := jsonString(raw)
			assert.Equal(t, wantErr == nil, ok, "%q", raw)
			assert.Equal(t, s, got, "%q", raw)
		}
	})
}

// FuzzJSONString holds jsonString to encoding/json's reading of any JSON value.
func FuzzJSONString(f *testing.F) {
	for _, s := range []string{`""`, `"a"`, `"\u00e9"`, `"\ud800"`, "\"a\xffb\"", `null`, `1`, `{}`, `"a\"b"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			t.Skip("not JSON")
		}
		var want string
		wantErr := json.Unmarshal(raw, &want)
		got, ok := jsonString(bytes.TrimSpace(raw))
		assert.Equal(t, wantErr == nil, ok, "%q", raw)
		assert.Equal(t, want, got, "%q", raw)
	})
}

// The decoder as it was: refDecodeCloudEvents, refDecodeCloudEvent, refAttributes.

func refDecodeCloudEvents(header http.Header, body []byte) ([]ingest.Event, error) {
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
			e, faults := refDecodeCloudEvent(&events[i], fmt.Sprintf("[%d].", i))
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
		e, faults := refDecodeCloudEvent(ev, "")
		fe = append(fe, faults...)
		out = append(out, e)
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func refDecodeCloudEvent(ev cloudEvent, prefix string) (ingest.Event, userhook.FieldErrors) {
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
		if object, ok = inner.applyTo(&e, dataPath, &fe, false); !ok {
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
	e.Attributes = refAttributes(object, dataPath, &fe)
	return e, fe
}

func refAttributes(object map[string]json.RawMessage, path string, fe *userhook.FieldErrors) aggregate.Attributes {
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
