package auth0logs_test

import (
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
	"github.com/userhook/userhook/source/auth0logs"
)

const (
	secretA = "auth0-stream-secret-A-3f9c1e7b2d5a8064"
	secretB = "auth0-stream-secret-B-a7d20c4e9f1b6385"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "sources", "auth0-logs", name))
	require.NoError(t, err)
	return b
}

func request(body []byte) source.Request {
	return source.Request{Method: http.MethodPost, Header: http.Header{}, Body: body, Now: time.Now()}
}

func TestDecodeFixtures(t *testing.T) {
	t.Parallel()
	const jane, janeEmail = "auth0|6643297159c2a1f0d1e8b7a2", "jane.doe@acme.example"
	const carol, carolEmail = "auth0|66432a8e0b7f4c2d91a3e5f6", "carol.nguyen@acme.example"
	type want struct {
		kind  ingest.Kind
		user  string
		email string // "" when the record sends none
		key   string
	}
	batch := []want{
		{ingest.KindCreated, carol, carolEmail, "90020240514091210418000000000000001223372036854775010"},
		{"", jane, "", "90020240514091211418000000000000001223372036854775011"},
		{ingest.KindUpdated, carol, "", "90020240514091212418000000000000001223372036854775012"},
		{ingest.KindDeleted, carol, "", "90020240514091213418000000000000001223372036854775013"},
	}
	tests := []struct {
		file string
		want []want
	}{
		{"ss.json", []want{{ingest.KindCreated, jane, janeEmail, "90020240514091201418000000000000001223372036854775001"}}},
		{"sdu.json", []want{{ingest.KindDeleted, jane, "", "90020240514091202418000000000000001223372036854775002"}}},
		{"du.json", []want{{ingest.KindDeleted, jane, "", "90020240514091203418000000000000001223372036854775003"}}},
		{"sapi-create.json", []want{{ingest.KindCreated, carol, carolEmail, "90020240514091204418000000000000001223372036854775004"}}},
		{"sapi-update.json", []want{{ingest.KindUpdated, jane, "jane.smith@acme.example", "90020240514091205418000000000000001223372036854775005"}}},
		{"sapi-block.json", []want{{ingest.KindDeactivated, jane, "", "90020240514091206418000000000000001223372036854775006"}}},
		{"sapi-unblock.json", []want{{ingest.KindReactivated, jane, "", "90020240514091207418000000000000001223372036854775007"}}},
		{"sapi-delete.json", []want{{ingest.KindDeleted, jane, "", "90020240514091208418000000000000001223372036854775008"}}},
		{"s.json", []want{{"", jane, "", "90020240514091209418000000000000001223372036854775009"}}},
		{"batch.json", batch},
		{"batch.jsonl", batch},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			events, err := auth0logs.Decoder{}.Decode(request(fixture(t, tc.file)))
			require.NoError(t, err)
			require.Len(t, events, len(tc.want))
			for i, w := range tc.want {
				e := events[i]
				assert.Equal(t, w.kind, e.Kind, "[%d] kind", i)
				assert.Equal(t, w.user, e.UserID, "[%d] user id", i)
				assert.Equal(t, w.key, e.ID, "[%d] id", i)
				assert.Equal(t, w.key, e.ProviderEventID, "[%d] provider event id", i)
				assert.Empty(t, e.Source, "[%d] the caller scopes keys to the source", i)
				assert.Equal(t, "auth0-logs", e.Metadata["provider"], "[%d]", i)
				assert.NotEmpty(t, e.Metadata["provider_event_type"], "[%d]", i)
				if w.email == "" {
					assert.Nil(t, e.Attributes.Email, "[%d] email", i)
				} else if assert.NotNil(t, e.Attributes.Email, "[%d] email", i) {
					assert.Equal(t, w.email, *e.Attributes.Email, "[%d] email", i)
				}
				if w.kind != "" {
					assert.False(t, e.OccurredAt.IsZero(), "[%d] occurred at is data.date", i)
				}
			}
		})
	}
}

