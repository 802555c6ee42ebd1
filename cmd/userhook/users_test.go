package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/aggregate"
)

// events returns the stored stream of a user, straight from the store.
func (s *testServer) events(userID string) []string {
	s.t.Helper()
	evs, err := s.Main.storage.events.Load(context.Background(), userID)
	require.NoError(s.t, err)
	types := make([]string, len(evs))
	for i, e := range evs {
		types[i] = e.Type
	}
	return types
}

func (s *testServer) allEvents() int {
	s.t.Helper()
	evs, err := s.Main.storage.events.ReadAll(context.Background(), 0, 100000)
	require.NoError(s.t, err)
	return len(evs)
}

func assertErrorBody(t *testing.T, r response, status int) map[string]any {
	t.Helper()
	require.Equal(t, status, r.Status, "body: %s", r.Body)
	body := r.JSON(t)
	assert.Equal(t, http.StatusText(status), body["error"])
	assert.EqualValues(t, status, body["code"])
	assert.NotEmpty(t, body["message"])
	assert.NotEmpty(t, r.Header.Get("X-Request-Id"))
	assert.Equal(t, r.Header.Get("X-Request-Id"), body["requestId"])
	assert.True(t, strings.HasPrefix(r.Header.Get("X-Request-Id"), "req_"))
	return body
}

func TestPostUsersEnsureExists(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))

	first := s.postUser("auth0|abc", "user@example.com")
	require.Equal(t, http.StatusOK, first.Status, "body: %s", first.Body)
	assert.JSONEq(t, `{"success":true,"userId":"auth0|abc","email":"user@example.com"}`, string(first.Body))
	assert.Equal(t, "1", first.Header.Get("X-Event-Position"))
	assert.NotEmpty(t, first.Header.Get("X-Request-Id"))
	assert.Equal(t, []string{aggregate.TypeUserRegistered}, s.events("auth0|abc"))

	t.Run("identical repeat answers the same and writes nothing", func(t *testing.T) {
		again := s.postUser("auth0|abc", "user@example.com")
		require.Equal(t, http.StatusOK, again.Status)
		assert.JSONEq(t, string(first.Body), string(again.Body))
		assert.Equal(t, "1", again.Header.Get("X-Event-Position"))
		assert.NotEqual(t, first.Header.Get("X-Request-Id"), again.Header.Get("X-Request-Id"))
		assert.Equal(t, 1, s.allEvents())
	})

	t.Run("a new email records an email change", func(t *testing.T) {
		r := s.postUser("auth0|abc", "new@example.com")
		require.Equal(t, http.StatusOK, r.Status)
		assert.JSONEq(t, `{"success":true,"userId":"auth0|abc","email":"new@example.com"}`, string(r.Body))
		assert.Equal(t, "2", r.Header.Get("X-Event-Position"))
		assert.Equal(t, []string{aggregate.TypeUserRegistered, aggregate.TypeUserEmailChanged}, s.events("auth0|abc"))
	})

	t.Run("a deleted user posted again is restored", func(t *testing.T) {
		del := s.authed(http.MethodPost, "/events", `{"specversion":"1.0","id":"del-1","source":"test","type":"user.deleted","subject":"auth0|abc"}`,
			ingestKey, "Content-Type", "application/cloudevents+json")
		require.Equal(t, http.StatusOK, del.Status, "body: %s", del.Body)
		require.Contains(t, string(del.Body), `"status":"applied"`)
		r := s.postUser("auth0|abc", "new@example.com")
		require.Equal(t, http.StatusOK, r.Status)
		assert.Equal(t, "4", r.Header.Get("X-Event-Position"))
		assert.Equal(t, []string{aggregate.TypeUserRegistered, aggregate.TypeUserEmailChanged,
			aggregate.TypeUserDeleted, aggregate.TypeUserRestored}, s.events("auth0|abc"))
		u, err := aggregate.NewService(s.Main.storage.events, nil).Load(context.Background(), "auth0|abc")
		require.NoError(t, err)
		assert.Equal(t, aggregate.StatusActive, u.Status)
	})

	t.Run("positions are per store, not per user", func(t *testing.T) {
		r := s.postUser("auth0|other", "other@example.com")
		require.Equal(t, http.StatusOK, r.Status)
		assert.Equal(t, "5", r.Header.Get("X-Event-Position"))
	})
}

