package zitadel_test

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
	"github.com/userhook/userhook/source/zitadel"
)

// The signing keys of a rotation, as Zitadel returns a target's signingKey.
const (
	secret     = "Xk7pQ2vR9tL4mN8bZ1cW6yH3sF0dG5aJ"
	nextSecret = "b3Vn8Tq1Lr6Yx2Pz9Kc4Wm7Hs0Dj5Fa"
)

var now = time.Date(2025, 9, 5, 8, 55, 37, 0, time.UTC)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "..", "testdata", "sources", "zitadel", name))
	require.NoError(t, err)
	return body
}

// signature is the ZITADEL-Signature header as Zitadel computes it (pkg/actions ComputeSignatureHeader):
// "t=<unix s>" and a "v1=<hex HMAC-SHA256 of "t.body">" per signing key, joined by commas.
func signature(ts time.Time, body []byte, keys ...string) string {
	parts := []string{fmt.Sprintf("t=%d", ts.Unix())}
	for _, k := range keys {
		mac := hmac.New(sha256.New, []byte(k))
		mac.Write([]byte(fmt.Sprintf("%d.", ts.Unix())))
		mac.Write(body)
		parts = append(parts, "v1="+hex.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(parts, ",")
}

func signed(ts time.Time, body []byte, keys ...string) source.Request {
	h := http.Header{}
	h.Set("ZITADEL-Signature", signature(ts, body, keys...))
	return source.Request{Method: http.MethodPost, Header: h, Body: body, Now: now}
}

func ptr[T any](v T) *T { return &v }

func TestDecode(t *testing.T) {
	t.Parallel()
	const (
		instance = "336392597046034435"
		userID   = "336494809936035843"
	)
	key := func(seq int) string { return fmt.Sprintf("%s:%s:%d", instance, userID, seq) }
	tests := []struct {
		fixture  string
		kind     ingest.Kind
		userID   string
		key      string
		email    *string
		name     *string
		occurred string
	}{
		{"user.human.added.json", ingest.KindCreated, userID, key(1), ptr("katherine.johnson@acme.example"), ptr("Katherine Johnson"),
			"2025-09-05T08:55:36.156333Z"},
		{"user.human.selfregistered.json", ingest.KindCreated, "336495188391364611", instance + ":336495188391364611:1",
			ptr("dorothy@vaughan.example"), ptr("Dorothy Vaughan"), "2025-09-05T09:12:03.402117Z"},
		{"user.human.profile.changed.json", ingest.KindUpdated, userID, key(5), nil, ptr("Katherine G. Johnson"),
			"2025-09-08T13:40:12.991204Z"},
		{"user.human.email.changed.json", ingest.KindUpdated, userID, key(6), ptr("kjohnson@nasa.example"), nil,
			"2025-09-08T13:41:55.018733Z"},
		{"user.deactivated.json", ingest.KindDeactivated, userID, key(7), nil, nil, "2025-09-10T07:00:00.12Z"},
		{"user.reactivated.json", ingest.KindReactivated, userID, key(8), nil, nil, "2025-09-11T07:00:00.33Z"},
		{"user.locked.json", ingest.KindDeactivated, userID, key(10), nil, nil, "2025-09-12T18:22:41.774501Z"},
		{"user.unlocked.json", ingest.KindReactivated, userID, key(11), nil, nil, "2025-09-13T08:03:09.250019Z"},
		{"user.removed.json", ingest.KindDeleted, userID, key(12), nil, nil, "2025-09-20T10:15:30.601882Z"},
		{"user.human.password.changed.json", "", "", key(9), nil, nil, "2025-09-12T18:20:00.004411Z"},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			r := signed(now, fixture(t, tt.fixture), secret)
			require.NoError(t, zitadel.Decoder{}.Authenticate(r, []string{secret}))
			events, err := zitadel.Decoder{}.Decode(r)
			require.NoError(t, err)
			require.Len(t, events, 1)
			e := events[0]
			assert.Equal(t, tt.kind, e.Kind)
			assert.Equal(t, tt.userID, e.UserID)
			assert.Equal(t, tt.key, e.ID)
			assert.Equal(t, tt.key, e.ProviderEventID)
			assert.Empty(t, e.Source, "the caller scopes the key to the source")
			assert.Equal(t, tt.email, e.Attributes.Email)
			assert.Nil(t, e.Attributes.EmailVerified, "Zitadel verifies in an event of its own")
			assert.Equal(t, tt.name, e.Attributes.Name)
			occurred, err := time.Parse(time.RFC3339Nano, tt.occurred)
			require.NoError(t, err)
			assert.True(t, occurred.Equal(e.OccurredAt), "occurred at %s, want %s", e.OccurredAt, occurred)
			assert.Equal(t, "zitadel", e.Metadata["provider"])
			assert.Equal(t, strings.TrimSuffix(tt.fixture, ".json"), e.Metadata["provider_event_type"])
			if e.Kind != ingest.KindCreated {
				assert.Nil(t, e.Attributes.Profile, "a change is not the whole profile")
			}
		})
	}
}

