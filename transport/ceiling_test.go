package transport

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The ceilings do what the load benchmark says they do: C0 only reads, C1 also authenticates and decodes, and
// levels 2 and 3 hand the decoded user to their store and answer its position, or 503 when it fails.
func TestCeilingLevels(t *testing.T) {
	t.Parallel()
	secret := []byte("test-secret-0123456789abcdef0123456789")
	const key = "ceiling-key-0123456789"
	tok, err := SignToken(TokenRequest{Secret: secret, Subject: "bench", TTL: time.Hour})
	require.NoError(t, err)
	const body = `{"detail":{"data":{"user_name":"a@example.com","user_id":"auth0|a"}}}`
	post := func(h http.Handler, auth, apiKey, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/users", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		req.Header.Set("X-API-Key", apiKey)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	assert.Equal(t, http.StatusOK, post(Ceiling(0, secret, key, nil), "", "", "anything").Code, "C0 checks nothing")

	c1 := Ceiling(1, secret, key, nil)
	assert.Equal(t, http.StatusUnauthorized, post(c1, "", key, body).Code, "no token")
	assert.Equal(t, http.StatusUnauthorized, post(c1, tok, "wrong-key", body).Code, "wrong API key")
	assert.Equal(t, http.StatusBadRequest, post(c1, tok, key, `{"detail":{"data":{}}}`).Code, "no user")
	rec := post(c1, tok, key, body)
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Empty(t, rec.Header().Get("X-Event-Position"), "C1 stores nothing")

	for _, level := range []int{2, 3} {
		var got []string
		store := func(_ context.Context, userID, email, requestID string) (int64, error) {
			got = append(got, userID, email)
			assert.NotEmpty(t, requestID)
			return 42, nil
		}
		rec := post(Ceiling(level, secret, key, store), tok, key, body)
		assert.Equal(t, http.StatusOK, rec.Code, "level %d", level)
		assert.Equal(t, "42", rec.Header().Get("X-Event-Position"), "level %d", level)
		assert.JSONEq(t, `{"success":true,"userId":"auth0|a","email":"a@example.com"}`, rec.Body.String(), "level %d", level)
		assert.Equal(t, []string{"auth0|a", "a@example.com"}, got, "level %d", level)

		failing := func(context.Context, string, string, string) (int64, error) { return 0, errors.New("disk full") }
		assert.Equal(t, http.StatusServiceUnavailable, post(Ceiling(level, secret, key, failing), tok, key, body).Code, "level %d", level)
	}
}