func TestPostUsersConcurrentFirstCallsStoreOnce(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	var wg sync.WaitGroup
	statuses := make([]int, 20)
	positions := make([]string, 20)
	for i := range statuses {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := s.postUser("auth0|race", "race@example.com")
			statuses[i], positions[i] = r.Status, r.Header.Get("X-Event-Position")
		}(i)
	}
	wg.Wait()
	for i := range statuses {
		assert.Equal(t, http.StatusOK, statuses[i])
		assert.Equal(t, "1", positions[i])
	}
	assert.Equal(t, []string{aggregate.TypeUserRegistered}, s.events("auth0|race"))
}

func TestPostUsersBadInput(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	long := strings.Repeat("x", 256)
	cases := []struct {
		name        string
		body        string
		contentType string
		status      int
		fields      []string
	}{
		{"invalid email", `{"detail":{"data":{"user_name":"not-an-email","user_id":"auth0|a"}}}`, "application/json", 400, []string{"email"}},
		{"missing email", `{"detail":{"data":{"user_id":"auth0|a"}}}`, "application/json", 400, []string{"email"}},
		{"missing user id", `{"detail":{"data":{"user_name":"a@example.com"}}}`, "application/json", 400, []string{"user_id"}},
		{"both at once", `{"detail":{"data":{"user_name":"bad","user_id":""}}}`, "application/json", 400, []string{"email", "user_id"}},
		{"user id too long", `{"detail":{"data":{"user_name":"a@example.com","user_id":"` + long + `"}}}`, "application/json", 400, []string{"user_id"}},
		{"control character in user id", `{"detail":{"data":{"user_name":"a@example.com","user_id":"a\u0000b"}}}`, "application/json", 400, []string{"user_id"}},
		{"email with display name", `{"detail":{"data":{"user_name":"Bob <bob@example.com>","user_id":"auth0|a"}}}`, "application/json", 400, []string{"email"}},
		{"user id of the wrong type", `{"detail":{"data":{"user_name":"a@example.com","user_id":42}}}`, "application/json", 400, []string{"user_id"}},
		{"not JSON", `detail=1`, "application/json", 400, nil},
		{"truncated JSON", `{"detail":{"data":{"user_name":"a@example.com"`, "application/json", 400, nil},
		{"empty body", ``, "application/json", 400, nil},
		{"trailing data", `{"detail":{"data":{"user_name":"a@example.com","user_id":"auth0|a"}}} {}`, "application/json", 400, nil},
		{"form content type", `detail=1`, "application/x-www-form-urlencoded", 415, nil},
		{"body over 1 MiB", `{"detail":{"data":{"user_name":"a@example.com","user_id":"auth0|a","pad":"` + strings.Repeat("p", 1<<20) + `"}}}`, "application/json", 413, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(http.MethodPost, "/users", tc.body, "Authorization", "Bearer "+token(t), "X-API-Key", ingestKey, "Content-Type", tc.contentType)
			body := assertErrorBody(t, r, tc.status)
			if tc.status == 400 && tc.fields == nil {
				assert.Nil(t, body["details"])
			}
			if tc.fields != nil {
				details, ok := body["details"].([]any)
				require.True(t, ok, "details: %s", r.Body)
				var got []string
				for _, d := range details {
					got = append(got, d.(map[string]any)["field"].(string))
					assert.NotEmpty(t, d.(map[string]any)["message"])
				}
				assert.Equal(t, tc.fields, got)
			}
		})
	}
	assert.Equal(t, 0, s.allEvents(), "bad input stores nothing")
}

func TestPostUsersInvalidEmailMessage(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	r := s.postUser("auth0|a", "user@@example")
	body := assertErrorBody(t, r, 400)
	assert.Equal(t, "The request contains invalid parameters or malformed data", body["message"])
	assert.Equal(t, []any{map[string]any{"field": "email", "message": "Invalid email format"}}, body["details"])
}

