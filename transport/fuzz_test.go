package transport

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/ingest"
	"github.com/userhook/userhook/standardwebhooks"
)

// The fuzz targets below hold every decoder of outside input to the same promises: it never panics, every
// refusal is a 400 (ErrInvalid) or a 401 (ErrUnauthorized), and what it accepts is valid by the aggregate's own
// checks. `go test` runs the seeds (f.Add and testdata/fuzz/) as unit tests; `go test -fuzz` explores further.

// fuzzSecretA and fuzzSecretB are the two secrets of a rotation; long enough that no fixed error text could
// contain them by accident.
var (
	fuzzSecretA = []byte("fuzz-secret-A-8a6f1c0e4b2d9e7f51c3")
	fuzzSecretB = []byte("fuzz-secret-B-3c5e7a9b1d0f2e4c7a90")
	fuzzSecrets = [][]byte{fuzzSecretA, fuzzSecretB}
	fuzzNow     = time.Unix(1_700_000_000, 0).UTC()
)

// readSeed reads a payload of the repository's testdata, relative to the package directory.
func readSeed(f *testing.F, path ...string) []byte {
	f.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{"..", "testdata"}, path...)...))
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// checkDecoded asserts the properties every result of DecodeCloudEvents has.
func checkDecoded(t *testing.T, events []ingest.Event, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, userhook.ErrInvalid) {
			t.Fatalf("a refusal must match userhook.ErrInvalid (a 400), got %T: %v", err, err)
		}
		if events != nil {
			t.Fatalf("events returned with an error: %d", len(events))
		}
		return
	}
	if len(events) == 0 || len(events) > MaxBatch {
		t.Fatalf("accepted %d events; want 1 to %d", len(events), MaxBatch)
	}
	for i, e := range events {
		if e.ID == "" || e.Metadata["ce_source"] == "" || e.Metadata["ce_type"] == "" {
			t.Fatalf("[%d] accepted an envelope without id, source or type: %+v", i, e)
		}
		key := e.Key()
		if again := e.Key(); again != key {
			t.Fatalf("[%d] Key is not deterministic: %q then %q", i, key, again)
		}
		if same := (ingest.Event{ProviderEventID: e.ProviderEventID, Source: e.Source}).Key(); same != key {
			t.Fatalf("[%d] Key depends on more than source and id: %q and %q", i, key, same)
		}
		if !strings.HasPrefix(key, "ce_") || len(key) != len("ce_")+32 {
			t.Fatalf("[%d] Key %q is not ce_ and 32 hex digits", i, key)
		}
		if !e.Kind.Applies() {
			continue
		}
		if msg := aggregate.CheckUserID(e.UserID); msg != "" {
			t.Fatalf("[%d] accepted %s with user id %q: %s", i, e.Kind, e.UserID, msg)
		}
		if e.Attributes.Email != nil {
			if msg := aggregate.CheckEmail(*e.Attributes.Email); msg != "" {
				t.Fatalf("[%d] accepted %s with email %q: %s", i, e.Kind, *e.Attributes.Email, msg)
			}
		}
		cmd := e.Command()
		if cmd == nil || cmd.StreamID() != e.UserID {
			t.Fatalf("[%d] applied %s has command %#v for user %q", i, e.Kind, cmd, e.UserID)
		}
	}
}

