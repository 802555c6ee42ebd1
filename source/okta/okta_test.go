package okta_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/ingest"
	"github.com/userhook/userhook/source"
	"github.com/userhook/userhook/source/okta"
)

const (
	secretA = "okta-hook-secret-A-5b0d8e2f71c94a36"
	secretB = "okta-hook-secret-B-e93a17c2d4f8b605"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "sources", "okta", name))
	require.NoError(t, err)
	return b
}

func request(body []byte) source.Request {
	return source.Request{Method: http.MethodPost, Header: http.Header{}, Body: body, Now: time.Now()}
}

func TestDecodeFixtures(t *testing.T) {
	t.Parallel()
	const jane, janeEmail = "00u8kq4x7nJane5Yd697", "jane.doe@acme.example"
	const bob, bobEmail = "00u9rt6m2sBob3Wq8697", "bob.smith@acme.example"
	type want struct {
		kind  ingest.Kind
		user  string
		email string
		key   string
	}
	tests := []struct {
		file string
		want []want
	}{
		{"user.lifecycle.create.json", []want{{ingest.KindCreated, jane, janeEmail, "2f6c1e0a-11d9-11ef-9b2a-4f7c3e1d0a01"}}},
		{"user.lifecycle.activate.json", []want{{ingest.KindReactivated, jane, janeEmail, "2f6c1e0a-11d9-11ef-9b2a-4f7c3e1d0a02"}}},
		{"user.lifecycle.deactivate.json", []want{{ingest.KindDeactivated, jane, janeEmail, "2f6c1e0a-11d9-11ef-9b2a-4f7c3e1d0a03"}}},
		{"user.lifecycle.suspend.json", []want{{ingest.KindDeactivated, jane, janeEmail, "2f6c1e0a-11d9-11ef-9b2a-4f7c3e1d0a04"}}},
		{"user.lifecycle.unsuspend.json", []want{{ingest.KindReactivated, jane, janeEmail, "2f6c1e0a-11d9-11ef-9b2a-4f7c3e1d0a05"}}},
		{"user.lifecycle.reactivate.json", []want{{ingest.KindReactivated, jane, janeEmail, "2f6c1e0a-11d9-11ef-9b2a-4f7c3e1d0a06"}}},
		{"user.lifecycle.delete.initiated.json", []want{{ingest.KindDeleted, jane, janeEmail, "2f6c1e0a-11d9-11ef-9b2a-4f7c3e1d0a07"}}},
		{"user.account.update_profile.json", []want{{ingest.KindUpdated, jane, janeEmail, "2f6c1e0a-11d9-11ef-9b2a-4f7c3e1d0a08"}}},
		{"user.session.start.json", []want{{"", "", "", "2f6c1e0a-11d9-11ef-9b2a-4f7c3e1d0a20"}}},
		{"batch.json", []want{
			{ingest.KindCreated, bob, bobEmail, "7c1d4b92-11da-11ef-a1b3-8d2e6f0c7b01"},
			{ingest.KindReactivated, bob, bobEmail, "7c1d4b92-11da-11ef-a1b3-8d2e6f0c7b02"},
			{"", "", "", "7c1d4b92-11da-11ef-a1b3-8d2e6f0c7b03"},
			{ingest.KindUpdated, bob, bobEmail, "7c1d4b92-11da-11ef-a1b3-8d2e6f0c7b04"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			events, err := okta.Decoder{}.Decode(request(fixture(t, tc.file)))
			require.NoError(t, err)
			require.Len(t, events, len(tc.want))
			for i, w := range tc.want {
				e := events[i]
				assert.Equal(t, w.kind, e.Kind, "[%d] kind", i)
				assert.Equal(t, w.user, e.UserID, "[%d] user id", i)
				assert.Equal(t, w.key, e.ID, "[%d] id", i)
				assert.Equal(t, w.key, e.ProviderEventID, "[%d] provider event id", i)
				assert.Empty(t, e.Source, "[%d] the caller scopes keys to the source", i)
				assert.Equal(t, "okta", e.Metadata["provider"], "[%d]", i)
				assert.NotEmpty(t, e.Metadata["provider_event_type"], "[%d]", i)
				if w.kind == "" {
					continue
				}
				assert.False(t, e.OccurredAt.IsZero(), "[%d] occurred at is published", i)
				require.NotNil(t, e.Attributes.Email, "[%d] email", i)
				assert.Equal(t, w.email, *e.Attributes.Email, "[%d] email", i)
				assert.Nil(t, e.Attributes.EmailVerified, "[%d] Okta does not say", i)
				require.NotNil(t, e.Attributes.Name, "[%d] name", i)
				assert.Equal(t, w.email, e.Attributes.Profile["login"], "[%d] login", i)
			}
		})
	}
}

func TestDecodeDetails(t *testing.T) {
	t.Parallel()
	events, err := okta.Decoder{}.Decode(request(fixture(t, "user.lifecycle.create.json")))
	require.NoError(t, err)
	require.Len(t, events, 1)
	e := events[0]
	assert.Equal(t, time.Date(2024, 5, 14, 9, 12, 33, 418_000_000, time.UTC), e.OccurredAt)
	require.NotNil(t, e.Attributes.Name)
	assert.Equal(t, "Jane Doe", *e.Attributes.Name)
	assert.Equal(t, map[string]string{
		"provider": "okta", "provider_event_type": "user.lifecycle.create",
		"provider_delivery_id": "b1f3e2a0-11d9-11ef-8c6e-0a58a9feac01",
	}, e.Metadata)
}

func TestDecodeEdges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, events []ingest.Event)
	}{
		{"LoginIsNotAnEmail", `{"data":{"events":[{"uuid":"u1","eventType":"user.lifecycle.create","target":[{"id":"00u1","type":"User","alternateId":"jdoe","displayName":"J Doe"}]}]}}`,
			func(t *testing.T, events []ingest.Event) {
				assert.Nil(t, events[0].Attributes.Email)
				assert.Equal(t, map[string]any{"login": "jdoe"}, events[0].Attributes.Profile)
			}},
		{"NoNameNoLogin", `{"data":{"events":[{"uuid":"u1","eventType":"user.lifecycle.deactivate","target":[{"id":"00u1","type":"User"}]}]}}`,
			func(t *testing.T, events []ingest.Event) {
				assert.Equal(t, ingest.KindDeactivated, events[0].Kind)
				assert.Equal(t, aggregate.Attributes{}, events[0].Attributes, "nothing sent, nothing set")
				assert.True(t, events[0].OccurredAt.IsZero())
			}},
		{"UserTargetAfterOthers", `{"data":{"events":[{"uuid":"u1","eventType":"user.lifecycle.create","target":[{"id":"0oa1","type":"AppInstance"},{"id":"00u1","type":"User"}]}]}}`,
			func(t *testing.T, events []ingest.Event) { assert.Equal(t, "00u1", events[0].UserID) }},
		{"FailedOutcomeIsIgnored", `{"data":{"events":[{"uuid":"u1","eventType":"user.lifecycle.create","outcome":{"result":"FAILURE"}}]}}`,
			func(t *testing.T, events []ingest.Event) { assert.Empty(t, events[0].Kind) }},
		{"UnknownTypeReadsNothingElse", `{"data":{"events":[{"uuid":"u1","eventType":"policy.lifecycle.update","published":7,"target":"x"}]}}`,
			func(t *testing.T, events []ingest.Event) { assert.Empty(t, events[0].Kind) }},
		{"NoEvents", `{"data":{"events":[]}}`,
			func(t *testing.T, events []ingest.Event) { assert.Empty(t, events) }},
		{"LongTypeIsCut", `{"data":{"events":[{"uuid":"u1","eventType":"` + strings.Repeat("a", 63) + `é"}]}}`,
			func(t *testing.T, events []ingest.Event) {
				v := events[0].Metadata["provider_event_type"]
				assert.Equal(t, strings.Repeat("a", 63), v, "cut to 64 bytes, not inside a character")
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			events, err := okta.Decoder{}.Decode(request([]byte(tc.body)))
			require.NoError(t, err)
			tc.check(t, events)
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, field string
	}{
		{"NotJSON", `data=1`, "body"},
		{"Array", `[]`, "body"},
		{"NoData", `{"eventType":"com.okta.event_hook"}`, "data.events"},
		{"EventsNotArray", `{"data":{"events":{}}}`, "data.events"},
		{"EventNotObject", `{"data":{"events":[1]}}`, "data.events[0]"},
		{"NoUUID", `{"data":{"events":[{"eventType":"user.session.start"}]}}`, "data.events[0].uuid"},
		{"NoUserTarget", `{"data":{"events":[{"uuid":"u1","eventType":"user.lifecycle.create","target":[{"id":"0oa1","type":"AppInstance"}]}]}}`, "data.events[0].target"},
		{"NoTarget", `{"data":{"events":[{"uuid":"u0","eventType":"user.session.start"},{"uuid":"u1","eventType":"user.lifecycle.suspend"}]}}`, "data.events[1].target"},
		{"EmptyUserID", `{"data":{"events":[{"uuid":"u1","eventType":"user.lifecycle.create","target":[{"type":"User"}]}]}}`, "data.events[0].target[0].id"},
		{"BadPublished", `{"data":{"events":[{"uuid":"u1","eventType":"user.lifecycle.create","published":"yesterday","target":[{"id":"00u1","type":"User"}]}]}}`, "data.events[0].published"},
		{"TargetWrongType", `{"data":{"events":[{"uuid":"u1","eventType":"user.lifecycle.create","target":{"id":"00u1"}}]}}`, "data.events[0].target"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			events, err := okta.Decoder{}.Decode(request([]byte(tc.body)))
			require.Error(t, err)
			assert.Nil(t, events)
			assert.ErrorIs(t, err, userhook.ErrInvalid)
			var fe userhook.FieldErrors
			require.ErrorAs(t, err, &fe)
			require.NotEmpty(t, fe)
			assert.Equal(t, tc.field, fe[0].Field, "%v", fe)
		})
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	secrets := []string{secretA, secretB}
	tests := []struct {
		name    string
		header  string
		secrets []string
		reason  string
	}{
		{"First", secretA, secrets, ""},
		{"Second", secretB, secrets, ""},
		{"Wrong", "okta-hook-secret-C", secrets, "Authorization does not match"},
		{"Prefix", secretA[:10], secrets, "Authorization does not match"},
		{"Longer", secretA + "x", secrets, "Authorization does not match"},
		{"Missing", "", secrets, "missing Authorization"},
		{"NoSecrets", secretA, nil, "Authorization does not match"},
		{"EmptySecretNeverMatches", "x", []string{""}, "Authorization does not match"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := request(fixture(t, "user.lifecycle.create.json"))
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			err := okta.Decoder{}.Authenticate(r, tc.secrets)
			if tc.reason == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, userhook.ErrUnauthorized)
			var ue *userhook.Error
			require.ErrorAs(t, err, &ue)
			assert.Equal(t, tc.reason, ue.Message)
			for _, s := range secrets {
				assert.NotContains(t, err.Error(), s, "an error never shows a secret")
			}
		})
	}
}

