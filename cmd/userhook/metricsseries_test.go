package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/delivery"
	"github.com/userhook/userhook/ingest"
	"github.com/userhook/userhook/projection"
)

// TestMetricsSeriesFromTheStart scrapes a server that has served nothing yet: every series an operator alerts
// on is there from the first scrape (counters at 0), the status label is `code`, the build is described, every
// component's position is reported, and no value is the -1 that used to mean "unknown".
func TestMetricsSeriesFromTheStart(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	r := s.do(http.MethodGet, "/metrics", "")
	require.Equal(t, http.StatusOK, r.Status)
	text := string(r.Body)

	zero := func(sample string) {
		t.Helper()
		assert.Equal(t, 0.0, metric(t, text, sample), "%s is there at 0", sample)
	}
	zero(`userhook_events_duplicate_total{route="/events"}`)
	for _, reason := range []string{ingest.ReasonUnsupportedType, ingest.ReasonStale, ingest.ReasonNoChange, ingest.ReasonDeleted} {
		zero(`userhook_events_ignored_total{reason="` + reason + `"}`)
	}
	for _, route := range []string{"/users", "/events", "/users/:id", "/api/events", "/api/webhooks"} {
		zero(`userhook_rate_limited_total{route="` + route + `"}`)
	}
	for _, outcome := range []delivery.Outcome{delivery.OutcomeSucceeded, delivery.OutcomeRetrying, delivery.OutcomeFailed, delivery.OutcomeRefused, delivery.OutcomeDeferred} {
		zero(`userhook_delivery_attempts_total{outcome="` + string(outcome) + `"}`)
		zero(`userhook_delivery_attempt_duration_seconds_count{outcome="` + string(outcome) + `"}`)
	}
	for _, handler := range []string{projection.UsersProjection, delivery.ConsumerName} {
		zero(`userhook_messages_poisoned_total{handler="` + handler + `"}`)
	}
	zero(`userhook_store_commit_batch_size_count`)
	zero(`userhook_scrape_errors_total{source="positions"}`)
	zero(`userhook_deliveries_pending`)
	zero(`userhook_delivery_oldest_due_age_seconds`)
	assert.Regexp(t, `(?m)^userhook_build_info\{goversion="go[^"]+",revision="[^"]*",version="[^"]+"\} 1$`, text)

	pos, err := s.Main.positions(context.Background())
	require.NoError(t, err)
	require.Contains(t, pos, "store")
	require.Contains(t, pos, "relay")
	require.Contains(t, pos, projection.UsersProjection)
	for component, p := range pos {
		assert.Equal(t, float64(p), metric(t, text, `userhook_position{component="`+component+`"}`), component)
		if component != "store" && component != "relay" {
			zero(`userhook_consumer_lag_events{consumer="` + component + `"}`)
		}
	}
	zero(`userhook_projection_lag_events`)

	assert.NotRegexp(t, `(?m) -1$`, text, "no -1 for unknown")
	assert.NotContains(t, text, `status="`, "the status label is code")

	// The first scrape is counted once it is answered: the second shows it, with its latency.
	text = string(s.do(http.MethodGet, "/metrics", "").Body)
	assert.Equal(t, 1.0, metric(t, text, `userhook_http_requests_total{code="200",method="GET",route="/metrics"}`))
	assert.Equal(t, 1.0, metric(t, text, `userhook_http_request_duration_seconds_count{code="200",method="GET",route="/metrics"}`))
	assert.NotRegexp(t, `(?m) -1$`, text)
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "userhook_") {
			assert.NotRegexp(t, regexp.MustCompile(`[{,]status="`), line, "the status label is code")
		}
	}
}