// FuzzDecodeCloudEvents fuzzes structured and batch mode: the Content-Type and the body.
func FuzzDecodeCloudEvents(f *testing.F) {
	for _, name := range []string{
		"authpi-email-verified.json", "authpi-user-created.json", "authpi-user-deleted.json",
		"authpi-user-updated.json", "structured-user-created.json",
	} {
		body := readSeed(f, "cloudevents", name)
		f.Add(MediaCloudEvent, body)
		f.Add(MediaCloudEvent+"; charset=utf-8", body)
		f.Add(MediaCloudEventBatch, append(append([]byte("["), body...), ']')) // a batch of one
		f.Add(MediaCloudEvent, body[:len(body)/2])                             // truncated
	}
	batch := readSeed(f, "cloudevents", "batch.json")
	f.Add(MediaCloudEventBatch, batch)
	f.Add(MediaCloudEvent, batch) // an array sent as one event
	f.Add(MediaCloudEventBatch, batch[:len(batch)-3])
	f.Add(MediaCloudEventBatch, append(append([]byte(nil), batch...), []byte(" trailing")...))
	f.Add(MediaCloudEventBatch, readSeed(f, "cloudevents", "structured-user-created.json")) // an object as a batch

	const minimal = `{"specversion":"1.0","id":"e1","source":"s","type":"user.created","subject":"u1"}`
	over := "[" + strings.Repeat(minimal+",", MaxBatch) + minimal + "]"
	for _, s := range []struct{ ct, body string }{
		{"", ""},
		{MediaCloudEvent, ""},
		{MediaCloudEventBatch, ""},
		{MediaCloudEventBatch, "[]"},
		{MediaCloudEventBatch, "[null]"},
		{MediaCloudEventBatch, "[{}]"},
		{MediaCloudEventBatch, "[1,\"x\",[]]"},
		{MediaCloudEventBatch, " \n[" + minimal + "]"},
		{MediaCloudEventBatch, over},
		{"application/json", minimal},
		{"text/plain", minimal},
		{"APPLICATION/CLOUDEVENTS+JSON", minimal},
		{"application/cloudevents+json; charset=", minimal},
		{MediaCloudEvent, minimal},
		{MediaCloudEvent, "null"},
		{MediaCloudEvent, "{}"},
		{MediaCloudEvent, "[" + minimal + "]"},
		{MediaCloudEvent, `{"specversion":"0.3","id":"e1","source":"s","type":"user.created","subject":"u1"}`},
		{MediaCloudEvent, `{"specversion":"1.0","id":"e1","source":"s","type":"user.created"}`},
		{MediaCloudEvent, `{"specversion":"1.0","id":"e1","source":"s","type":"user.created","data":{"user_id":"u1"}}`},
		{MediaCloudEvent, `{"specversion":"1.0","id":"e1","source":"s","type":"user.created","subject":" u1"}`},
		{MediaCloudEvent, `{"specversion":"1.0","id":"e1","source":"s","type":"user.created","subject":"u\u0000"}`},
		{MediaCloudEvent, `{"specversion":"1.0","id":"e1","source":"s","type":"user.created","subject":"u1","data":"x"}`},
		{MediaCloudEvent, `{"specversion":"1.0","id":"e1","source":"s","type":"user.created","subject":"u1","data":[1]}`},
		{MediaCloudEvent, `{"specversion":"1.0","id":"e1","source":"s","type":"user.created","subject":"u1","data_base64":"eyJlbWFpbCI6ImFAYi5jIn0="}`},
		{MediaCloudEvent, `{"specversion":"1.0","id":"e1","source":"s","type":"user.created","subject":"u1","datacontenttype":"text/plain","data":"hi"}`},
		{MediaCloudEvent, `{"specversion":"1.0","id":"e1","source":"s","type":"user.created","subject":"u1","data":{"email":"Ada <a@b.c>"}}`},
		{MediaCloudEvent, `{"specversion":"1.0","id":"e1","source":"s","type":"user.updated","subject":"u1","data":{"email":1e400,"email_verified":123456789012345678901234567890,"n":-1e999}}`},
		{MediaCloudEvent, `{"specversion":"1.0","id":"e1","source":"s","type":"user.updated","subject":"u1","time":"99999-01-01T00:00:00Z"}`},
		{MediaCloudEvent, `{"specversion":"1.0","id":"e1","source":"s","type":"user.updated","subject":"u1","data":{"email":"a@b.c","email":"bad"}}`},
		{MediaCloudEvent, "{\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"s\",\"type\":\"user.created\",\"subject\":\"u\xff\xfe\",\"data\":{\"email\":\"a\xff@b.c\"}}"},
		{MediaCloudEvent, `{"specversion":"1.0","id":"e1","source":"s","type":"user.created","subject":"u1","data":` +
			strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000) + "}"},
		{MediaCloudEvent, `{"specversion":"1.0","id":"e1","source":"s","type":"event","data":` +
			strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "}"},
	} {
		f.Add(s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		h := http.Header{}
		h.Set("Content-Type", contentType)
		events, err := DecodeCloudEvents(h, body)
		checkDecoded(t, events, err)
	})
}

