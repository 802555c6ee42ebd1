package workos_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/ingest"
	"github.com/userhook/userhook/source"
	"github.com/userhook/userhook/source/workos"
)

// The secrets of a rotation, as the WorkOS dashboard shows a webhook endpoint's.
const (
	secret     = "wh_sec_7Hk2mQ9vXc4LpR8tN1bZ6yWs3Fd0Ga5J"
	nextSecret = "wh_sec_Qa4Nx8Rt2Lm6Vb0Zc9Ys3Hk7Pw1Ej5Du"
)

var now = time.Date(2024, 6, 3, 14, 21, 8, 0, time.UTC)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "..", "testdata", "sources", "workos", name))
	require.NoError(t, err)
	return body
}

// signature is the WorkOS-Signature header as WorkOS computes it and its SDKs check it (workos-node's
// SignatureProvider.computeSignature): "t=<ms>, v1=<hex HMAC-SHA256 of "t.body" keyed with the secret>".
func signature(secret string, ts time.Time, body []byte) string {
	t := fmt.Sprint(ts.UnixMilli())
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(t + "." + string(body)))
	return "t=" + t + ", v1=" + hex.EncodeToString(mac.Sum(nil))
}

func signed(secret string, ts time.Time, body []byte) source.Request {
	h := http.Header{}
	h.Set("WorkOS-Signature", signature(secret, ts, body))
	return source.Request{Method: http.MethodPost, Header: h, Body: body, Now: now}
}

func ptr[T any](v T) *T { return &v }

func TestDecode(t *testing.T) {
	t.Parallel()
	const userID = "directory_user_01HZ3K8QW5TB6N2M9XGJ4RDC7V"
	email := ptr("grace.hopper@acme.example")
	tests := []struct {
		fixture  string
		kind     ingest.Kind
		userID   string
		key      string
		email    *string
		name     *string
		occurred string
	}{
		{"dsync.user.created.json", ingest.KindCreated, userID, "event_01HZ3K8R1T9VZ0B6XWQ2E5MNCA", email, ptr("Grace Hopper"),
			"2024-06-03T14:21:07.512Z"},
		{"dsync.user.updated.json", ingest.KindUpdated, userID, "event_01J06PZ4D7M2Q8W3VX5TRK9B1N", email, ptr("Grace Murray Hopper"),
			"2024-06-10T09:02:44.031Z"},
		{"dsync.user.updated.inactive.json", ingest.KindDeactivated, userID, "event_01J1RZ2C6H4K8N0P3S5V7X9ZBD", email,
			ptr("Grace Hopper"), "2024-07-01T16:45:00.250Z"},
		{"dsync.user.updated.reactivated.json", ingest.KindReactivated, userID, "event_01J2XQ4B8D0F2H4K6M8P0R2T4V", email,
			ptr("Grace Hopper"), "2024-07-15T11:30:09.712Z"},
		// a deletion happened when the event was made, not at the user's last update
		{"dsync.user.deleted.json", ingest.KindDeleted, userID, "event_01J2B7Y9M3Q5S7U9W1Y3A5C7E9", nil, nil,
			"2024-07-08T08:00:12.118Z"},
		{"dsync.group.created.json", "", "", "event_01HZ3KA4Q8S0U2W4Y6A8C0E2G4", nil, nil, "2024-06-03T14:22:31.120Z"},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			r := signed(secret, now, fixture(t, tt.fixture))
			require.NoError(t, workos.Decoder{}.Authenticate(r, []string{secret}))
			events, err := workos.Decoder{}.Decode(r)
			require.NoError(t, err)
			require.Len(t, events, 1)
			e := events[0]
			assert.Equal(t, tt.kind, e.Kind)
			assert.Equal(t, tt.userID, e.UserID)
			assert.Equal(t, tt.key, e.ID)
			assert.Equal(t, tt.key, e.ProviderEventID)
			assert.Empty(t, e.Source, "the caller scopes the key to the source")
			assert.Equal(t, tt.email, e.Attributes.Email)
			assert.Nil(t, e.Attributes.EmailVerified, "WorkOS says nothing of verification")
			assert.Equal(t, tt.name, e.Attributes.Name)
			occurred, err := time.Parse(time.RFC3339, tt.occurred)
			require.NoError(t, err)
			assert.True(t, occurred.Equal(e.OccurredAt), "occurred at %s, want %s", e.OccurredAt, occurred)
			assert.Equal(t, "workos", e.Metadata["provider"])
			event := strings.Join(strings.SplitN(tt.fixture, ".", 4)[:3], ".")
			assert.Equal(t, event, e.Metadata["provider_event_type"])
		})
	}
}

