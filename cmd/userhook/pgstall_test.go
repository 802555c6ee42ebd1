package main

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/internal/postgresdb/pgtest"
)

// TestIntegrationPostgresStallAnswers503 puts a proxy between the server and PostgreSQL and stalls it: writes
// and reads answer 503 with Retry-After within the database deadline instead of hanging, nothing is
// half-written, and once PostgreSQL answers again so does the server (issue 12, defect 7).
func TestIntegrationPostgresStallAnswers503(t *testing.T) {
	raw := pgtest.URL(t)
	u, err := url.Parse(raw)
	require.NoError(t, err)
	proxy := newTCPProxy(t, u.Host)
	u.Host = proxy.Addr()

	cfg := testConfig(t)
	cfg.Database = u.String()
	cfg.DatabaseTimeout = time.Second
	s := startServer(t, cfg)
	require.Equal(t, http.StatusOK, s.postUser("auth0|before", "before@example.com").Status)

	proxy.Stall()
	for _, req := range []struct {
		name string
		send func() response
	}{
		{"a new user", func() response { return s.postUser("auth0|stalled", "stalled@example.com") }},
		{"a read", func() response { return s.authed(http.MethodGet, "/users/auth0%7Cbefore", "", readKey) }},
		{"a webhook list", func() response { return s.authed(http.MethodGet, "/api/webhooks", "", adminKey) }},
	} {
		start := time.Now()
		r := req.send()
		took := time.Since(start)
		assert.Equal(t, http.StatusServiceUnavailable, r.Status, "%s: %s", req.name, r.Body)
		assert.Less(t, took, 4*time.Second, "%s answered within the deadline (and a group commit's)", req.name)
		ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
		assert.NoError(t, err, "%s: Retry-After", req.name)
		assert.Positive(t, ra)
		if r.Status == http.StatusServiceUnavailable {
			body := r.JSON(t)
			assert.Equal(t, "Service Unavailable", body["error"])
			assert.Equal(t, r.Header.Get("X-Request-Id"), body["requestId"])
			assert.NotContains(t, string(r.Body), "127.0.0.1", "no internals in the body")
		}
	}

	proxy.Restore()
	require.Eventually(t, func() bool {
		return s.postUser("auth0|after", "after@example.com").Status == http.StatusOK
	}, 15*time.Second, 100*time.Millisecond, "writes work again once PostgreSQL answers")
	r := s.authed(http.MethodGet, "/users/"+url.PathEscape("auth0|stalled")+"/events", "", readKey)
	assert.Equal(t, http.StatusNotFound, r.Status, "the request that timed out stored nothing: %s", r.Body)
	// The stalled user's provider retries: it is registered once, at version 1.
	retried := s.postUser("auth0|stalled", "stalled@example.com")
	require.Equal(t, http.StatusOK, retried.Status)
	r = s.authed(http.MethodGet, "/users/"+url.PathEscape("auth0|stalled")+"/events?minPosition="+retried.Header.Get("X-Event-Position"), "", readKey)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	events, _ := r.JSON(t)["events"].([]any)
	assert.Len(t, events, 1)
}