// FuzzDecodeBinaryCloudEvent fuzzes binary mode: the ce-* headers and the body.
func FuzzDecodeBinaryCloudEvent(f *testing.F) {
	data := readSeed(f, "cloudevents", "structured-user-created.json")
	var structured struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(data, &structured); err != nil {
		f.Fatal(err)
	}
	f.Add("evt_1", "https://idp.example.com", aggregate.PublicUserCreated, "user-2", "2024-01-03T11:00:00Z", []byte(structured.Data))
	f.Add("evt_1", "https://idp.example.com", aggregate.PublicUserUpdated, "user-2", "", []byte(`{"name":"Grace"}`))
	f.Add("evt_1", "https://idp.example.com", aggregate.PublicUserDeleted, "user-2", "", []byte(nil))
	f.Add("evt_1", "https://idp.example.com", aggregate.PublicUserEmailVerified, "user-2", "2024-01-03T11:00:00.123456789+02:00", []byte(`{"email":"a@b.c"}`))
	f.Add("evt_1", "https://idp.example.com", "organization.created", "org-1", "", []byte(`not json`))
	f.Add("", "", "", "", "", []byte(nil))
	f.Add("evt_1", "s", aggregate.PublicUserCreated, "", "", []byte(`{"user_id":"u1","email":"a@b.c"}`))
	f.Add("evt_1", "s", aggregate.PublicUserCreated, " u1", "yesterday", []byte(`{}`))
	f.Add("evt_1", "s", aggregate.PublicUserCreated, "u\xff", "", []byte(`{"email":"x"}`))
	f.Add("evt_1", "s", aggregate.PublicUserCreated, "u1", "", []byte(`[1,2]`))
	f.Add("evt_1", "s", aggregate.PublicUserCreated, "u1", "", []byte(`{"email":"a@b.c"`))
	f.Add("evt_1", "://bad uri", aggregate.PublicUserCreated, strings.Repeat("u", 256), "", []byte(`{"email":"a@b.c"}`))
	f.Add("evt_1", "s", aggregate.PublicUserCreated, "u1", "", []byte(`{"id":"in","type":"user.created","subject":{"user_id":"u2"},"data":{"email":"a@b.c"}}`))
	f.Fuzz(func(t *testing.T, id, source, typ, subject, timeStr string, body []byte) {
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set("ce-specversion", "1.0")
		for name, value := range map[string]string{
			"ce-id": id, "ce-source": source, "ce-type": typ, "ce-subject": subject, "ce-time": timeStr,
		} {
			if value != "" { // an empty string stands for a header not sent
				h.Set(name, value)
			}
		}
		events, err := DecodeCloudEvents(h, body)
		checkDecoded(t, events, err)
	})
}