func TestDecodeProfile(t *testing.T) {
	t.Parallel()
	events, err := workos.Decoder{}.Decode(signed(secret, now, fixture(t, "dsync.user.created.json")))
	require.NoError(t, err)
	assert.Equal(t, map[string]any{
		"directory_id": "directory_01HZ3JZ0R8PQ4XKC2T6NWB5M1E", "organization_id": "org_01HZ3JW7F2VN8C5QK1R9TXBD4G",
		"idp_id": "00u1a2b3c4D5e6F7g8h9", "first_name": "Grace", "last_name": "Hopper",
		"custom_attributes": map[string]any{"department": "Engineering", "employee_id": "E-1906", "manager_email": "ada.lovelace@acme.example"},
	}, events[0].Attributes.Profile, "raw_attributes and previous_attributes stay out")
}

func TestDecodeOlderShapes(t *testing.T) {
	t.Parallel()
	// before WorkOS added email, the primary of emails was the address; suspended is what inactive was
	body := `{"id": "event_1", "event": "dsync.user.updated", "created_at": "2023-01-02T03:04:05Z", "data": {
		"id": "directory_user_1", "state": "suspended", "first_name": "Grace", "last_name": null,
		"emails": [{"primary": false, "value": "old@acme.example"}, {"primary": true, "type": "work", "value": "grace@acme.example"}]}}`
	events, err := workos.Decoder{}.Decode(signed(secret, now, []byte(body)))
	require.NoError(t, err)
	e := events[0]
	assert.Equal(t, ingest.KindDeactivated, e.Kind)
	assert.Equal(t, ptr("grace@acme.example"), e.Attributes.Email)
	assert.Equal(t, ptr("Grace"), e.Attributes.Name)
	assert.True(t, time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC).Equal(e.OccurredAt), "no user times: the event's")
}

func TestDecodeInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		body   string
		fields []string
	}{
		{"not JSON", `dsync.user.created`, []string{"body"}},
		{"not an object", `"dsync.user.created"`, []string{"body"}},
		{"no user id", `{"id": "event_1", "event": "dsync.user.created", "data": {"email": "a@example.com"}}`, []string{"data.id"}},
		{"no data", `{"id": "event_1", "event": "dsync.user.deleted"}`, []string{"data.id"}},
		{"no event id", `{"event": "dsync.user.deleted", "data": {"id": "directory_user_1"}}`, []string{"id"}},
		{"user id not a string", `{"id": "event_1", "event": "dsync.user.updated", "data": {"id": 7}}`, []string{"data.id"}},
		{"email not a string", `{"id": "event_1", "event": "dsync.user.updated", "data": {"id": "u", "email": true}}`, []string{"data.email"}},
		{"bad time", `{"id": "event_1", "event": "dsync.user.updated", "data": {"id": "u", "updated_at": "yesterday"}}`,
			[]string{"data.updated_at"}},
		{"event not a string", `{"id": "event_1", "event": 1}`, []string{"event"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := workos.Decoder{}.Decode(signed(secret, now, []byte(tt.body)))
			require.ErrorIs(t, err, userhook.ErrInvalid)
			var fe userhook.FieldErrors
			require.ErrorAs(t, err, &fe)
			fields := make([]string, len(fe))
			for i, f := range fe {
				fields[i] = f.Field
			}
			assert.Equal(t, tt.fields, fields)
		})
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	body := fixture(t, "dsync.user.created.json")
	header := func(value string) func() source.Request {
		return func() source.Request {
			r := signed(secret, now, body)
			r.Header.Set("WorkOS-Signature", value)
			return r
		}
	}
	good := signature(secret, now, body)
	tests := []struct {
		name    string
		request func() source.Request
		secrets []string
		reason  string // "" when it authenticates
	}{
		{"current secret", func() source.Request { return signed(secret, now, body) }, []string{secret, nextSecret}, ""},
		{"next secret", func() source.Request { return signed(nextSecret, now, body) }, []string{secret, nextSecret}, ""},
		{"without the space", header(strings.Replace(good, ", ", ",", 1)), []string{secret}, ""},
		{"wrong secret", func() source.Request { return signed(nextSecret, now, body) }, []string{secret}, "signature does not match"},
		{"tampered body", func() source.Request {
			r := signed(secret, now, body)
			r.Body = []byte(strings.Replace(string(body), `"state": "active"`, `"state": "inactive"`, 1))
			return r
		}, []string{secret}, "signature does not match"},
		{"timestamp moved", header(strings.Replace(good, fmt.Sprint(now.UnixMilli()), fmt.Sprint(now.UnixMilli()+1), 1)),
			[]string{secret}, "signature does not match"},
		{"at the tolerance", func() source.Request { return signed(secret, now.Add(-180*time.Second), body) }, []string{secret}, ""},
		{"stale", func() source.Request { return signed(secret, now.Add(-181*time.Second), body) }, []string{secret},
			"timestamp outside the 3 minute tolerance"},
		{"future", func() source.Request { return signed(secret, now.Add(181*time.Second), body) }, []string{secret},
			"timestamp outside the 3 minute tolerance"},
		{"seconds, not milliseconds", header(strings.Replace(good, fmt.Sprint(now.UnixMilli()), fmt.Sprint(now.Unix()), 1)),
			[]string{secret}, "timestamp outside the 3 minute tolerance"},
		{"no header", func() source.Request {
			r := signed(secret, now, body)
			r.Header.Del("WorkOS-Signature")
			return r
		}, []string{secret}, "missing WorkOS-Signature header"},
		{"no timestamp", header(good[strings.Index(good, "v1="):]), []string{secret}, "malformed WorkOS-Signature header"},
		{"no signature", header(good[:strings.Index(good, ",")]), []string{secret}, "malformed WorkOS-Signature header"},
		{"signature not hex", header(strings.Replace(good, "v1=", "v1=zz", 1)), []string{secret}, "malformed WorkOS-Signature header"},
		{"timestamp not a number", header(strings.Replace(good, "t=", "t=x", 1)), []string{secret}, "malformed WorkOS-Signature header"},
		{"no pairs", header("garbage"), []string{secret}, "malformed WorkOS-Signature header"},
		{"no secret", func() source.Request { return signed(secret, now, body) }, nil, "signature does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := tt.request()
			err := workos.Decoder{}.Authenticate(r, tt.secrets)
			if tt.reason == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, userhook.ErrUnauthorized)
			var ue *userhook.Error
			require.ErrorAs(t, err, &ue)
			assert.Equal(t, tt.reason, ue.Message)
			for _, s := range tt.secrets {
				assert.NotContains(t, err.Error(), s)
			}
			if sig := r.Header.Get("WorkOS-Signature"); sig != "" {
				assert.NotContains(t, err.Error(), sig)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"dsync.user.created.json", "dsync.user.updated.json", "dsync.user.updated.inactive.json",
		"dsync.user.updated.reactivated.json", "dsync.user.deleted.json", "dsync.group.created.json"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`{"id": "e", "event": "dsync.user.updated", "data": {"id": "u", "previous_attributes": [1], "custom_attributes": 3}}`))
	f.Add([]byte(`{"id": "e", "event": "dsync.user.created", "data": {"id": "u", "created_at": "2024-13-01T00:00:00Z"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := workos.Decoder{}.Decode(source.Request{Method: http.MethodPost, Header: http.Header{}, Body: body, Now: now})
		if err != nil {
			if !errors.Is(err, userhook.ErrInvalid) {
				t.Fatalf("Decode(%q) = %v, not ErrInvalid", body, err)
			}
			return
		}
		if len(events) != 1 {
			t.Fatalf("Decode(%q) = %d events, want 1", body, len(events))
		}
		if e := events[0]; e.Kind != "" && (e.UserID == "" || e.ID == "") {
			t.Fatalf("Decode(%q) = a %s event without a user id or key", body, e.Kind)
		}
	})
}
