package clerk_test

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	svix "github.com/svix/svix-webhooks/go"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/ingest"
	"github.com/userhook/userhook/source"
	"github.com/userhook/userhook/source/clerk"
	"github.com/userhook/userhook/standardwebhooks"
)

// The secrets of a rotation: the current one and the next, as Clerk's dashboard shows them.
const (
	secret     = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	nextSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
)

var now = time.Date(2024, 5, 28, 8, 0, 0, 0, time.UTC)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "..", "testdata", "sources", "clerk", name))
	require.NoError(t, err)
	return body
}

// signed is a request as Svix delivers it, signed by the Svix library itself with secret at ts.
func signed(t testing.TB, secret, id string, ts time.Time, body []byte) source.Request {
	t.Helper()
	wh, err := svix.NewWebhook(secret)
	require.NoError(t, err)
	sig, err := wh.Sign(id, ts, body)
	require.NoError(t, err)
	h := http.Header{}
	h.Set("svix-id", id)
	h.Set("svix-timestamp", strconv.FormatInt(ts.Unix(), 10))
	h.Set("svix-signature", sig)
	return source.Request{Method: http.MethodPost, Header: h, Body: body, Now: now}
}

func ptr[T any](v T) *T { return &v }

func TestDecode(t *testing.T) {
	t.Parallel()
	const userID = "user_2gkR5kPz1JbV7mWqXc3LsN8aHtY"
	tests := []struct {
		fixture  string
		kind     ingest.Kind
		userID   string
		email    *string
		verified *bool
		name     *string
		occurred time.Time
	}{
		{"user.created.json", ingest.KindCreated, userID, ptr("ada.lovelace@example.com"), ptr(true), ptr("Ada Lovelace"),
			time.UnixMilli(1716883200412)},
		// the new primary address is not verified yet
		{"user.updated.json", ingest.KindUpdated, userID, ptr("ada@analytical.example"), ptr(false), ptr("Ada King"),
			time.UnixMilli(1716969600233)},
		{"user.updated.banned.json", ingest.KindDeactivated, userID, ptr("ada.lovelace@example.com"), ptr(true),
			ptr("Ada Lovelace"), time.UnixMilli(1717056000871)},
		{"user.deleted.json", ingest.KindDeleted, userID, nil, nil, nil, time.UnixMilli(1717142400150)},
		{"session.created.json", "", "", nil, nil, nil, time.UnixMilli(1717142400300)},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			const msgID = "msg_2gkR6hXz8Tq1Lm4Nc7Vw2YbPs9K"
			r := signed(t, secret, msgID, now, fixture(t, tt.fixture))
			require.NoError(t, clerk.Decoder{}.Authenticate(r, []string{secret}))
			events, err := clerk.Decoder{}.Decode(r)
			require.NoError(t, err)
			require.Len(t, events, 1)
			e := events[0]
			assert.Equal(t, tt.kind, e.Kind)
			assert.Equal(t, tt.userID, e.UserID)
			assert.Equal(t, msgID, e.ID)
			assert.Equal(t, msgID, e.ProviderEventID)
			assert.Empty(t, e.Source, "the caller scopes the key to the source")
			assert.Equal(t, tt.email, e.Attributes.Email)
			assert.Equal(t, tt.verified, e.Attributes.EmailVerified)
			assert.Equal(t, tt.name, e.Attributes.Name)
			assert.True(t, tt.occurred.Equal(e.OccurredAt), "occurred at %s, want %s", e.OccurredAt, tt.occurred)
			assert.Equal(t, "clerk", e.Metadata["provider"])
			assert.Equal(t, strings.TrimSuffix(strings.TrimSuffix(tt.fixture, ".json"), ".banned"), e.Metadata["provider_event_type"])
		})
	}
}

