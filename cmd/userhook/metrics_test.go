package main

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// metric returns the value of one sample line of GET /metrics (name with labels, as printed), or -1.
func metric(t *testing.T, text, sample string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` ([0-9.eE+-]+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return v
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	require.Equal(t, http.StatusOK, s.postUser("auth0|m1", "m1@example.com").Status)
	require.Equal(t, http.StatusOK, s.postUser("auth0|m1", "m1@example.com").Status)
	ce := func(id, typ string) response {
		return s.authed(http.MethodPost, "/events", `{"specversion":"1.0","id":"`+id+`","source":"s","type":"`+typ+`","subject":"m2","data":{"email":"m2@example.com"}}`,
			ingestKey, "Content-Type", "application/cloudevents+json")
	}
	require.Equal(t, http.StatusOK, ce("e1", "user.created").Status)
	require.Equal(t, http.StatusOK, ce("e1", "user.created").Status)
	require.Equal(t, http.StatusOK, ce("e2", "organization.created").Status)
	assert.Equal(t, http.StatusUnauthorized, s.do(http.MethodPost, "/users", `{}`).Status)
	s.waitProjected()

	r := s.do(http.MethodGet, "/metrics", "")
	require.Equal(t, http.StatusOK, r.Status, "no authentication")
	text := string(r.Body)
	assert.Equal(t, 2.0, metric(t, text, `userhook_http_requests_total{code="200",method="POST",route="/users"}`))
	assert.Equal(t, 1.0, metric(t, text, `userhook_http_requests_total{code="401",method="POST",route="/users"}`))
	assert.Equal(t, 3.0, metric(t, text, `userhook_http_requests_total{code="200",method="POST",route="/events"}`))
	assert.Equal(t, 3.0, metric(t, text, `userhook_http_request_duration_seconds_count{code="200",method="POST",route="/users"}`)+
		metric(t, text, `userhook_http_request_duration_seconds_count{code="401",method="POST",route="/users"}`))
	assert.Equal(t, 2.0, metric(t, text, `userhook_events_appended_total{type="user.registered.v1"}`))
	assert.Equal(t, 1.0, metric(t, text, `userhook_events_duplicate_total{route="/events"}`))
	assert.Equal(t, 1.0, metric(t, text, `userhook_events_ignored_total{reason="unsupported_type"}`))
	assert.Equal(t, 2.0, metric(t, text, `userhook_position{component="store"}`))
	assert.Eventually(t, func() bool {
		text := string(s.do(http.MethodGet, "/metrics", "").Body)
		return metric(t, text, `userhook_position{component="users-projection"}`) == 2 &&
			metric(t, text, `userhook_projection_lag_events`) == 0
	}, 5*time.Second, 20*time.Millisecond)
	assert.Equal(t, 0.0, metric(t, text, `userhook_deliveries_pending`))
	assert.Contains(t, text, "go_goroutines", "the Go runtime's collectors are there")
}

func TestDeliveryMetrics(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.WebhookAllowPrivate = true
	cfg.DeliveryBackoff = "10ms"
	s := startServer(t, cfg)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer receiver.Close()
	r := s.authed(http.MethodPost, "/api/webhooks", `{"name":"m","url":"`+receiver.URL+`","events":["user.created"]}`, adminKey)
	require.Equal(t, http.StatusCreated, r.Status)
	require.Equal(t, http.StatusOK, s.postUser("auth0|dm", "dm@example.com").Status)
	assert.Eventually(t, func() bool {
		text := string(s.do(http.MethodGet, "/metrics", "").Body)
		return metric(t, text, `userhook_delivery_attempts_total{outcome="retrying"}`) == 1 &&
			metric(t, text, `userhook_delivery_attempts_total{outcome="failed"}`) == 1 &&
			metric(t, text, `userhook_deliveries_pending`) == 0
	}, 10*time.Second, 20*time.Millisecond, "one attempt retried, the last failed, nothing pending")
}