// FuzzDecodeBinaryCloudEventHeader fuzzes one more header, by name and value, beside a valid binary-mode
// user.created: extension attributes arrive as ce-<name> headers of any name a client picks.
func FuzzDecodeBinaryCloudEventHeader(f *testing.F) {
	for _, s := range []struct{ name, value string }{
		{"ce-traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{"ce-partitionkey", "user-2"},
		{"ce-x", "1"},
		{"ce-id", ""},
		{"ce-specversion", "0.3"},
		{"ce-datacontenttype", "text/plain"},
		{"ce-time", "2024-01-03T11:00:00Z"},
		{"ce-Bad_Name", "v"},
		{"ce-" + strings.Repeat("a", 100), "v"},
		{"Content-Type", "text/plain"},
		{"X-Other", "ÿ"},
	} {
		f.Add(s.name, s.value)
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set("ce-specversion", "1.0")
		h.Set("ce-id", "evt_1")
		h.Set("ce-source", "https://idp.example.com")
		h.Set("ce-type", aggregate.PublicUserCreated)
		h.Set("ce-subject", "user-2")
		h.Set(name, value)
		events, err := DecodeCloudEvents(h, []byte(`{"email":"grace@example.com"}`))
		checkDecoded(t, events, err)
	})
}

// FuzzAuthPIInner fuzzes AuthPI's inner event: the fuzz bytes are the data of a valid structured envelope.
func FuzzAuthPIInner(f *testing.F) {
	for _, name := range []string{
		"authpi-email-verified.json", "authpi-user-created.json", "authpi-user-deleted.json", "authpi-user-updated.json",
	} {
		var envelope struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(readSeed(f, "cloudevents", name), &envelope); err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(envelope.Data))
		f.Add([]byte(envelope.Data[:len(envelope.Data)/2])) // truncated: skipped, but a start for mutation
	}
	for _, s := range []string{
		``, `null`, `{}`, `[]`, `"user.created"`, `1e400`,
		`{"id":"i","type":"user.created","subject":"u1"}`,
		`{"id":"i","type":"user.created","subject":{"user_id":"u1"},"data":null}`,
		`{"id":"i","type":"user.created","subject":{"user_id":"u1"},"data":[1]}`,
		`{"id":"i","type":"user.created","subject":{"user_id":"u1"},"data":"x"}`,
		`{"id":"i","type":"user.created","subject":{},"data":{"user_id":"u1","email":"a@b.c"}}`,
		`{"id":"i","type":"user.created","subject":{"user_id":""},"data":{}}`,
		`{"id":"i","type":"user.created","subject":{"user_id":"u\u0007"}}`,
		`{"id":"i","type":"user.created","subject":1,"data":{"user_id":1}}`,
		`{"id":"","type":"user.created","subject":{"user_id":"u1"}}`,
		`{"id":"i","type":"user.created","time":"not a time","subject":{"user_id":"u1"}}`,
		`{"id":"i","type":"user.created","time":"0001-01-01T00:00:00Z","subject":{"user_id":"u1"}}`,
		`{"id":"i","type":"user.updated","subject":{"user_id":"u1"},"data":{"email":"a@b.c","email_verified":"yes","name":7}}`,
		`{"id":"i","type":"user.updated","subject":{"user_id":"u1"},"data":{"email":"@b.c","n":123456789012345678901234567890}}`,
		`{"id":"i","type":"user.updated","source":"","trace":"t","subject":{"user_id":"u1"},"data":{"email":"a@b.c"}}`,
		`{"id":"i","type":"user.updated","subject":{"user_id":"u1"},"data":{"p":` + strings.Repeat(`[`, 3000) + strings.Repeat(`]`, 3000) + `}}`,
		"{\"id\":\"i\",\"type\":\"user.created\",\"subject\":{\"user_id\":\"u\xff\"},\"data\":{\"email\":\"a\xfe@b.c\"}}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			t.Skip("the envelope's data is JSON")
		}
		envelope, err := json.Marshal(map[string]any{
			"specversion": "1.0", "id": "env-fuzz-1", "source": "com.authpi.webhooks/v1/wh_fuzz", "type": "event",
			"datacontenttype": "application/json", "time": "2024-01-01T00:00:00Z", "data": json.RawMessage(data),
		})
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		h.Set("Content-Type", MediaCloudEvent)
		events, err := DecodeCloudEvents(h, envelope)
		checkDecoded(t, events, err)
		if err == nil && (len(events) != 1 || events[0].ID != "env-fuzz-1") {
			t.Fatalf("one envelope decoded as %+v", events)
		}
	})
}

