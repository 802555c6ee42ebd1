package metrics

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scrape returns the text GET /metrics answers.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	return rec.Body.String()
}

// value returns a sample's value, and whether the sample is there.
func value(t *testing.T, text, sample string) (float64, bool) {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return v, true
}

func TestPositionsAreReadOncePerScrape(t *testing.T) {
	t.Parallel()
	calls := 0
	m := New(Sources{Positions: func(context.Context) (map[string]int64, error) {
		calls++
		return map[string]int64{"store": 10, "relay": 9, "users-projection": 7, "webhook-deliveries": 12}, nil
	}})
	text := scrape(t, m)
	assert.Equal(t, 1, calls)
	for sample, want := range map[string]float64{
		`userhook_position{component="store"}`:                        10,
		`userhook_position{component="relay"}`:                        9,
		`userhook_position{component="users-projection"}`:             7,
		`userhook_position{component="webhook-deliveries"}`:           12,
		`userhook_consumer_lag_events{consumer="users-projection"}`:   3,
		`userhook_consumer_lag_events{consumer="webhook-deliveries"}`: 0, // read after the store moved on
		`userhook_projection_lag_events`:                              3,
		`userhook_scrape_errors_total{source="positions"}`:            0,
	} {
		got, ok := value(t, text, sample)
		assert.True(t, ok, sample)
		assert.Equal(t, want, got, sample)
	}
	assert.NotContains(t, text, `consumer="store"`)
	assert.NotContains(t, text, `consumer="relay"`)
}

func TestAFailedSourceIsCountedNotReported(t *testing.T) {
	t.Parallel()
	failing := errors.New("database is gone")
	m := New(Sources{
		Positions: func(context.Context) (map[string]int64, error) { return nil, failing },
		Pending:   func(context.Context) (int64, error) { return 0, failing },
		OldestDue: func(context.Context) (time.Time, error) { return time.Time{}, failing },
	})
	scrape(t, m)
	text := scrape(t, m)
	for _, gauge := range []string{"userhook_position", "userhook_consumer_lag_events", "userhook_projection_lag_events",
		"userhook_deliveries_pending", "userhook_delivery_oldest_due_age_seconds"} {
		assert.NotRegexp(t, `(?m)^`+gauge+`[{ ]`, text, "%s is left out, not made up", gauge)
	}
	for _, source := range []string{"positions", "pending", "oldest_due"} {
		got, _ := value(t, text, `userhook_scrape_errors_total{source="`+source+`"}`)
		assert.GreaterOrEqual(t, got, 1.0, source)
	}
	assert.NotRegexp(t, `(?m) -1$`, text)
}

func TestOldestDueAge(t *testing.T) {
	t.Parallel()
	due := time.Time{}
	m := New(Sources{OldestDue: func(context.Context) (time.Time, error) { return due, nil }})
	got, ok := value(t, scrape(t, m), `userhook_delivery_oldest_due_age_seconds`)
	assert.True(t, ok)
	assert.Equal(t, 0.0, got, "nothing due")
	due = time.Now().Add(-90 * time.Second)
	got, _ = value(t, scrape(t, m), `userhook_delivery_oldest_due_age_seconds`)
	assert.InDelta(t, 90, got, 5)
}

func TestLabelsComeFromClosedSets(t *testing.T) {
	t.Parallel()
	m := New(Sources{})
	for _, method := range []string{"GET", "get", "PROPFIND", strings.Repeat("A", 1<<16), "POST"} {
		m.Request("/users", method, 405, time.Millisecond)
	}
	text := scrape(t, m)
	got, _ := value(t, text, `userhook_http_requests_total{code="405",method="other",route="/users"}`)
	assert.Equal(t, 3.0, got)
	got, _ = value(t, text, `userhook_http_request_duration_seconds_count{code="405",method="GET",route="/users"}`)
	assert.Equal(t, 1.0, got)
	assert.Less(t, len(text), 1<<16)
}

func TestDeclaredSeriesStartAtZero(t *testing.T) {
	t.Parallel()
	m := New(Sources{})
	m.Declare(Known{DuplicateRoutes: []string{"/events"}, LimitedRoutes: []string{"/users"}, IgnoreReasons: []string{"stale"},
		Outcomes: []string{"succeeded"}, Handlers: []string{"users-projection"}})
	text := scrape(t, m)
	for _, sample := range []string{`userhook_events_duplicate_total{route="/events"}`, `userhook_rate_limited_total{route="/users"}`,
		`userhook_events_ignored_total{reason="stale"}`, `userhook_delivery_attempts_total{outcome="succeeded"}`,
		`userhook_delivery_attempt_duration_seconds_count{outcome="succeeded"}`, `userhook_messages_poisoned_total{handler="users-projection"}`,
		`userhook_store_commit_batch_size_count`} {
		got, ok := value(t, text, sample)
		assert.True(t, ok, sample)
		assert.Equal(t, 0.0, got, sample)
	}
	assert.Regexp(t, `(?m)^userhook_build_info\{goversion="go[^"]+",revision="[^"]+",version="[^"]+"\} 1$`, text)

	m.AttemptDone("succeeded", 20*time.Millisecond)
	m.AttemptDone("succeeded", 0)
	m.CommitBatch(3)
	m.Poisoned("users-projection")
	text = scrape(t, m)
	for sample, want := range map[string]float64{
		`userhook_delivery_attempts_total{outcome="succeeded"}`:                 2,
		`userhook_delivery_attempt_duration_seconds_count{outcome="succeeded"}`: 1,
		`userhook_store_commit_batch_size_sum`:                                  3,
		`userhook_messages_poisoned_total{handler="users-projection"}`:          1,
	} {
		got, _ := value(t, text, sample)
		assert.Equal(t, want, got, sample)
	}
}

func TestNilMetricsRecordNothing(t *testing.T) {
	t.Parallel()
	var m *Metrics
	m.Declare(Known{Outcomes: []string{"x"}})
	m.Request("/users", "GET", 200, 0)
	m.Appended("t")
	m.Duplicate("/events")
	m.Ignored("stale")
	m.Limited("/users")
	m.Attempt("x")
	m.AttemptDone("x", time.Second)
	m.CommitBatch(1)
	m.Poisoned("h")
}