func TestDecodeAPIOperations(t *testing.T) {
	t.Parallel()
	create, err := auth0logs.Decoder{}.Decode(request(fixture(t, "sapi-create.json")))
	require.NoError(t, err)
	require.Len(t, create, 1)
	a := create[0].Attributes
	require.NotNil(t, a.EmailVerified)
	assert.False(t, *a.EmailVerified)
	require.NotNil(t, a.Name)
	assert.Equal(t, "Carol Nguyen", *a.Name)
	assert.Equal(t, map[string]any{"given_name": "Carol", "family_name": "Nguyen"}, a.Profile, "connection is not a user field")
	assert.Equal(t, time.Date(2024, 5, 14, 9, 20, 11, 20_000_000, time.UTC), create[0].OccurredAt)
	assert.Equal(t, map[string]string{
		"provider": "auth0-logs", "provider_event_type": "sapi", "provider_description": "Create a User",
	}, create[0].Metadata)

	update, err := auth0logs.Decoder{}.Decode(request(fixture(t, "sapi-update.json")))
	require.NoError(t, err)
	a = update[0].Attributes
	require.NotNil(t, a.EmailVerified)
	assert.True(t, *a.EmailVerified)
	require.NotNil(t, a.Name)
	assert.Equal(t, "Jane Smith", *a.Name)
	assert.Equal(t, map[string]any{"family_name": "Smith"}, a.Profile)
}