// standardSignatureValid is the test's own reading of Standard Webhooks: a v1 HMAC-SHA256 of id.timestamp.body
// under one of the secrets, with a timestamp within the tolerance of now.
func standardSignatureValid(id, timestamp, signatures string, body []byte) bool {
	if id == "" || timestamp == "" || signatures == "" {
		return false
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return false
	}
	tolerance := int64(SignatureTolerance / time.Second)
	if now := fuzzNow.Unix(); ts < now-tolerance || ts > now+tolerance {
		return false
	}
	for _, secret := range fuzzSecrets {
		want := standardMAC(secret, id, timestamp, body)
		for _, field := range strings.Fields(signatures) {
			value, ok := strings.CutPrefix(field, "v1,")
			if !ok {
				continue
			}
			// The MAC's bytes decide, not their spelling: base64 may spell the last sextet's unused bits either way.
			if got, err := base64.StdEncoding.DecodeString(value); err == nil && bytes.Equal(got, want) {
				return true
			}
		}
	}
	return false
}

func standardMAC(secret []byte, id, timestamp string, body []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	return mac.Sum(nil)
}

func bodyMAC(secret, body []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return mac.Sum(nil)
}

// hexSignatureValid is the test's own reading of X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the body>.
func hexSignatureValid(header string, body []byte) bool {
	value, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(value)
	if err != nil {
		return false
	}
	for _, secret := range fuzzSecrets {
		if bytes.Equal(got, bodyMAC(secret, body)) {
			return true
		}
	}
	return false
}

