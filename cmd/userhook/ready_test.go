package main

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/projection"
	"github.com/userhook/userhook/stream"
)

// readyz is one /readyz answer: its status and body.
func (s *testServer) readyz() (int, map[string]any) {
	s.t.Helper()
	r := s.do(http.MethodGet, "/readyz", "")
	return r.Status, r.JSON(s.t)
}

// failing is the reason /readyz gives for a check, "" when it passes.
func failing(body map[string]any, check string) string {
	checks, _ := body["checks"].(map[string]any)
	if checks[check] != "failing" {
		return ""
	}
	reasons, _ := body["reasons"].(map[string]any)
	reason, _ := reasons[check].(string)
	if reason == "" {
		reason = "failing"
	}
	return reason
}

// TestReadyzWhenTheStoreRefusesWrites fills the database to its limit, as a full disk would: appends answer
// 500, /readyz says the store is failing, and once there is room again (and a write succeeds) it is ready
// again (issue 12, defect 4).
func TestReadyzWhenTheStoreRefusesWrites(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	require.Equal(t, http.StatusOK, s.postUser("auth0|full0", "full0@example.com").Status)
	status, _ := s.readyz()
	require.Equal(t, http.StatusOK, status)

	// SQLite refuses to grow the file past max_page_count with "database or disk is full", as on a full disk.
	write := s.sqliteDB().Write
	var pages int64
	require.NoError(t, write.QueryRow(`PRAGMA page_count`).Scan(&pages))
	_, err := write.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages))
	require.NoError(t, err)
	refused := false
	for i := 1; i < 2000 && !refused; i++ {
		refused = s.postUser(fmt.Sprintf("auth0|full%d-%s", i, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"), fmt.Sprintf("full%d@example.com", i)).Status == http.StatusInternalServerError
	}
	require.True(t, refused, "the full database refused an append")

	status, body := s.readyz()
	assert.Equal(t, http.StatusServiceUnavailable, status, "%v", body)
	assert.Contains(t, failing(body, "store"), "the last write failed")

	_, err = write.Exec(`PRAGMA max_page_count = 1073741823`)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, s.postUser("auth0|roomagain", "room@example.com").Status)
	assert.Eventually(t, func() bool { status, _ := s.readyz(); return status == http.StatusOK }, 5*time.Second, 20*time.Millisecond)
}

// TestReadyzWhenAConsumerFallsBehind makes the users projection fail every batch while users keep coming: it
// stops advancing, /readyz names it, and it is ready again once the projection catches up.
func TestReadyzWhenAConsumerFallsBehind(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.ReadyStall = 300 * time.Millisecond
	s := startServer(t, cfg)
	require.Equal(t, http.StatusOK, s.postUser("auth0|lag0", "lag0@example.com").Status)
	s.waitProjected()

	s.Main.users.FailNext.Store(1 << 40)
	for i := 1; i <= 5; i++ {
		require.Equal(t, http.StatusOK, s.postUser(fmt.Sprintf("auth0|lag%d", i), fmt.Sprintf("lag%d@example.com", i)).Status)
	}
	var body map[string]any
	assert.Eventually(t, func() bool {
		var status int
		status, body = s.readyz()
		return status == http.StatusServiceUnavailable && failing(body, projection.UsersProjection) != ""
	}, 5*time.Second, 50*time.Millisecond, "readyz names the stalled projection: %v", body)
	assert.Contains(t, failing(body, projection.UsersProjection), "has not advanced")
	assert.Empty(t, failing(body, "webhook-deliveries"), "the delivery consumer keeps up")
	assert.EqualValues(t, 5, body["lag"].(map[string]any)[projection.UsersProjection])

	s.Main.users.FailNext.Store(0)
	assert.Eventually(t, func() bool { status, _ := s.readyz(); return status == http.StatusOK }, 10*time.Second, 50*time.Millisecond)
}

// TestReadyzWhenTheLagPassesTheLimit: a consumer far behind is not ready even while it advances.
func TestReadyzWhenTheLagPassesTheLimit(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.ReadyMaxLag = 3
	s := startServer(t, cfg)
	s.Main.users.FailNext.Store(1 << 40)
	for i := 0; i < 5; i++ {
		require.Equal(t, http.StatusOK, s.postUser(fmt.Sprintf("auth0|far%d", i), fmt.Sprintf("far%d@example.com", i)).Status)
	}
	status, body := s.readyz()
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Contains(t, failing(body, projection.UsersProjection), "more than 3")
	s.Main.users.FailNext.Store(0)
	assert.Eventually(t, func() bool { status, _ := s.readyz(); return status == http.StatusOK }, 10*time.Second, 50*time.Millisecond)
}

// TestIntegrationReadyzWhenNATSIsCut serves on PostgreSQL and JetStream through a proxy to NATS and cuts it:
// /readyz names the pub/sub, and is ready again once NATS is back.
func TestIntegrationReadyzWhenNATSIsCut(t *testing.T) {
	cfg := testConfig(t)
	natsRaw := natsURL(t)
	u, err := url.Parse(natsRaw)
	require.NoError(t, err)
	proxy := newTCPProxy(t, u.Host)
	cfg.PubSub = "nats://" + proxy.Addr()
	cfg.NATSNamespace = fmt.Sprintf("ready%d_", time.Now().UnixNano())
	t.Cleanup(func() {
		if nc, err := nats.Connect(natsRaw); err == nil {
			if js, err := nc.JetStream(); err == nil {
				_ = js.DeleteStream(cfg.NATSNamespace + stream.UsersTopic)
				_ = js.DeleteStream(cfg.NATSNamespace + stream.PoisonTopic)
			}
			nc.Close()
		}
	})
	s := startServer(t, cfg)
	require.Equal(t, http.StatusOK, s.postUser("auth0|n1", "n1@example.com").Status)
	require.Eventually(t, func() bool { status, _ := s.readyz(); return status == http.StatusOK }, 10*time.Second, 50*time.Millisecond)

	proxy.Cut()
	var body map[string]any
	assert.Eventually(t, func() bool {
		var status int
		status, body = s.readyz()
		return status == http.StatusServiceUnavailable && failing(body, "pubsub") != ""
	}, 10*time.Second, 50*time.Millisecond, "readyz names the pub/sub: %v", body)

	proxy.Restore()
	require.Equal(t, http.StatusOK, s.postUser("auth0|n2", "n2@example.com").Status, "ingest goes on: the store is the outbox")
	assert.Eventually(t, func() bool {
		var status int
		status, body = s.readyz()
		return status == http.StatusOK
	}, 20*time.Second, 100*time.Millisecond, "ready again once NATS is back: %v", body)
}
