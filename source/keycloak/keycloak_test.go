package keycloak_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
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
	"github.com/userhook/userhook/source/keycloak"
)

const (
	secretA = "keycloak-webhook-secret-A-9e2b7c4d1f6a0358"
	secretB = "keycloak-webhook-secret-B-04c8a3f6e1d79b25"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "sources", "keycloak", name))
	require.NoError(t, err)
	return b
}

func request(body []byte) source.Request {
	return source.Request{Method: http.MethodPost, Header: http.Header{}, Body: body, Now: time.Now()}
}

func sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

func TestDecodeFixtures(t *testing.T) {
	t.Parallel()
	const jane = "8b1e4f2a-6c3d-4e9b-a7f1-2d5c8e0b3a64"
	tests := []struct {
		file  string
		kind  ingest.Kind
		user  string
		email string
		key   string
	}{
		{"access.REGISTER.json", ingest.KindCreated, jane, "jane.doe@acme.example", "6f1d2c3b-4a59-4687-9e0f-1a2b3c4d5e01"},
		{"admin.USER-CREATE.json", ingest.KindCreated, jane, "jane.doe@acme.example", "6f1d2c3b-4a59-4687-9e0f-1a2b3c4d5e02"},
		{"admin.USER-UPDATE.json", ingest.KindUpdated, jane, "jane.smith@acme.example", "6f1d2c3b-4a59-4687-9e0f-1a2b3c4d5e03"},
		{"admin.USER-UPDATE-disabled.json", ingest.KindDeactivated, jane, "jane.doe@acme.example", "6f1d2c3b-4a59-4687-9e0f-1a2b3c4d5e04"},
		{"admin.USER-DELETE.json", ingest.KindDeleted, jane, "", "6f1d2c3b-4a59-4687-9e0f-1a2b3c4d5e05"},
		{"access.LOGIN.json", "", "", "", "6f1d2c3b-4a59-4687-9e0f-1a2b3c4d5e06"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			events, err := keycloak.Decoder{}.Decode(request(fixture(t, tc.file)))
			require.NoError(t, err)
			require.Len(t, events, 1, "one event a request")
			e := events[0]
			assert.Equal(t, tc.kind, e.Kind)
			assert.Equal(t, tc.user, e.UserID)
			assert.Equal(t, tc.key, e.ID)
			assert.Equal(t, tc.key, e.ProviderEventID)
			assert.Empty(t, e.Source, "the caller scopes keys to the source")
			assert.Equal(t, "keycloak", e.Metadata["provider"])
			assert.NotEmpty(t, e.Metadata["provider_event_type"])
			if tc.email == "" {
				assert.Nil(t, e.Attributes.Email)
			} else if assert.NotNil(t, e.Attributes.Email) {
				assert.Equal(t, tc.email, *e.Attributes.Email)
			}
			if tc.kind != "" {
				assert.False(t, e.OccurredAt.IsZero(), "occurred at is time")
			}
		})
	}
}

func TestDecodeDetails(t *testing.T) {
	t.Parallel()
	events, err := keycloak.Decoder{}.Decode(request(fixture(t, "admin.USER-UPDATE.json")))
	require.NoError(t, err)
	e := events[0]
	assert.Equal(t, time.Date(2024, 5, 14, 10, 10, 0, 12_000_000, time.UTC), e.OccurredAt)
	require.NotNil(t, e.Attributes.Name)
	assert.Equal(t, "Jane Smith", *e.Attributes.Name)
	require.NotNil(t, e.Attributes.EmailVerified)
	assert.True(t, *e.Attributes.EmailVerified)
	assert.Equal(t, map[string]any{"username": "jane.doe", "firstName": "Jane", "lastName": "Smith"}, e.Attributes.Profile)
	assert.Equal(t, map[string]string{
		"provider": "keycloak", "provider_event_type": "admin.USER-UPDATE", "provider_realm": "acme",
	}, e.Metadata)

	events, err = keycloak.Decoder{}.Decode(request(fixture(t, "access.REGISTER.json")))
	require.NoError(t, err)
	e = events[0]
	assert.Nil(t, e.Attributes.EmailVerified, "a registration does not say")
	assert.Nil(t, e.Attributes.Name)
	assert.Equal(t, map[string]any{"username": "jane.doe"}, e.Attributes.Profile)
}