// FuzzVerifySignature fuzzes the three signature schemes with the same inputs.
func FuzzVerifySignature(f *testing.F) {
	ts := strconv.FormatInt(fuzzNow.Unix(), 10)
	tsAt := func(d time.Duration) string { return strconv.FormatInt(fuzzNow.Add(d).Unix(), 10) }
	hexOf := func(secret, body []byte) string { return "sha256=" + hex.EncodeToString(bodyMAC(secret, body)) }
	for _, body := range [][]byte{
		readSeed(f, "auth0", "post-login.json"),
		readSeed(f, "cloudevents", "authpi-user-created.json"),
		readSeed(f, "cloudevents", "batch.json"),
		nil,
	} {
		f.Add("msg_1", ts, standardwebhooks.Sign("msg_1", fuzzNow, body, fuzzSecretA), hexOf(fuzzSecretA, body), body)
		f.Add("msg_1", ts, standardwebhooks.Sign("msg_1", fuzzNow, body, fuzzSecretB), hexOf(fuzzSecretB, body), body)
		f.Add("msg_1", ts, standardwebhooks.Sign("msg_1", fuzzNow, body, []byte("other"), fuzzSecretB), hexOf([]byte("other"), body), body)
		f.Add("msg_1", ts, standardwebhooks.Sign("msg_1", fuzzNow, body, []byte("other")), "", body)
	}
	body := []byte(`{"detail":{"data":{"user_name":"a@b.c","user_id":"u1"}}}`)
	good := standardwebhooks.Sign("msg_2", fuzzNow, body, fuzzSecretA)
	for _, s := range []struct{ id, ts, sig, hexSig string }{
		{"", "", "", ""},
		{"msg_2", "", good, ""},
		{"", ts, good, ""},
		{"msg_2", ts, "", ""},
		{"msg_2", "abc", good, "sha256=zz"},
		{"msg_2", "+" + ts, standardwebhooks.Sign("msg_2", fuzzNow, body, fuzzSecretA), "sha256="},
		{"msg_2", "9223372036854775807", good, "sha256=0"},
		{"msg_2", "-9223372036854775808", good, "SHA256=" + hex.EncodeToString(bodyMAC(fuzzSecretA, body))},
		{"msg_2", "99999999999999999999", good, "  " + strings.ToUpper(hexOf(fuzzSecretA, body)[7:]) + "  "},
		{"msg_2", tsAt(SignatureTolerance), standardwebhooks.Sign("msg_2", fuzzNow.Add(SignatureTolerance), body, fuzzSecretA),
			" sha256=" + strings.ToUpper(hex.EncodeToString(bodyMAC(fuzzSecretA, body))) + "\t"},
		{"msg_2", tsAt(-SignatureTolerance), standardwebhooks.Sign("msg_2", fuzzNow.Add(-SignatureTolerance), body, fuzzSecretA), ""},
		{"msg_2", tsAt(SignatureTolerance + time.Second), standardwebhooks.Sign("msg_2", fuzzNow.Add(SignatureTolerance+time.Second), body, fuzzSecretA), ""},
		{"msg_2", tsAt(-SignatureTolerance - time.Second), standardwebhooks.Sign("msg_2", fuzzNow.Add(-SignatureTolerance-time.Second), body, fuzzSecretA), ""},
		{"msg_2", ts, "v2," + good[3:] + " v1,AAAA " + good, ""},
		{"msg_2", ts, "v1," + good[3:len(good)-2] + "B=", ""},
		{"msg_2", ts, strings.TrimSuffix(good, "="), ""},
		{"msg_2", ts, "v1," + base64.RawURLEncoding.EncodeToString(standardMAC(fuzzSecretA, "msg_2", ts, body)), ""},
		{"msg_2", ts, "v1,\xff\xfe", "sha256=\xff"},
		{"msg_2", ts, string(fuzzSecretA), string(fuzzSecretB)},
	} {
		f.Add(s.id, s.ts, s.sig, s.hexSig, body)
	}
	v := &WebhookVerifier{Secrets: fuzzSecrets, Now: func() time.Time { return fuzzNow }}
	f.Fuzz(func(t *testing.T, id, timestamp, signature, hexSig string, body []byte) {
		// What an error must never say: a secret in any spelling, or a signature the verifier expected.
		secretTexts := []string{}
		for _, secret := range fuzzSecrets {
			secretTexts = append(secretTexts, string(secret), base64.StdEncoding.EncodeToString(secret),
				base64.RawStdEncoding.EncodeToString(secret), hex.EncodeToString(secret),
				base64.StdEncoding.EncodeToString(standardMAC(secret, id, timestamp, body)),
				hex.EncodeToString(bodyMAC(secret, body)))
		}
		check := func(scheme SignatureScheme, want SignatureScheme, err error, present, valid bool) {
			t.Helper()
			switch {
			case err == nil:
				if !valid {
					t.Fatalf("%s: accepted a signature that is not valid", want)
				}
				if scheme != want {
					t.Fatalf("accepted as %q, sent as %q", scheme, want)
				}
				return
			case errors.Is(err, ErrNoSignature):
				if present {
					t.Fatalf("%s: ErrNoSignature although the signature headers were sent", want)
				}
			case errors.Is(err, userhook.ErrUnauthorized):
				if valid {
					t.Fatalf("%s: refused a valid signature: %v", want, err)
				}
				if !present {
					t.Fatalf("%s: no signature headers sent, want ErrNoSignature, got %v", want, err)
				}
			default:
				t.Fatalf("%s: error matches neither ErrUnauthorized nor ErrNoSignature: %T %v", want, err, err)
			}
			for _, s := range secretTexts {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("%s: error text %q contains a secret or an expected signature", want, err)
				}
			}
		}
		standardValid := standardSignatureValid(id, timestamp, signature, body)
		for _, scheme := range []struct {
			prefix string
			want   SignatureScheme
		}{{"webhook-", SchemeStandard}, {"svix-", SchemeSvix}} {
			h := http.Header{}
			h.Set(scheme.prefix+"id", id)
			h.Set(scheme.prefix+"timestamp", timestamp)
			h.Set(scheme.prefix+"signature", signature)
			got, err := v.Verify(h, body)
			check(got, scheme.want, err, id != "" || signature != "", standardValid)
		}
		h := http.Header{}
		h.Set("X-Webhook-Signature", hexSig)
		got, err := v.Verify(h, body)
		check(got, SchemeHexHMAC, err, hexSig != "", hexSignatureValid(hexSig, body))
	})
}