func TestDecodeProfile(t *testing.T) {
	t.Parallel()
	r := signed(t, secret, "msg_1", now, fixture(t, "user.created.json"))
	events, err := clerk.Decoder{}.Decode(r)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{
		"username": "ada", "first_name": "Ada", "last_name": "Lovelace", "external_id": "crm-000451",
		"image_url":       "https://img.clerk.com/eyJ0eXBlIjoiZGVmYXVsdCIsImlpZCI6Imluc18yZ2s",
		"public_metadata": map[string]any{"plan": "team"},
	}, events[0].Attributes.Profile, "private_metadata, unsafe_metadata and the request's client IP stay out")
}

func TestDecodeFallsBackToUpdatedAt(t *testing.T) {
	t.Parallel()
	body := `{"type": "user.updated", "data": {"id": "user_1", "first_name": "Ada", "last_name": null, "updated_at": 1716969600000}}`
	events, err := clerk.Decoder{}.Decode(signed(t, secret, "msg_1", now, []byte(body)))
	require.NoError(t, err)
	assert.True(t, time.UnixMilli(1716969600000).Equal(events[0].OccurredAt))
	assert.Equal(t, ptr("Ada"), events[0].Attributes.Name)
	assert.Nil(t, events[0].Attributes.Email, "no primary address: the email is not said")
}

func TestDecodeInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		body   string
		noID   bool
		fields []string
	}{
		{"not JSON", `user.created`, false, []string{"body"}},
		{"not an object", `[1, 2]`, false, []string{"body"}},
		{"no user id", `{"type": "user.created", "data": {"first_name": "Ada"}}`, false, []string{"data.id"}},
		{"no data", `{"type": "user.deleted"}`, false, []string{"data.id"}},
		{"user id not a string", `{"type": "user.updated", "data": {"id": 42}}`, false, []string{"data.id"}},
		{"data not an object", `{"type": "user.updated", "data": "user_1"}`, false, []string{"data"}},
		{"type not a string", `{"type": ["user.created"]}`, false, []string{"type"}},
		{"no svix-id", `{"type": "user.deleted", "data": {"id": "user_1"}}`, true, []string{"svix-id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := signed(t, secret, "msg_1", now, []byte(tt.body))
			if tt.noID {
				r.Header.Del("svix-id")
			}
			_, err := clerk.Decoder{}.Decode(r)
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
	body := fixture(t, "user.created.json")
	const id = "msg_2gkR6hXz8Tq1Lm4Nc7Vw2YbPs9K"
	tests := []struct {
		name    string
		request func() source.Request
		secrets []string
		reason  string // "" when it authenticates
	}{
		{"current secret", func() source.Request { return signed(t, secret, id, now, body) }, []string{secret, nextSecret}, ""},
		{"next secret", func() source.Request { return signed(t, nextSecret, id, now, body) }, []string{secret, nextSecret}, ""},
		{"one of two signatures", func() source.Request {
			r := signed(t, nextSecret, id, now, body)
			other := signed(t, secret, id, now, body)
			r.Header.Set("svix-signature", other.Header.Get("svix-signature")+" "+r.Header.Get("svix-signature"))
			return r
		}, []string{nextSecret}, ""},
		{"wrong secret", func() source.Request { return signed(t, nextSecret, id, now, body) }, []string{secret}, "signature does not match"},
		{"tampered body", func() source.Request {
			r := signed(t, secret, id, now, body)
			r.Body = []byte(strings.Replace(string(body), "ada.lovelace@example.com", "mallory@example.com", 1))
			return r
		}, []string{secret}, "signature does not match"},
		{"another message id", func() source.Request {
			r := signed(t, secret, id, now, body)
			r.Header.Set("svix-id", "msg_other")
			return r
		}, []string{secret}, "signature does not match"},
		{"at the tolerance", func() source.Request { return signed(t, secret, id, now.Add(-5*time.Minute), body) }, []string{secret}, ""},
		{"stale", func() source.Request { return signed(t, secret, id, now.Add(-5*time.Minute-time.Second), body) }, []string{secret},
			"timestamp outside the 5 minute tolerance"},
		{"future", func() source.Request { return signed(t, secret, id, now.Add(5*time.Minute+time.Second), body) }, []string{secret},
			"timestamp outside the 5 minute tolerance"},
		{"no svix-id", func() source.Request {
			r := signed(t, secret, id, now, body)
			r.Header.Del("svix-id")
			return r
		}, []string{secret}, "missing svix-id header"},
		{"no svix-timestamp", func() source.Request {
			r := signed(t, secret, id, now, body)
			r.Header.Del("svix-timestamp")
			return r
		}, []string{secret}, "missing svix-timestamp header"},
		{"no svix-signature", func() source.Request {
			r := signed(t, secret, id, now, body)
			r.Header.Del("svix-signature")
			return r
		}, []string{secret}, "missing svix-signature header"},
		{"malformed timestamp", func() source.Request {
			r := signed(t, secret, id, now, body)
			r.Header.Set("svix-timestamp", "2024-05-28T08:00:00Z")
			return r
		}, []string{secret}, "malformed svix-timestamp header"},
		{"malformed signature", func() source.Request {
			r := signed(t, secret, id, now, body)
			r.Header.Set("svix-signature", strings.Replace(r.Header.Get("svix-signature"), "v1,", "v1=", 1))
			return r
		}, []string{secret}, "malformed svix-signature header"},
		{"another scheme", func() source.Request {
			r := signed(t, secret, id, now, body)
			r.Header.Set("svix-signature", strings.Replace(r.Header.Get("svix-signature"), "v1,", "v1a,", 1))
			return r
		}, []string{secret}, "malformed svix-signature header"},
		{"no valid secret", func() source.Request { return signed(t, secret, id, now, body) }, []string{"not-a-whsec"},
			"the source has no valid whsec_ secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := tt.request()
			err := clerk.Decoder{}.Authenticate(r, tt.secrets)
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
			if sig := r.Header.Get("svix-signature"); sig != "" {
				assert.NotContains(t, err.Error(), sig)
			}
		})
	}
}

// TestSvixVerifiesStandardWebhooks checks the other direction: a request signed by userhook's own Standard
// Webhooks code verifies with the Svix library, so the two agree on the signed content and its encoding.
func TestSvixVerifiesStandardWebhooks(t *testing.T) {
	t.Parallel()
	body := fixture(t, "user.updated.json")
	key, err := standardwebhooks.ParseSecret(secret)
	require.NoError(t, err)
	ts := time.Now()
	h := http.Header{}
	h.Set("svix-id", "msg_1")
	h.Set("svix-timestamp", strconv.FormatInt(ts.Unix(), 10))
	h.Set("svix-signature", standardwebhooks.Sign("msg_1", ts, body, key))
	wh, err := svix.NewWebhook(secret)
	require.NoError(t, err)
	require.NoError(t, wh.Verify(body, h))
	require.NoError(t, clerk.Decoder{}.Authenticate(source.Request{Header: h, Body: body, Now: ts}, []string{secret}))
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"user.created.json", "user.updated.json", "user.updated.banned.json", "user.deleted.json", "session.created.json"} {
		f.Add("msg_1", fixture(f, name))
	}
	f.Add("", []byte(`{"type": "user.updated", "data": {"id": "user_1", "email_addresses": [{"id": 1}]}}`))
	f.Add("msg_2", []byte(`{"type": "user.created", "timestamp": 1e400, "data": null}`))
	f.Fuzz(func(t *testing.T, id string, body []byte) {
		h := http.Header{}
		h.Set("svix-id", id)
		events, err := clerk.Decoder{}.Decode(source.Request{Method: http.MethodPost, Header: h, Body: body, Now: now})
		if err != nil {
			if !errors.Is(err, userhook.ErrInvalid) {
				t.Fatalf("Decode(%q) = %v, not ErrInvalid", body, err)
			}
			return
		}
		if len(events) != 1 {
			t.Fatalf("Decode(%q) = %d events, want 1", body, len(events))
		}
		if e := events[0]; e.Kind != "" && e.UserID == "" {
			t.Fatalf("Decode(%q) = a %s event without a user id", body, e.Kind)
		}
	})
}