func TestDecodeProfile(t *testing.T) {
	t.Parallel()
	events, err := zitadel.Decoder{}.Decode(signed(now, fixture(t, "user.human.added.json"), secret))
	require.NoError(t, err)
	assert.Equal(t, map[string]any{
		"userName": "katherine.johnson@acme.example", "firstName": "Katherine", "lastName": "Johnson",
		"displayName": "Katherine Johnson", "nickName": "Kathy", "preferredLanguage": "en", "gender": float64(1),
	}, events[0].Attributes.Profile, "the password hash stays out")
}

// TestDecodePayloadForms reads one event with its payload as base64 (older Zitadel, a Go []byte) and as the
// JSON object itself (newer), and the same event with no payload at all.
func TestDecodePayloadForms(t *testing.T) {
	t.Parallel()
	const object = `{"firstName": "Mary", "lastName": "Jackson", "email": "mary@acme.example"}`
	body := func(payload string) []byte {
		return []byte(`{"aggregateID": "1", "instanceID": "i", "sequence": 1, "event_type": "user.human.added",
			"created_at": "2025-09-05T08:55:36Z"` + payload + `}`)
	}
	for name, payload := range map[string]string{
		"object": `, "event_payload": ` + object,
		"base64": `, "event_payload": "eyJmaXJzdE5hbWUiOiAiTWFyeSIsICJsYXN0TmFtZSI6ICJKYWNrc29uIiwgImVtYWlsIjogIm1hcnlAYWNtZS5leGFtcGxlIn0="`,
	} {
		events, err := zitadel.Decoder{}.Decode(signed(now, body(payload), secret))
		require.NoError(t, err, name)
		assert.Equal(t, ptr("mary@acme.example"), events[0].Attributes.Email, name)
		assert.Equal(t, ptr("Mary Jackson"), events[0].Attributes.Name, name)
	}
	for name, payload := range map[string]string{"absent": ``, "null": `, "event_payload": null`, "empty": `, "event_payload": {}`} {
		events, err := zitadel.Decoder{}.Decode(signed(now, body(payload), secret))
		require.NoError(t, err, name)
		assert.Equal(t, ingest.KindCreated, events[0].Kind, name)
		assert.Zero(t, events[0].Attributes, name)
	}
}

func TestDecodePartialProfileChange(t *testing.T) {
	t.Parallel()
	body := `{"aggregateID": "1", "instanceID": "i", "sequence": "4", "event_type": "user.human.profile.changed",
		"event_payload": {"firstName": "Kate"}}`
	events, err := zitadel.Decoder{}.Decode(signed(now, []byte(body), secret))
	require.NoError(t, err)
	e := events[0]
	assert.Equal(t, ingest.KindUpdated, e.Kind)
	assert.Equal(t, "i:1:4", e.ID, "a sequence sent as a string is read too")
	assert.Nil(t, e.Attributes.Name, "a first name alone does not say the whole name")
	assert.True(t, e.OccurredAt.IsZero())
}

func TestDecodeInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		body   string
		fields []string
	}{
		{"not JSON", `user.human.added`, []string{"body"}},
		{"not an object", `[]`, []string{"body"}},
		{"no user id", `{"instanceID": "i", "sequence": 3, "event_type": "user.removed"}`, []string{"aggregateID"}},
		{"no sequence", `{"aggregateID": "1", "event_type": "user.deactivated"}`, []string{"sequence"}},
		{"sequence not an integer", `{"aggregateID": "1", "sequence": 1.5, "event_type": "user.deactivated"}`, []string{"sequence"}},
		{"sequence zero", `{"aggregateID": "1", "sequence": 0, "event_type": "user.deactivated"}`, []string{"sequence"}},
		{"user id not a string", `{"aggregateID": 1, "sequence": 1, "event_type": "user.removed"}`, []string{"aggregateID"}},
		{"bad time", `{"aggregateID": "1", "sequence": 1, "event_type": "user.locked", "created_at": "now"}`, []string{"created_at"}},
		{"payload not base64", `{"aggregateID": "1", "sequence": 1, "event_type": "user.human.added", "event_payload": "{not"}`,
			[]string{"event_payload"}},
		{"payload an array", `{"aggregateID": "1", "sequence": 1, "event_type": "user.human.added", "event_payload": [1]}`,
			[]string{"event_payload"}},
		{"email not a string", `{"aggregateID": "1", "sequence": 1, "event_type": "user.human.email.changed",
			"event_payload": {"email": ["a@example.com"]}}`, []string{"event_payload.email"}},
		{"created_at not a string", `{"sequence": 1, "event_type": "user.human.added", "created_at": 5}`, []string{"created_at"}},
		{"every fault", `{"sequence": "x", "event_type": "user.removed", "created_at": "now"}`,
			[]string{"aggregateID", "sequence", "created_at"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := zitadel.Decoder{}.Decode(signed(now, []byte(tt.body), secret))
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
	body := fixture(t, "user.human.added.json")
	header := func(value string) func() source.Request {
		return func() source.Request {
			r := signed(now, body, secret)
			r.Header.Set("ZITADEL-Signature", value)
			return r
		}
	}
	good := signature(now, body, secret)
	tests := []struct {
		name    string
		request func() source.Request
		secrets []string
		reason  string // "" when it authenticates
	}{
		{"current key", func() source.Request { return signed(now, body, secret) }, []string{secret, nextSecret}, ""},
		{"next key", func() source.Request { return signed(now, body, nextSecret) }, []string{secret, nextSecret}, ""},
		{"one of Zitadel's two signatures", func() source.Request { return signed(now, body, "old-key", nextSecret) },
			[]string{nextSecret}, ""},
		{"wrong key", func() source.Request { return signed(now, body, nextSecret) }, []string{secret}, "signature does not match"},
		{"tampered body", func() source.Request {
			r := signed(now, body, secret)
			r.Body = []byte(strings.Replace(string(body), `"sequence": 1`, `"sequence": 2`, 1))
			return r
		}, []string{secret}, "signature does not match"},
		{"timestamp moved", header(strings.Replace(good, fmt.Sprint(now.Unix()), fmt.Sprint(now.Unix()-1), 1)), []string{secret},
			"signature does not match"},
		{"at the tolerance", func() source.Request { return signed(now.Add(-300*time.Second), body, secret) }, []string{secret}, ""},
		{"stale", func() source.Request { return signed(now.Add(-301*time.Second), body, secret) }, []string{secret},
			"timestamp outside the 5 minute tolerance"},
		{"future", func() source.Request { return signed(now.Add(301*time.Second), body, secret) }, []string{secret},
			"timestamp outside the 5 minute tolerance"},
		{"no header", func() source.Request {
			r := signed(now, body, secret)
			r.Header.Del("ZITADEL-Signature")
			return r
		}, []string{secret}, "missing ZITADEL-Signature header"},
		{"no timestamp", header(good[strings.Index(good, "v1="):]), []string{secret}, "malformed ZITADEL-Signature header"},
		{"no signature", header(good[:strings.Index(good, ",")]), []string{secret}, "malformed ZITADEL-Signature header"},
		{"signature not hex", header(strings.Replace(good, "v1=", "v1=g", 1)), []string{secret}, "malformed ZITADEL-Signature header"},
		{"timestamp not a number", header(strings.Replace(good, "t=", "t=-x", 1)), []string{secret}, "malformed ZITADEL-Signature header"},
		{"no pairs", header("v1"), []string{secret}, "malformed ZITADEL-Signature header"},
		{"empty key", func() source.Request { return signed(now, body, "") }, []string{""}, "signature does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := tt.request()
			err := zitadel.Decoder{}.Authenticate(r, tt.secrets)
			if tt.reason == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, userhook.ErrUnauthorized)
			var ue *userhook.Error
			require.ErrorAs(t, err, &ue)
			assert.Equal(t, tt.reason, ue.Message)
			for _, s := range tt.secrets {
				if s != "" {
					assert.NotContains(t, err.Error(), s)
				}
			}
			if sig := r.Header.Get("ZITADEL-Signature"); sig != "" {
				assert.NotContains(t, err.Error(), sig)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"user.human.added.json", "user.human.selfregistered.json", "user.human.profile.changed.json",
		"user.human.email.changed.json", "user.deactivated.json", "user.reactivated.json", "user.locked.json",
		"user.unlocked.json", "user.removed.json", "user.human.password.changed.json"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`{"aggregateID": "1", "sequence": "18446744073709551616", "event_type": "user.human.added", "event_payload": "bnVsbA=="}`))
	f.Add([]byte(`{"aggregateID": "1", "sequence": 2, "event_type": "user.human.profile.changed", "event_payload": {"gender": "x", "displayName": " "}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := zitadel.Decoder{}.Decode(source.Request{Method: http.MethodPost, Header: http.Header{}, Body: body, Now: now})
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
