package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nats-io/nats.go"

	"github.com/userhook/userhook/internal/postgresdb/pgtest"
	"github.com/userhook/userhook/stream"
)

// natsURL is the JetStream server of the integration tests: skipped with a message without
// USERHOOK_TEST_NATS, a failure when it is set but unreachable.
func natsURL(t *testing.T) string {
	t.Helper()
	raw := os.Getenv("USERHOOK_TEST_NATS")
	if raw == "" {
		t.Skip("NATS integration test skipped: set USERHOOK_TEST_NATS (for example nats://127.0.0.1:4222)")
	}
	u, err := url.Parse(raw)
	require.NoError(t, err)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatalf("USERHOOK_TEST_NATS is set but NATS cannot be reached: %v", err)
	}
	conn.Close()
	return raw
}

// instance is one `userhook serve` process of a scaled-out deployment.
type instance struct {
	*process
	name string
}

func (in *instance) post(t *testing.T, path, body, contentType string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, in.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+token(t))
	req.Header.Set("X-API-Key", adminKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func (in *instance) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, in.URL+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token(t))
	req.Header.Set("X-API-Key", adminKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// allUsers pages through GET /users and returns the bodies of every user, in order.
func (in *instance) allUsers(t *testing.T, minPosition string) []string {
	t.Helper()
	var out []string
	cursor := ""
	for {
		path := "/users?limit=1000&minPosition=" + minPosition
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		status, body := in.get(t, path)
		require.Equal(t, http.StatusOK, status, "%s: %s", in.name, body)
		var page struct {
			Users      []json.RawMessage `json:"users"`
			NextCursor *string           `json:"nextCursor"`
		}
		require.NoError(t, json.Unmarshal(body, &page))
		for _, u := range page.Users {
			out = append(out, string(u))
		}
		if page.NextCursor == nil {
			return out
		}
		cursor = *page.NextCursor
	}
}

func (in *instance) leading(t *testing.T) bool {
	t.Helper()
	resp, err := http.Get(in.URL + "/readyz")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body struct {
		Relay string `json:"relay"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return body.Relay == "leading"
}

// TestIntegrationScaleOut runs two serve processes on one PostgreSQL database and one NATS JetStream:
// concurrent copies of one event split across both are stored once, 500 users across both make one read
// model that both serve, every webhook delivery is sent once, and when the instance running the relay is
// killed the other takes over with nothing lost.
func TestIntegrationScaleOut(t *testing.T) {
	db := pgtest.URL(t)
	nurl := natsURL(t)
	ns := fmt.Sprintf("t%d_", time.Now().UnixNano())
	t.Cleanup(func() {
		// The test's JetStream stream (and its consumers) go with it.
		if nc, err := nats.Connect(nurl); err == nil {
			if js, err := nc.JetStream(); err == nil {
				_ = js.DeleteStream(ns + stream.UsersTopic)
			}
			nc.Close()
		}
	})

	var mu sync.Mutex
	deliveries := map[string]int{} // event id -> deliveries received
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			ID string `json:"id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&ev)
		mu.Lock()
		deliveries[ev.ID]++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	env := []string{
		"USERHOOK_DATABASE=" + db, "USERHOOK_PUBSUB=" + nurl, "USERHOOK_NATS_NAMESPACE=" + ns,
		"USERHOOK_JWT_SECRET=" + testSecret, "USERHOOK_API_KEYS=" + adminKey + ":admin",
		"USERHOOK_WEBHOOK_ALLOW_PRIVATE=true", "USERHOOK_LOG_LEVEL=info",
	}
	a := &instance{process: startBinary(t, env), name: "a"}
	b := &instance{process: startBinary(t, env), name: "b"}
	both := []*instance{a, b}

	status, _, body := a.post(t, "/api/webhooks", `{"name":"all","url":"`+receiver.URL+`","events":["all"]}`, "application/json")
	require.Equal(t, http.StatusCreated, status, "%s", body)
	var hook struct{ Data whWebhook }
	require.NoError(t, json.Unmarshal(body, &hook))

	// 20 concurrent copies of one event, split across both instances.
	ce := `{"specversion":"1.0","id":"dup-1","source":"https://idp.example.com","type":"user.created","subject":"dup-user","data":{"email":"dup@example.com"}}`
	start := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]string, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			status, _, body := both[i%2].post(t, "/events", ce, "application/cloudevents+json")
			assert.Equal(t, http.StatusOK, status, "%s", body)
			var r struct {
				Results []struct{ Status string } `json:"results"`
			}
			_ = json.Unmarshal(body, &r)
			if len(r.Results) == 1 {
				results[i] = r.Results[0].Status
			}
		}(i)
	}
	close(start)
	wg.Wait()
	counts := map[string]int{}
	for _, s := range results {
		counts[s]++
	}
	assert.Equal(t, map[string]int{"applied": 1, "duplicate": 19}, counts)

	// 500 distinct users across both instances.
	var lastMu sync.Mutex
	last := "0"
	for w := 0; w < 10; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < 500; i += 10 {
				body := fmt.Sprintf(`{"detail":{"data":{"user_name":"s%03d@example.com","user_id":"auth0|s%03d"}}}`, i, i)
				status, h, resp := both[i%2].post(t, "/users", body, "application/json")
				if !assert.Equal(t, http.StatusOK, status, "%s", resp) {
					return
				}
				lastMu.Lock()
				if p := h.Get("X-Event-Position"); len(p) > len(last) || len(p) == len(last) && p > last {
					last = p
				}
				lastMu.Unlock()
			}
		}(w)
	}
	wg.Wait()

	usersA := a.allUsers(t, last)
	usersB := b.allUsers(t, last)
	assert.Len(t, usersA, 501)
	assert.Equal(t, usersA, usersB, "the read model is the same from either instance")
	status, body = a.get(t, "/api/events?limit=1000")
	require.Equal(t, http.StatusOK, status)
	var feed struct {
		Events []struct {
			Position int64  `json:"position"`
			EventID  string `json:"eventId"`
		} `json:"events"`
	}
	require.NoError(t, json.Unmarshal(body, &feed))
	require.Len(t, feed.Events, 501, "each event stored once")
	for i, e := range feed.Events {
		assert.Equal(t, int64(i+1), e.Position, "positions have no gaps")
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(deliveries) == 501
	}, 30*time.Second, 50*time.Millisecond, "every event is delivered")
	// Once no delivery is pending, each was sent for the last time and its outcome recorded, by whichever
	// instance leased it: the receiver has got every copy it will get.
	require.Eventually(t, func() bool {
		var pending whDeliveryPage
		_, err := whFetch(a.URL, "/api/webhooks/"+hook.Data.ID+"/deliveries?status=pending&limit=1", &pending)
		return err == nil && len(pending.Data) == 0
	}, 30*time.Second, 50*time.Millisecond, "no delivery is pending")
	mu.Lock()
	for id, n := range deliveries {
		assert.Equal(t, 1, n, "event %s delivered once", id)
	}
	mu.Unlock()

	// Kill the instance that runs the relay; the other takes over and nothing is lost.
	var leader, survivor *instance
	require.Eventually(t, func() bool {
		switch {
		case a.leading(t):
			leader, survivor = a, b
		case b.leading(t):
			leader, survivor = b, a
		}
		return leader != nil
	}, 10*time.Second, 50*time.Millisecond, "one instance runs the relay")
	assert.False(t, survivor.leading(t), "only one instance runs the relay")
	require.NoError(t, leader.cmd.Process.Signal(syscall.SIGKILL))
	_, _ = leader.cmd.Process.Wait()

	for i := 500; i < 520; i++ {
		body := fmt.Sprintf(`{"detail":{"data":{"user_name":"s%03d@example.com","user_id":"auth0|s%03d"}}}`, i, i)
		status, h, resp := survivor.post(t, "/users", body, "application/json")
		require.Equal(t, http.StatusOK, status, "%s", resp)
		last = h.Get("X-Event-Position")
	}
	require.Eventually(t, func() bool { return survivor.leading(t) }, 15*time.Second, 100*time.Millisecond,
		"the survivor takes the relay over")
	assert.Len(t, survivor.allUsers(t, last), 521, "events written after the failover reach the read model")
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(deliveries) == 521
	}, 30*time.Second, 50*time.Millisecond, "and are delivered")
}
