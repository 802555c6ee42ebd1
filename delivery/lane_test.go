package delivery

import (
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var fixedNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestNextAttempt(t *testing.T) {
	t.Parallel()
	backoff := []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute}
	same := func(d time.Duration) time.Duration { return d }
	tests := []struct {
		name     string
		attempts int
		resp     response
		spread   func(time.Duration) time.Duration
		want     time.Duration
		retry    bool
	}{
		{"first failure", 1, response{status: 500}, same, 5 * time.Second, true},
		{"second failure", 2, response{}, same, 30 * time.Second, true},
		{"last delay", 3, response{status: 502}, same, 2 * time.Minute, true},
		{"schedule used up", 4, response{status: 500}, same, 0, false},
		{"no attempt", 0, response{status: 500}, same, 0, false},
		{"spread", 2, response{status: 500}, func(d time.Duration) time.Duration { return d * 6 / 5 }, 36 * time.Second, true},
		{"429 Retry-After seconds", 1, response{status: 429, retryAfter: "120"}, same, 2 * time.Minute, true},
		{"503 Retry-After seconds, spaces", 1, response{status: 503, retryAfter: " 7 "}, same, 7 * time.Second, true},
		{"503 Retry-After date", 1, response{status: 503, retryAfter: fixedNow.Add(90 * time.Second).Format(http.TimeFormat)}, same, 90 * time.Second, true},
		{"503 Retry-After date past", 1, response{status: 503, retryAfter: fixedNow.Add(-time.Hour).Format(http.TimeFormat)}, same, 0, true},
		{"429 Retry-After capped", 1, response{status: 429, retryAfter: "999999999"}, same, MaxRetryAfter, true},
		{"429 Retry-After not spread", 1, response{status: 429, retryAfter: "10"}, func(d time.Duration) time.Duration { return 2 * d }, 10 * time.Second, true},
		{"429 Retry-After garbage", 2, response{status: 429, retryAfter: "soon"}, same, 30 * time.Second, true},
		{"429 Retry-After negative", 2, response{status: 429, retryAfter: "-5"}, same, 30 * time.Second, true},
		{"429 without Retry-After", 1, response{status: 429}, same, 5 * time.Second, true},
		{"Retry-After with another status", 1, response{status: 500, retryAfter: "120"}, same, 5 * time.Second, true},
		{"Retry-After past the schedule", 4, response{status: 429, retryAfter: "1"}, same, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			next, retry := nextAttempt(backoff, tt.attempts, tt.resp, fixedNow, tt.spread)
			assert.Equal(t, tt.retry, retry)
			if tt.retry {
				assert.Equal(t, fixedNow.Add(tt.want), next)
			} else {
				assert.True(t, next.IsZero())
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "the endpoint answered 503 (Retry-After: 120)", describe(response{status: 503, retryAfter: "120"}, nil))
	assert.Equal(t, "the endpoint answered 500, not a 2xx", describe(response{status: 500}, nil))
	assert.Equal(t, "no answer within 10s", describe(response{}, &noAnswerError{after: 10 * time.Second}))
}

// TestPlan: the claim loop passes over full lanes and open circuits, has room for what the lanes do not hold,
// wakes when a circuit half-opens, and forgets lanes idle for long.
func TestPlan(t *testing.T) {
	t.Parallel()
	s := &Sender{Workers: 10, PerEndpoint: 2, BreakAfter: 1, BreakFor: time.Hour}
	s.open(t.Context())
	add := func(id string, sending, waiting int, lastUsed time.Time) *lane {
		l := s.newLane(id)
		l.sending, l.waiting, l.lastUsed = sending, make([]claimed, waiting), lastUsed
		s.lanes.byID[id] = l
		s.lanes.held += sending + waiting
		return l
	}
	now := fixedNow
	add("wh_full", 2, 0, now)
	add("wh_queued", 1, 1, now)
	add("wh_room", 1, 0, now)
	add("wh_idle_recent", 0, 0, now.Add(-laneIdle+time.Minute))
	add("wh_idle_long", 0, 0, now.Add(-laneIdle-time.Minute))
	add("wh_busy_old", 1, 0, now.Add(-2*laneIdle))
	open := add("wh_open", 0, 0, now.Add(-2*laneIdle))
	done, err := open.breaker.Allow()
	require.NoError(t, err)
	opened := time.Now()
	done(errors.New("no answer"))
	require.Equal(t, gobreaker.StateOpen, open.breaker.State())
	_, err = open.breaker.Allow()
	require.ErrorIs(t, err, gobreaker.ErrOpenState)

	skip, room, reopen := s.plan(now)
	slices.Sort(skip)
	assert.Equal(t, []string{"wh_full", "wh_open", "wh_queued"}, skip,
		"full lanes and an open circuit are passed over; lanes with room are not")
	assert.Equal(t, 10-6, room, "the room the lanes do not hold")
	assert.WithinDuration(t, opened.Add(time.Hour), reopen, time.Second, "the loop wakes when the circuit half-opens")
	assert.NotContains(t, s.lanes.byID, "wh_idle_long", "a lane idle for long is forgotten")
	for _, id := range []string{"wh_idle_recent", "wh_busy_old", "wh_open", "wh_full"} {
		assert.Contains(t, s.lanes.byID, id, "kept: %s", id)
	}

}

// TestRoom: a lane sends PerEndpoint at once while its circuit is closed, none while it is open, one probe
// while it is half-open.
func TestRoom(t *testing.T) {
	t.Parallel()
	s := &Sender{PerEndpoint: 3, BreakAfter: 2, BreakFor: 50 * time.Millisecond}
	l := s.newLane("wh_a")
	assert.Equal(t, 3, s.room(l))
	for range 2 {
		done, err := l.breaker.Allow()
		require.NoError(t, err)
		done(&noAnswerError{after: time.Second})
	}
	assert.Equal(t, 0, s.room(l), "open after BreakAfter timeouts")
	// The breaker half-opens on its own clock (time.Now): wait for it, not for a guess at BreakFor.
	assert.Eventually(t, func() bool { return s.room(l) == 1 }, 5*time.Second, 5*time.Millisecond, "half-open after BreakFor")
	done, err := l.breaker.Allow()
	require.NoError(t, err)
	done(nil)
	assert.Equal(t, 3, s.room(l), "closed after a probe got an answer")
}
