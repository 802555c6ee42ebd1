package transport

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/apikey"
	"github.com/userhook/userhook/internal/sqlitedb/sqlitetest"
	"github.com/userhook/userhook/projection"
	"github.com/userhook/userhook/projection/readmodeltest"
	projsqlite "github.com/userhook/userhook/projection/sqlite"
)

// TestListUsersByStatus: GET /users?status= takes each user status and lists the users that have it; any
// other value is a 400 in the documented error shape, naming the field.
func TestListUsersByStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	secret := []byte("reads-test-secret-0123456789abcdef")
	jwt, err := NewJWTVerifier(ctx, JWTConfig{Secret: secret})
	require.NoError(t, err)
	token, err := SignToken(TokenRequest{Secret: secret, Subject: "svc", TTL: time.Hour, Now: time.Now()})
	require.NoError(t, err)
	const readKey = "uk_read_key_for_reads_test"
	model, err := projsqlite.New(ctx, sqlitetest.Open(t))
	require.NoError(t, err)
	for i, u := range []struct {
		id     string
		status aggregate.Status
	}{{"u1", aggregate.StatusActive}, {"u2", aggregate.StatusInactive}, {"u3", aggregate.StatusDeleted}, {"u4", aggregate.StatusInactive}} {
		readmodeltest.Put(t, model, readmodeltest.User(u.id, u.id+"@example.com", u.status, 1, int64(i+1)))
	}
	srv := httptest.NewServer(NewServer(Deps{
		Auth:    &Authenticator{JWT: jwt, Keys: apikey.NewKeyring([]apikey.Bootstrap{{Key: readKey, Role: apikey.RoleRead}}, nil)},
		Reads:   model,
		Tracker: projection.NewTracker(4),
	}).Handler())
	t.Cleanup(srv.Close)

	get := func(t *testing.T, query string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/users?"+query, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-API-Key", readKey)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, body
	}

	for status, want := range map[string][]string{
		"active":   {"u1"},
		"inactive": {"u2", "u4"},
		"deleted":  {"u3"},
		"":         {"u1", "u2", "u3", "u4"},
	} {
		t.Run("status="+status, func(t *testing.T) {
			t.Parallel()
			code, body := get(t, "status="+status)
			require.Equal(t, http.StatusOK, code, "%s", body)
			var page struct {
				Users []projection.UserView `json:"users"`
			}
			require.NoError(t, json.Unmarshal(body, &page))
			var ids []string
			for _, u := range page.Users {
				ids = append(ids, u.UserID)
				if status != "" {
					assert.Equal(t, status, u.Status)
				}
			}
			assert.Equal(t, want, ids)
		})
	}
	for _, bad := range []string{"Inactive", "erased-or-not", "suspended", "active,inactive"} {
		t.Run("status="+bad, func(t *testing.T) {
			t.Parallel()
			code, body := get(t, "status="+bad)
			require.Equal(t, http.StatusBadRequest, code, "%s", body)
			var e struct {
				Error   string `json:"error"`
				Message string `json:"message"`
				Code    int    `json:"code"`
				Details []struct {
					Field   string `json:"field"`
					Message string `json:"message"`
				} `json:"details"`
				RequestID string `json:"requestId"`
			}
			require.NoError(t, json.Unmarshal(body, &e))
			assert.Equal(t, "Bad Request", e.Error)
			assert.Equal(t, http.StatusBadRequest, e.Code)
			assert.NotEmpty(t, e.Message)
			assert.NotEmpty(t, e.RequestID)
			require.Len(t, e.Details, 1)
			assert.Equal(t, "status", e.Details[0].Field)
			assert.Equal(t, "must be active, inactive or deleted", e.Details[0].Message)
		})
	}
}

// TestOpenAPIListsTheDomainsNames: the enums of openapi.yaml that name user statuses and event types are the
// code's own lists.
func TestOpenAPIListsTheDomainsNames(t *testing.T) {
	t.Parallel()
	schemas := openAPIDoc(t)["components"].(map[string]any)["schemas"].(map[string]any)
	enum := func(path ...string) []string {
		t.Helper()
		var node any = schemas
		for _, p := range path {
			m, ok := node.(map[string]any)
			require.True(t, ok, "%v", path)
			node = m[p]
		}
		values, ok := node.([]any)
		require.True(t, ok, "%v is a list", path)
		out := make([]string, len(values))
		for i, v := range values {
			out[i], _ = v.(string)
		}
		return out
	}
	assert.Equal(t, []string{string(aggregate.StatusActive), string(aggregate.StatusInactive), string(aggregate.StatusDeleted)},
		enum("UserStatus", "enum"))
	assert.Equal(t, aggregate.StoredTypes(), enum("StoredEvent", "properties", "type", "enum"))
	assert.Equal(t, append([]string{"all"}, aggregate.PublicTypes()...), enum("WebhookEventType", "enum"))
	assert.Equal(t, aggregate.PublicTypes(), enum("Delivery", "properties", "eventType", "enum"))
}