func TestChallenge(t *testing.T) {
	t.Parallel()
	var d source.Decoder = okta.Decoder{}
	ch, ok := d.(source.Challenger)
	require.True(t, ok, "Okta verifies its endpoint with a GET")

	r := source.Request{Method: http.MethodGet, Header: http.Header{}, Now: time.Now()}
	r.Header.Set("Authorization", secretA)
	r.Header.Set("X-Okta-Verification-Challenge", "sZ3hT8wq0mC1bQpX7vK2yR5nL9dF4gJ6")
	require.NoError(t, d.Authenticate(r, []string{secretA}), "the verification GET carries the Authorization header too")
	answer, err := ch.Challenge(r)
	require.NoError(t, err)
	b, err := json.Marshal(answer)
	require.NoError(t, err)
	assert.JSONEq(t, `{"verification": "sZ3hT8wq0mC1bQpX7vK2yR5nL9dF4gJ6"}`, string(b))

	r.Header.Del("X-Okta-Verification-Challenge")
	answer, err = ch.Challenge(r)
	assert.Nil(t, answer)
	assert.ErrorIs(t, err, userhook.ErrInvalid)
}

// FuzzDecode holds Decode to its promises: it never panics, it refuses only with ErrInvalid, and every user
// event it accepts has a key, a user id and an email the aggregate accepts.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"user.lifecycle.create.json", "user.lifecycle.deactivate.json", "user.session.start.json", "batch.json"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`{"data":{"events":[{"uuid":"u","eventType":"user.lifecycle.create","target":[{"id":"00u1","type":"User","alternateId":"a@b"}]}]}}`))
	f.Add([]byte(`{"data":{"events":null}}`))
	f.Add([]byte(`[{"uuid":1}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := okta.Decoder{}.Decode(request(body))
		if err != nil {
			if !errors.Is(err, userhook.ErrInvalid) {
				t.Fatalf("a refusal must match ErrInvalid, got %T: %v", err, err)
			}
			if events != nil {
				t.Fatalf("events returned with an error")
			}
			return
		}
		for i, e := range events {
			if e.ID == "" || e.ProviderEventID != e.ID {
				t.Fatalf("[%d] no key: %+v", i, e)
			}
			for k, v := range e.Metadata {
				if len(v) > 64 {
					t.Fatalf("[%d] metadata %s is %d bytes", i, k, len(v))
				}
			}
			if e.Kind == "" {
				continue
			}
			if msg := aggregate.CheckUserID(e.UserID); msg != "" {
				t.Fatalf("[%d] accepted user id %q: %s", i, e.UserID, msg)
			}
			if e.Attributes.Email != nil {
				if msg := aggregate.CheckEmail(*e.Attributes.Email); msg != "" {
					t.Fatalf("[%d] accepted email %q: %s", i, *e.Attributes.Email, msg)
				}
			}
		}
	})
}