func TestDecodeEdges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, e ingest.Event)
	}{
		{"AdminUserIsNotTheAdministrator", `{"uid":"k1","type":"admin.USER-DELETE","authDetails":{"userId":"admin-1"},"resourcePath":"users/u-1"}`,
			func(t *testing.T, e ingest.Event) { assert.Equal(t, "u-1", e.UserID) }},
		{"RepresentationIDWithoutPath", `{"uid":"k1","type":"admin.USER-CREATE","representation":"{\"id\":\"u-2\",\"email\":\"a@b.example\"}"}`,
			func(t *testing.T, e ingest.Event) { assert.Equal(t, "u-2", e.UserID) }},
		{"RepresentationAsObject", `{"uid":"k1","type":"admin.USER-UPDATE","resourcePath":"users/u-1","representation":{"enabled":false}}`,
			func(t *testing.T, e ingest.Event) { assert.Equal(t, ingest.KindDeactivated, e.Kind) }},
		{"EnabledStaysAnUpdate", `{"uid":"k1","type":"admin.USER-UPDATE","resourcePath":"users/u-1","representation":"{\"enabled\":true}"}`,
			func(t *testing.T, e ingest.Event) {
				assert.Equal(t, ingest.KindUpdated, e.Kind)
				assert.Equal(t, aggregate.Attributes{}, e.Attributes, "nothing sent, nothing set")
			}},
		{"NoRepresentation", `{"uid":"k1","type":"admin.USER-UPDATE","resourcePath":"users/u-1"}`,
			func(t *testing.T, e ingest.Event) { assert.Equal(t, ingest.KindUpdated, e.Kind) }},
		{"PathBelowTheUserIsIgnored", `{"uid":"k1","type":"admin.USER-UPDATE","resourcePath":"users/u-1/disable-credential-types","representation":"[\"password\"]"}`,
			func(t *testing.T, e ingest.Event) { assert.Empty(t, e.Kind) }},
		{"FailedOperationIsIgnored", `{"uid":"k1","type":"admin.USER-CREATE","error":"conflict","resourcePath":"users"}`,
			func(t *testing.T, e ingest.Event) { assert.Empty(t, e.Kind) }},
		{"RegisterFromAuthDetails", `{"uid":"k1","type":"access.REGISTER","authDetails":{"userId":"u-3"}}`,
			func(t *testing.T, e ingest.Event) {
				assert.Equal(t, "u-3", e.UserID)
				assert.True(t, e.OccurredAt.IsZero())
			}},
		{"UnknownTypeReadsNothingElse", `{"uid":"k1","type":"admin.GROUP-CREATE","time":"soon","representation":"{"}`,
			func(t *testing.T, e ingest.Event) { assert.Empty(t, e.Kind) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			events, err := keycloak.Decoder{}.Decode(request([]byte(tc.body)))
			require.NoError(t, err)
			require.Len(t, events, 1)
			tc.check(t, events[0])
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, field string
	}{
		{"NotJSON", `uid=1`, "body"},
		{"Array", `[{"uid":"k1"}]`, "body"},
		{"NoUID", `{"type":"access.LOGIN"}`, "uid"},
		{"RegisterWithoutUser", `{"uid":"k1","type":"access.REGISTER","details":{"email":"a@b.example"}}`, "authDetails.userId"},
		{"AdminWithoutUser", `{"uid":"k1","type":"admin.USER-DELETE"}`, "resourcePath"},
		{"EmptyPathID", `{"uid":"k1","type":"admin.USER-DELETE","resourcePath":"users/"}`, "resourcePath"},
		{"RepresentationNotJSON", `{"uid":"k1","type":"admin.USER-UPDATE","resourcePath":"users/u-1","representation":"{"}`, "representation"},
		{"RepresentationWrongType", `{"uid":"k1","type":"admin.USER-UPDATE","resourcePath":"users/u-1","representation":"{\"enabled\":\"no\"}"}`, "representation.enabled"},
		{"BadEmail", `{"uid":"k1","type":"admin.USER-UPDATE","resourcePath":"users/u-1","representation":"{\"email\":\"jane at acme\"}"}`, "representation.email"},
		{"BadRegisterEmail", `{"uid":"k1","type":"access.REGISTER","authDetails":{"userId":"u-1"},"details":{"email":"jane at acme"}}`, "details.email"},
		{"TimeNotNumber", `{"uid":"k1","type":"admin.USER-DELETE","resourcePath":"users/u-1","time":"2024-05-14"}`, "time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			events, err := keycloak.Decoder{}.Decode(request([]byte(tc.body)))
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
	body := fixture(t, "admin.USER-UPDATE.json")
	secrets := []string{secretA, secretB}
	tampered := []byte(strings.Replace(string(body), "jane.smith@acme.example", "mallory@evil.example", 1))
	require.NotEqual(t, body, tampered)
	tests := []struct {
		name      string
		body      []byte
		signature string
		secrets   []string
		reason    string
	}{
		{"First", body, sign(secretA, body), secrets, ""},
		{"Second", body, sign(secretB, body), secrets, ""},
		{"UpperCaseHex", body, strings.ToUpper(sign(secretA, body)), secrets, ""},
		{"WrongSecret", body, sign("keycloak-webhook-secret-C", body), secrets, "signature does not match"},
		{"TamperedBody", tampered, sign(secretA, body), secrets, "signature does not match"},
		{"NotHex", body, "sha256=" + sign(secretA, body), secrets, "signature does not match"},
		{"Short", body, sign(secretA, body)[:40], secrets, "signature does not match"},
		{"Missing", body, "", secrets, "missing X-Keycloak-Signature"},
		{"NoSecrets", body, sign(secretA, body), nil, "signature does not match"},
		{"EmptySecretNeverMatches", body, sign("", body), []string{""}, "signature does not match"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := request(tc.body)
			if tc.signature != "" {
				r.Header.Set("X-Keycloak-Signature", tc.signature)
			}
			err := keycloak.Decoder{}.Authenticate(r, tc.secrets)
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
			assert.NotContains(t, err.Error(), sign(secretA, body), "nor a signature")
		})
	}
}

// FuzzDecode holds Decode to its promises: it never panics, it refuses only with ErrInvalid, and every user
// event it accepts has a key, a user id and an email the aggregate accepts.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"access.REGISTER.json", "admin.USER-CREATE.json", "admin.USER-UPDATE-disabled.json", "admin.USER-DELETE.json", "access.LOGIN.json"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`{"uid":"k","type":"admin.USER-UPDATE","resourcePath":"users/x","representation":"{\"email\":\"a@b\",\"firstName\":\"\\u0000\"}"}`))
	f.Add([]byte(`{"uid":"k","type":"access.REGISTER","details":{"userId":" x"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := keycloak.Decoder{}.Decode(request(body))
		if err != nil {
			if !errors.Is(err, userhook.ErrInvalid) {
				t.Fatalf("a refusal must match ErrInvalid, got %T: %v", err, err)
			}
			if events != nil {
				t.Fatalf("events returned with an error")
			}
			return
		}
		if len(events) != 1 {
			t.Fatalf("accepted %d events; a request holds one", len(events))
		}
		e := events[0]
		if e.ID == "" || e.ProviderEventID != e.ID {
			t.Fatalf("no key: %+v", e)
		}
		for k, v := range e.Metadata {
			if len(v) > 64 {
				t.Fatalf("metadata %s is %d bytes", k, len(v))
			}
		}
		if e.Kind == "" {
			return
		}
		if msg := aggregate.CheckUserID(e.UserID); msg != "" {
			t.Fatalf("accepted user id %q: %s", e.UserID, msg)
		}
		if e.Attributes.Email != nil {
			if msg := aggregate.CheckEmail(*e.Attributes.Email); msg != "" {
				t.Fatalf("accepted email %q: %s", *e.Attributes.Email, msg)
			}
		}
	})
}
