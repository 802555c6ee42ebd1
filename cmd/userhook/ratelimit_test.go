package main

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/standardwebhooks"
	"github.com/userhook/userhook/transport"
)

func TestRateLimits(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.RateLimitIngest = "1:2"
	cfg.RateLimitRead = "1:1"
	secret, key := webhookSecret(t)
	cfg.WebhookSecrets = secret
	clock := newTestClock()
	s := startMain(t, &Main{Config: cfg, Now: clock.Now})

	t.Run("per API key on POST /users", func(t *testing.T) {
		assert.Equal(t, http.StatusOK, s.postUser("auth0|rl1", "rl1@example.com").Status)
		assert.Equal(t, http.StatusOK, s.postUser("auth0|rl2", "rl2@example.com").Status)
		r := s.postUser("auth0|rl3", "rl3@example.com")
		body := assertErrorBody(t, r, http.StatusTooManyRequests)
		assert.Contains(t, body["message"], "rate limit")
		wait, err := strconv.Atoi(r.Header.Get("Retry-After"))
		require.NoError(t, err)
		assert.GreaterOrEqual(t, wait, 1)
		assert.Empty(t, s.events("auth0|rl3"), "a refused request stores nothing")
		// Another key has its own bucket.
		other := s.authed(http.MethodPost, "/users", `{"detail":{"data":{"user_name":"rl4@example.com","user_id":"auth0|rl4"}}}`, adminKey)
		assert.Equal(t, http.StatusOK, other.Status)
		clock.Advance(time.Second)
		assert.Equal(t, http.StatusOK, s.postUser("auth0|rl3", "rl3@example.com").Status, "the bucket refills")
	})

	t.Run("per signing secret on POST /events", func(t *testing.T) {
		post := func(id string) response {
			body := `{"specversion":"1.0","id":"` + id + `","source":"s","type":"user.created","subject":"` + id + `","data":{"email":"` + id + `@example.com"}}`
			ts := strconv.FormatInt(time.Now().Unix(), 10)
			return s.do(http.MethodPost, "/events", body, "Content-Type", "application/cloudevents+json",
				"webhook-id", "msg_"+id, "webhook-timestamp", ts,
				"webhook-signature", standardwebhooks.Sign("msg_"+id, time.Now(), []byte(body), key))
		}
		assert.Equal(t, http.StatusOK, post("sig1").Status)
		assert.Equal(t, http.StatusOK, post("sig2").Status)
		r := post("sig3")
		assertErrorBody(t, r, http.StatusTooManyRequests)
		assert.NotEmpty(t, r.Header.Get("Retry-After"))
	})

	t.Run("reads have their own limit", func(t *testing.T) {
		assert.Equal(t, http.StatusOK, s.read("/users").Status)
		r := s.read("/users")
		assertErrorBody(t, r, http.StatusTooManyRequests)
	})
}

func TestRateLimitsOffByDefault(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	for i := 0; i < 50; i++ {
		require.Equal(t, http.StatusOK, s.postUser("auth0|nolimit"+strconv.Itoa(i), "n@example.com").Status)
	}
}

func TestParseRateLimit(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]*transport.RateLimit{
		"": nil, "off": nil, "10": {PerSecond: 10, Burst: 10}, "0.5": {PerSecond: 0.5, Burst: 1}, "5:20": {PerSecond: 5, Burst: 20},
	} {
		got, err := transport.ParseRateLimit(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"x", "-1", "0", "5:0", "5:x", "Inf"} {
		_, err := transport.ParseRateLimit(bad)
		assert.Error(t, err, bad)
	}
}