// postUsersFaultFields are the field names a POST /users fault may carry.
var postUsersFaultFields = map[string]bool{"detail": true, "detail.data": true, "email": true, "user_id": true}

// FuzzDecodePostUsers fuzzes the body of POST /users.
func FuzzDecodePostUsers(f *testing.F) {
	for _, name := range []string{"email-change.json", "post-login.json", "post-registration.json"} {
		body := readSeed(f, "auth0", name)
		f.Add(body)
		f.Add(body[:len(body)/2])
		f.Add(append(append([]byte(nil), body...), body...)) // two values
	}
	for _, s := range []string{
		``, ` `, `null`, `{}`, `[]`, `"x"`, `1e400`, `[{"detail":{}}]`,
		`{"detail":null}`, `{"detail":[]}`, `{"detail":{"data":"x"}}`, `{"detail":{"data":{}}}`,
		`{"detail":{"data":{"user_name":1,"user_id":2}}}`,
		`{"detail":{"data":{"user_name":null,"user_id":null}}}`,
		`{"detail":{"data":{"user_name":"a@b.c","user_id":123456789012345678901234567890}}}`,
		`{"detail":{"data":{"user_name":"Ada <a@b.c>","user_id":"u1"}}}`,
		`{"detail":{"data":{"user_name":"a@b.c","user_id":" u1 "}}}`,
		`{"detail":{"data":{"user_name":"a@b.c","user_id":"u\u0000"}}}`,
		`{"detail":{"data":{"user_name":"a@b.c","user_id":"u1"},"extra":` + strings.Repeat(`[`, 5000) + strings.Repeat(`]`, 5000) + `}}`,
		`{"DETAIL":{"DATA":{"USER_NAME":"a@b.c","USER_ID":"u1"}}}`,
		"{\"detail\":{\"data\":{\"user_name\":\"a\xff@b.c\",\"user_id\":\"u\xfe\"}}}",
		`{"detail":{"data":{"user_name":"a@b.c","user_id":"u\ud800","x":"\udc00"}}}`,
		fmt.Sprintf(`{"detail":{"data":{"user_name":"%s@b.c","user_id":"%s"}}}`, strings.Repeat("a", 250), strings.Repeat("u", 256)),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := DecodePostUsers(body)
		if err != nil {
			if !errors.Is(err, userhook.ErrInvalid) {
				t.Fatalf("a refusal must match userhook.ErrInvalid (a 400), got %T: %v", err, err)
			}
			var fe userhook.FieldErrors
			if errors.As(err, &fe) {
				for _, fault := range fe {
					// An unpaired surrogate is reported where it is, as its JSON path, in any field.
					if !postUsersFaultFields[fault.Field] && !strings.Contains(fault.Message, "surrogate") {
						t.Fatalf("fault %+v names no field of the request", fault)
					}
				}
			}
			return
		}
		if e.Attributes.Email == nil {
			t.Fatalf("accepted without an email: %+v", e)
		}
		if msg := aggregate.CheckEmail(*e.Attributes.Email); msg != "" {
			t.Fatalf("accepted email %q: %s", *e.Attributes.Email, msg)
		}
		if msg := aggregate.CheckUserID(e.UserID); msg != "" {
			t.Fatalf("accepted user id %q: %s", e.UserID, msg)
		}
		cmd, ok := e.Command().(aggregate.Ensure)
		if !ok || cmd.StreamID() != e.UserID || cmd.Email != *e.Attributes.Email || !cmd.At.IsZero() || e.Key() != "" {
			t.Fatalf("event %+v has command %#v", e, e.Command())
		}
	})
}