func TestDecodeEdges(t *testing.T) {
	t.Parallel()
	const apiUpdate = `{"log_id":"L1","data":{"type":"sapi","description":"Update a User","user_id":"google-oauth2|admin","details":{"request":{"path":"/api/v2/users/auth0%7Ctarget","body":BODY}}}}`
	withBody := func(body string) string { return strings.Replace(apiUpdate, "BODY", body, 1) }
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, events []ingest.Event)
	}{
		{"PathNamesTheUser", withBody(`{"nickname":"t"}`),
			func(t *testing.T, events []ingest.Event) { assert.Equal(t, "auth0|target", events[0].UserID) }},
		{"UserIDWhenNoPath", `{"log_id":"L1","data":{"type":"sapi","description":"Delete a user","user_id":"auth0|x","details":{"request":{"path":"/api/v2/users"}}}}`,
			func(t *testing.T, events []ingest.Event) {
				assert.Equal(t, ingest.KindDeleted, events[0].Kind, "descriptions are matched in any case")
				assert.Equal(t, "auth0|x", events[0].UserID)
			}},
		{"NoSecretsInProfile", withBody(`{"password":"hunter2hunter2","app_metadata":{"plan":"pro"},"username":"jdoe","connection":"db"}`),
			func(t *testing.T, events []ingest.Event) {
				assert.Equal(t, map[string]any{"username": "jdoe"}, events[0].Attributes.Profile)
			}},
		{"BlockedWins", withBody(`{"blocked":true,"name":"X"}`),
			func(t *testing.T, events []ingest.Event) { assert.Equal(t, ingest.KindDeactivated, events[0].Kind) }},
		{"SignupWithUsername", `{"log_id":"L1","data":{"type":"ss","user_id":"auth0|u","user_name":"jdoe"}}`,
			func(t *testing.T, events []ingest.Event) {
				assert.Nil(t, events[0].Attributes.Email)
				assert.Equal(t, map[string]any{"user_name": "jdoe"}, events[0].Attributes.Profile)
				assert.True(t, events[0].OccurredAt.IsZero())
			}},
		{"OtherAPIOperationIgnored", `{"log_id":"L1","data":{"type":"sapi","description":"Assign roles to a user","details":7}}`,
			func(t *testing.T, events []ingest.Event) { assert.Empty(t, events[0].Kind) }},
		{"UnknownTypeReadsNothingElse", `{"log_id":"L1","data":{"type":"fp","date":"never","user_id":7}}`,
			func(t *testing.T, events []ingest.Event) {
				assert.Empty(t, events[0].Kind)
				assert.Empty(t, events[0].UserID)
			}},
		{"NoData", `{"log_id":"L1"}`,
			func(t *testing.T, events []ingest.Event) { assert.Empty(t, events[0].Kind) }},
		{"EmptyArray", `[]`,
			func(t *testing.T, events []ingest.Event) { assert.Empty(t, events) }},
		{"LinesWithBlankLines", "\n{\"log_id\":\"L1\",\"data\":{\"type\":\"s\"}}\n\n{\"log_id\":\"L2\",\"data\":{\"type\":\"s\"}}\n",
			func(t *testing.T, events []ingest.Event) {
				require.Len(t, events, 2)
				assert.Equal(t, "L2", events[1].ID)
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			events, err := auth0logs.Decoder{}.Decode(request([]byte(tc.body)))
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
		{"Empty", ``, "body"},
		{"NotJSON", `log_id=1`, "body"},
		{"BrokenArray", `[{"log_id":"L1"}`, "body"},
		{"BrokenLine", "{\"log_id\":\"L1\"}\n{\"log_id\":", "body"},
		{"NoLogID", `{"data":{"type":"s"}}`, "log_id"},
		{"NoLogIDInArray", `[{"log_id":"L1"},{"data":{"type":"ss"}}]`, "[1].log_id"},
		{"NoLogIDInLines", "{\"log_id\":\"L1\"}\n{\"log_id\":\"\"}", "[1].log_id"},
		{"RecordNotObject", `[1]`, "[0]"},
		{"SignupWithoutUser", `{"log_id":"L1","data":{"type":"ss","user_name":"a@b.example"}}`, "data.user_id"},
		{"DeleteWithoutUser", `[{"log_id":"L1","data":{"type":"sdu"}}]`, "[0].data.user_id"},
		{"BadDate", `{"log_id":"L1","data":{"type":"ss","user_id":"auth0|u","date":"14 May 2024"}}`, "data.date"},
		{"BadEmail", `{"log_id":"L1","data":{"type":"sapi","description":"Update a User","details":{"request":{"path":"/api/v2/users/u1","body":{"email":"not an email"}}}}}`, "data.details.request.body.email"},
		{"BlockedNotBoolean", `{"log_id":"L1","data":{"type":"sapi","description":"Update a User","details":{"request":{"path":"/api/v2/users/u1","body":{"blocked":"yes"}}}}}`, "data.details.request.body.blocked"},
		{"CreateWithoutUser", `{"log_id":"L1","data":{"type":"sapi","description":"Create a User","details":{"request":{"path":"/api/v2/users","body":{}}}}}`, "data.user_id"},
		{"UpdateNestedPath", `{"log_id":"L1","data":{"type":"sapi","description":"Update a User","details":{"request":{"path":"/api/v2/users/u1/roles"}}}}`, "data.user_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			events, err := auth0logs.Decoder{}.Decode(request([]byte(tc.body)))
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
		{"Wrong", "Bearer " + secretA, secrets, "Authorization does not match"},
		{"Prefix", secretA[:12], secrets, "Authorization does not match"},
		{"Missing", "", secrets, "missing Authorization"},
		{"NoSecrets", secretA, nil, "Authorization does not match"},
		{"EmptySecretNeverMatches", "x", []string{""}, "Authorization does not match"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := request(fixture(t, "batch.jsonl"))
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			err := auth0logs.Decoder{}.Authenticate(r, tc.secrets)
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

// FuzzDecode holds Decode to its promises: it never panics, it refuses only with ErrInvalid, and every user
// event it accepts has a key, a user id and an email the aggregate accepts.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"ss.json", "sapi-create.json", "sapi-update.json", "sapi-block.json", "s.json", "batch.json", "batch.jsonl"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`{"log_id":"L","data":{"type":"sapi","description":"Update a User","details":{"request":{"path":"/api/v2/users/a%2","body":{"blocked":false}}}}}`))
	f.Add([]byte(`[{"log_id":"L","data":null}]`))
	f.Add([]byte("{}\n[]\n\"x\""))
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := auth0logs.Decoder{}.Decode(request(body))
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