func TestInternalErrorHidesDetails(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	require.NoError(t, s.Main.storage.events.Close()) // every append now fails inside the store
	r := s.postUser("auth0|a", "a@example.com")
	body := assertErrorBody(t, r, 500)
	assert.Equal(t, "An unexpected error occurred on the server", body["message"])
	assert.NotContains(t, string(r.Body), "eventstore")
	assert.Contains(t, s.logs.String(), body["requestId"], "the unexpected error is logged with its request id")
	assert.Contains(t, s.logs.String(), "eventstore: closed")
}

func TestUnknownRouteAndMethod(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	assertErrorBody(t, s.do(http.MethodGet, "/nope", ""), 404)
	assertErrorBody(t, s.do(http.MethodDelete, "/users", ""), 405)
}

func TestHealth(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	assert.Equal(t, http.StatusOK, s.do(http.MethodGet, "/healthz", "").Status)
	require.Equal(t, http.StatusOK, s.postUser("auth0|h", "h@example.com").Status)
	s.waitProjected()
	want := `{"status":"ready","relay":"leading",
		"checks":{"store":"ok","pubsub":"ok","users-projection":"ok","webhook-deliveries":"ok"},
		"positions":{"store":1,"relay":1,"users-projection":1,"webhook-deliveries":1},
		"lag":{"users-projection":0,"webhook-deliveries":0}}`
	var ready response
	assert.Eventually(t, func() bool {
		ready = s.do(http.MethodGet, "/readyz", "")
		return ready.Status == http.StatusOK && assert.ObjectsAreEqual(jsonValue(t, want), jsonValue(t, string(ready.Body)))
	}, 5*time.Second, 10*time.Millisecond, "readyz shows the positions: %s", ready.Body)
	require.NoError(t, s.sqliteDB().Read.Close())
	notReady := s.do(http.MethodGet, "/readyz", "")
	assert.Equal(t, http.StatusServiceUnavailable, notReady.Status)
	assert.Contains(t, string(notReady.Body), `"users-projection":"failing"`, "positions cannot be read")
	assert.Equal(t, http.StatusOK, s.do(http.MethodGet, "/healthz", "").Status, "the process is still up")
}

func jsonValue(t *testing.T, s string) any {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal([]byte(s), &v))
	return v
}

func TestGracefulShutdownKeepsAcknowledgedEvents(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	s := startServer(t, cfg)
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[string]bool{}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				id := "auth0|g" + strconv.Itoa(w) + "-" + strconv.Itoa(i)
				r, err := tryPost(s.URL, id)
				if err != nil {
					return
				}
				if r == http.StatusOK {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				}
			}
		}(w)
	}
	go func() { _ = s.Main.Close() }()
	wg.Wait()
	require.NoError(t, s.Main.Close())

	again := startServer(t, cfg)
	for id := range acked {
		assert.Equal(t, []string{aggregate.TypeUserRegistered}, again.events(id), "acknowledged %s survived the shutdown", id)
	}
}

func TestReadyzWhenTheProjectionStops(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	require.Equal(t, http.StatusOK, s.do(http.MethodGet, "/readyz", "").Status)
	require.NoError(t, s.Main.pipeline.Close()) // the router and the relay stop; the HTTP server goes on
	r := s.do(http.MethodGet, "/readyz", "")
	assert.Equal(t, http.StatusServiceUnavailable, r.Status)
	assert.Contains(t, string(r.Body), `"users-projection":"failing"`)
	assert.Contains(t, string(r.Body), `"webhook-deliveries":"failing"`)
	assert.Equal(t, http.StatusOK, s.do(http.MethodGet, "/healthz", "").Status)
}

func TestHealthAnswersHEAD(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	for _, path := range []string{"/healthz", "/readyz"} {
		r := s.do(http.MethodHead, path, "")
		assert.Equal(t, http.StatusOK, r.Status, path)
		assert.Empty(t, r.Body, path)
	}
}
