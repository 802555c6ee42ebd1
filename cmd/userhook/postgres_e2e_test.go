package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nats-io/nats.go"

	"github.com/userhook/userhook/internal/postgresdb/pgtest"
	"github.com/userhook/userhook/stream"
)

// TestIntegrationPostgresEndToEnd runs the main HTTP flows of the embedded tests on the scale-out setup
// (PostgreSQL for everything, JetStream for Watermill) with one in-process instance.
func TestIntegrationPostgresEndToEnd(t *testing.T) {
	cfg := testConfig(t)
	cfg.Database = pgtest.URL(t)
	cfg.PubSub = natsURL(t)
	cfg.NATSNamespace = fmt.Sprintf("e2e%d_", time.Now().UnixNano())
	t.Cleanup(func() {
		if nc, err := nats.Connect(cfg.PubSub); err == nil {
			if js, err := nc.JetStream(); err == nil {
				_ = js.DeleteStream(cfg.NATSNamespace + stream.UsersTopic)
			}
			nc.Close()
		}
	})
	cfg.WebhookAllowPrivate = true
	s := startServer(t, cfg)

	var delivered atomic.Int64
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		delivered.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer receiver.Close()
	r := s.authed(http.MethodPost, "/api/webhooks", `{"name":"pg","url":"`+receiver.URL+`","events":["all"]}`, adminKey)
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)

	t.Run("ensure-exists and read your writes", func(t *testing.T) {
		first := s.postUser("auth0|pg1", "pg1@example.com")
		require.Equal(t, http.StatusOK, first.Status, "%s", first.Body)
		again := s.postUser("auth0|pg1", "pg1@example.com")
		assert.Equal(t, first.Header.Get("X-Event-Position"), again.Header.Get("X-Event-Position"), "a repeat writes nothing")
		changed := s.postUser("auth0|pg1", "pg1b@example.com")
		require.Equal(t, http.StatusOK, changed.Status)
		read := s.read("/users/" + url.PathEscape("auth0|pg1") + "?minPosition=" + changed.Header.Get("X-Event-Position"))
		require.Equal(t, http.StatusOK, read.Status, "%s", read.Body)
		assert.Equal(t, "pg1b@example.com", read.JSON(t)["email"])
		assert.EqualValues(t, 2, read.JSON(t)["version"])
	})
	t.Run("CloudEvents: applied, duplicate, stale", func(t *testing.T) {
		post := func(id, at, name string) string {
			r := s.authed(http.MethodPost, "/events", `{"specversion":"1.0","id":"`+id+`","source":"s","type":"user.updated","subject":"pg2","time":"`+at+`","data":{"name":"`+name+`"}}`,
				ingestKey, "Content-Type", "application/cloudevents+json")
			require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
			return string(r.Body)
		}
		assert.Contains(t, post("c1", "2024-01-02T00:00:00Z", "New"), `"status":"applied"`)
		assert.Contains(t, post("c1", "2024-01-02T00:00:00Z", "New"), `"status":"duplicate"`)
		assert.Contains(t, post("c2", "2024-01-01T00:00:00Z", "Old"), `"reason":"stale"`)
	})
	t.Run("pagination and the feed", func(t *testing.T) {
		for i := 0; i < 5; i++ {
			require.Equal(t, http.StatusOK, s.postUser(fmt.Sprintf("auth0|pgp%d", i), fmt.Sprintf("p%d@example.com", i)).Status)
		}
		last := s.postUser("auth0|pgp4", "p4@example.com").Header.Get("X-Event-Position")
		r := s.read("/users?limit=3&minPosition=" + last)
		require.Equal(t, http.StatusOK, r.Status)
		assert.NotNil(t, r.JSON(t)["nextCursor"])
		feed := s.read("/api/events?limit=1000")
		require.Equal(t, http.StatusOK, feed.Status)
		assert.Len(t, feed.JSON(t)["events"], 8, "2 + 1 + 5 events, each once")
	})
	t.Run("webhook deliveries", func(t *testing.T) {
		require.Eventually(t, func() bool { return delivered.Load() == 8 }, 20*time.Second, 20*time.Millisecond,
			"every event delivered (got %d)", delivered.Load())
		s.whSettled()
		assert.Equal(t, int64(8), delivered.Load(), "and none twice")
	})
	t.Run("an API key made with the CLI works", func(t *testing.T) {
		var out, errOut stringsBuilder
		require.NoError(t, run(t.Context(), []string{"apikey", "create", "--name", "pg", "--role", "read", "--database", cfg.Database},
			func(string) string { return "" }, &out, &errOut))
		key := out.trimmed()
		r := s.do(http.MethodGet, "/users", "", "Authorization", "Bearer "+token(t), "X-API-Key", key)
		assert.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	})
}
