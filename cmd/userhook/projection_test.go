package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/projection"
	projsqlite "github.com/userhook/userhook/projection/sqlite"
)

var update = flag.Bool("update", false, "rewrite golden files")

// read sends an authenticated GET with the read key.
func (s *testServer) read(path string, headers ...string) response {
	s.t.Helper()
	return s.authed(http.MethodGet, path, "", readKey, headers...)
}

func TestReadYourWrites(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("auth0|ryw%d", i)
		w := s.postUser(id, fmt.Sprintf("ryw%d@example.com", i))
		require.Equal(t, http.StatusOK, w.Status)
		pos := w.Header.Get("X-Event-Position")
		r := s.read("/users/" + url.PathEscape(id) + "?minPosition=" + pos)
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		got, err := strconv.ParseInt(r.Header.Get("X-Projection-Position"), 10, 64)
		require.NoError(t, err)
		want, _ := strconv.ParseInt(pos, 10, 64)
		assert.GreaterOrEqual(t, got, want)
		body := r.JSON(t)
		assert.Equal(t, id, body["userId"])
		assert.Equal(t, fmt.Sprintf("ryw%d@example.com", i), body["email"])
		assert.Equal(t, "active", body["status"])
		assert.EqualValues(t, 1, body["version"])
		assert.Equal(t, map[string]any{}, body["profile"])
		assert.NotEmpty(t, body["createdAt"])
	}

	t.Run("the header form waits too", func(t *testing.T) {
		w := s.postUser("auth0|hdr", "hdr@example.com")
		r := s.read("/users/auth0%7Chdr", "X-Min-Position", w.Header.Get("X-Event-Position"))
		assert.Equal(t, http.StatusOK, r.Status)
	})
	t.Run("a position not reached in 5 s is a 503 with Retry-After", func(t *testing.T) {
		start := time.Now()
		r := s.read("/users/auth0%7Chdr?minPosition=1000000")
		assertErrorBody(t, r, http.StatusServiceUnavailable)
		assert.Equal(t, "1", r.Header.Get("Retry-After"))
		assert.NotEmpty(t, r.Header.Get("X-Projection-Position"))
		assert.GreaterOrEqual(t, time.Since(start), 4*time.Second)
	})
	t.Run("bad minPosition", func(t *testing.T) {
		assertErrorBody(t, s.read("/users/auth0%7Chdr?minPosition=-1"), http.StatusBadRequest)
		assertErrorBody(t, s.read("/users/auth0%7Chdr?minPosition=abc"), http.StatusBadRequest)
	})
	t.Run("unknown user", func(t *testing.T) {
		r := s.read("/users/nobody")
		assertErrorBody(t, r, http.StatusNotFound)
		assert.NotEmpty(t, r.Header.Get("X-Projection-Position"))
		assertErrorBody(t, s.read("/users/nobody/events"), http.StatusNotFound)
	})
	t.Run("roles", func(t *testing.T) {
		assertErrorBody(t, s.authed(http.MethodGet, "/users", "", ingestKey), http.StatusForbidden)
		assert.Equal(t, http.StatusOK, s.authed(http.MethodGet, "/users", "", adminKey).Status)
		assertErrorBody(t, s.do(http.MethodGet, "/users", ""), http.StatusUnauthorized)
	})
}

// waitProjected posts nothing and waits until the read model reached the store's last position.
func (s *testServer) waitProjected() int64 {
	s.t.Helper()
	last, err := s.Main.storage.events.LastPosition(context.Background())
	require.NoError(s.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = s.Main.tracker.WaitFor(ctx, last)
	require.NoError(s.t, err, "the projection reaches position %d", last)
	return last
}

func TestListUsersPaginationAndFilters(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	for i := 0; i < 25; i++ {
		require.Equal(t, http.StatusOK, s.postUser(fmt.Sprintf("auth0|p%02d", i), fmt.Sprintf("p%02d@example.com", i)).Status)
	}
	last := s.waitProjected()

	seen := map[string]int{}
	var order []string
	cursor := ""
	pages := 0
	for {
		path := "/users?limit=7&minPosition=" + strconv.FormatInt(last, 10)
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		r := s.read(path)
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		var page struct {
			Users      []map[string]any `json:"users"`
			NextCursor *string          `json:"nextCursor"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &page))
		pages++
		assert.LessOrEqual(t, len(page.Users), 7)
		for _, u := range page.Users {
			id := u["userId"].(string)
			seen[id]++
			order = append(order, id)
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
		require.Less(t, pages, 10, "pagination ends")
	}
	assert.Equal(t, 4, pages)
	assert.Len(t, seen, 25)
	for id, n := range seen {
		assert.Equal(t, 1, n, "%s seen once", id)
	}
	for i := 1; i < len(order); i++ {
		assert.Less(t, order[i-1], order[i], "stable order")
	}

	t.Run("exactly one page has nextCursor null", func(t *testing.T) {
		r := s.read("/users?limit=25")
		assert.Contains(t, string(r.Body), `"nextCursor":null`)
		r = s.read("/users?limit=1000")
		assert.Contains(t, string(r.Body), `"nextCursor":null`)
	})
	t.Run("email filter is exact and case-insensitive", func(t *testing.T) {
		r := s.read("/users?email=" + url.QueryEscape("P07@Example.com"))
		require.Equal(t, http.StatusOK, r.Status)
		var page struct{ Users []map[string]any }
		require.NoError(t, json.Unmarshal(r.Body, &page))
		require.Len(t, page.Users, 1)
		assert.Equal(t, "auth0|p07", page.Users[0]["userId"])
	})
	t.Run("status filter", func(t *testing.T) {
		r := s.read("/users?status=deleted")
		require.Equal(t, http.StatusOK, r.Status)
		assert.JSONEq(t, `{"users":[],"nextCursor":null}`, string(r.Body), "an empty page is an empty list")
		r = s.read("/users?status=active&limit=1000")
		var page struct{ Users []map[string]any }
		require.NoError(t, json.Unmarshal(r.Body, &page))
		assert.Len(t, page.Users, 25)
	})
	t.Run("bad parameters are reported together", func(t *testing.T) {
		r := s.read("/users?limit=1001&status=gone&cursor=%25%25&colour=red")
		body := assertErrorBody(t, r, http.StatusBadRequest)
		var fields []string
		for _, d := range body["details"].([]any) {
			fields = append(fields, d.(map[string]any)["field"].(string))
		}
		assert.ElementsMatch(t, []string{"limit", "status", "cursor", "colour"}, fields)
	})
}

func TestEventFeeds(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	require.Equal(t, http.StatusOK, s.postUser("auth0|f1", "f1@example.com").Status)
	require.Equal(t, http.StatusOK, s.postUser("auth0|f2", "f2@example.com").Status)
	require.Equal(t, http.StatusOK, s.postUser("auth0|f1", "f1-new@example.com").Status)

	r := s.read("/users/auth0%7Cf1/events")
	require.Equal(t, http.StatusOK, r.Status)
	var stream struct {
		Events []struct {
			Position   int64           `json:"position"`
			Version    int64           `json:"version"`
			Type       string          `json:"type"`
			EventID    string          `json:"eventId"`
			OccurredAt time.Time       `json:"occurredAt"`
			RecordedAt time.Time       `json:"recordedAt"`
			Data       json.RawMessage `json:"data"`
		} `json:"events"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &stream))
	require.Len(t, stream.Events, 2)
	assert.Equal(t, []int64{1, 3}, []int64{stream.Events[0].Position, stream.Events[1].Position})
	assert.Equal(t, []int64{1, 2}, []int64{stream.Events[0].Version, stream.Events[1].Version})
	assert.Equal(t, "user.email_changed.v1", stream.Events[1].Type)
	assert.JSONEq(t, `{"email":"f1-new@example.com","previous":"f1@example.com"}`, string(stream.Events[1].Data))
	assert.NotEmpty(t, stream.Events[0].EventID)
	assert.False(t, stream.Events[0].RecordedAt.IsZero())

	var positions []int64
	from := "1"
	for {
		r := s.read("/api/events?limit=2&from=" + from)
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		var feed struct {
			Events   []struct{ Position int64 } `json:"events"`
			NextFrom int64                      `json:"nextFrom"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &feed))
		if len(feed.Events) == 0 {
			break
		}
		for _, e := range feed.Events {
			positions = append(positions, e.Position)
		}
		from = strconv.FormatInt(feed.NextFrom, 10)
	}
	assert.Equal(t, []int64{1, 2, 3}, positions, "the feed is every event once, in increasing order")
	assertErrorBody(t, s.read("/api/events?from=x"), http.StatusBadRequest)
	assertErrorBody(t, s.authed(http.MethodGet, "/api/events", "", ingestKey), http.StatusForbidden)
}

// TestProjectionConvergesAfterFailures fails the projection mid-stream, both with failing messages and
// with a restart of the whole program, and shows the read model ends exactly as a replay builds it.
func TestProjectionConvergesAfterFailures(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	s := startServer(t, cfg)
	s.Main.users.FailNext.Store(5)

	var wg sync.WaitGroup
	var acked sync.Map
	post := func(s *testServer, from, to int) {
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := from + w; i < to; i += 4 {
					body := fmt.Sprintf(`{"detail":{"data":{"user_name":"c%03d-%d@example.com","user_id":"auth0|c%03d"}}}`, i%40, i, i%40)
					req, _ := http.NewRequest(http.MethodPost, s.URL+"/users", strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+token(t))
					req.Header.Set("X-API-Key", ingestKey)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						return // the server is going away
					}
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						acked.Store(i, true)
					}
				}
			}(w)
		}
	}
	post(s, 0, 400)
	require.Eventually(t, func() bool {
		n := 0
		acked.Range(func(any, any) bool { n++; return true })
		return n >= 60
	}, 10*time.Second, time.Millisecond)
	assert.Eventually(t, func() bool { return s.Main.users.FailNext.Load() <= 0 }, 5*time.Second, time.Millisecond,
		"the injected failures happened")
	require.NoError(t, s.Main.Close(), "the program stops mid-stream, writers still posting")
	wg.Wait()

	s = startServer(t, cfg)
	post(s, 400, 480)
	wg.Wait()
	s.waitProjected()
	live, err := s.Main.storage.reads.Rows(context.Background())
	require.NoError(t, err)
	require.Len(t, live, 40)

	// A replay into a fresh read model of another database file gives the same rows, twice.
	replayed := replayCopy(t, s)
	assert.Equal(t, live, replayed)
	assert.Equal(t, replayed, replayCopy(t, s), "replay is deterministic")
}

// replayCopy copies the store's events into a fresh database and replays them there.
func replayCopy(t *testing.T, s *testServer) []string {
	t.Helper()
	ctx := context.Background()
	_, err := projection.Replay(ctx, s.Main.storage.events, s.Main.storage.reads, nil)
	require.NoError(t, err)
	rows, err := s.Main.storage.reads.Rows(ctx)
	require.NoError(t, err)
	return rows
}

func TestReplayCommandMatchesLiveReadModel(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	s := startServer(t, cfg)
	for i := 0; i < 30; i++ {
		require.Equal(t, http.StatusOK, s.postUser(fmt.Sprintf("auth0|r%d", i%10), fmt.Sprintf("r%d-%d@example.com", i%10, i)).Status)
	}
	s.waitProjected()
	live, err := s.Main.storage.reads.Rows(context.Background())
	require.NoError(t, err)
	require.NoError(t, s.Main.Close())

	var out, errOut strings.Builder
	require.NoError(t, run(context.Background(), []string{"replay", "--database", cfg.Database}, func(string) string { return "" }, &out, &errOut))
	assert.Regexp(t, `^replayed 30 events into 10 users up to position 30 in [0-9.]+ s \([0-9]+ events/s\)\n$`, out.String())

	rm := openReadModel(t, cfg.Database)
	after, err := rm.Rows(context.Background())
	require.NoError(t, err)
	assert.Equal(t, live, after, "replay rebuilds byte-identical rows")
}

func openReadModel(t *testing.T, path string) projection.ReadModel {
	t.Helper()
	st, err := openStorage(context.Background(), Config{Database: path, LogLevel: "info"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	var _ *projsqlite.ReadModel = st.reads.(*projsqlite.ReadModel)
	return st.reads
}

func TestEventsCommand(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	s := startServer(t, cfg)
	require.Equal(t, http.StatusOK, s.postUser("auth0|e1", "e1@example.com").Status)
	require.Equal(t, http.StatusOK, s.postUser("auth0|e2", "e2@example.com").Status)
	require.Equal(t, http.StatusOK, s.postUser("auth0|e1", "e1b@example.com").Status)
	env := func(string) string { return "" }

	var out strings.Builder
	require.NoError(t, run(context.Background(), []string{"events", "--database", cfg.Database}, env, &out, &strings.Builder{}))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 3)
	for i, line := range lines {
		var e struct {
			Position int64  `json:"position"`
			UserID   string `json:"userId"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &e))
		assert.Equal(t, int64(i+1), e.Position)
	}

	out.Reset()
	require.NoError(t, run(context.Background(), []string{"events", "--database", cfg.Database, "--stream", "auth0|e1", "--from", "2"}, env, &out, &strings.Builder{}))
	lines = strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 1)
	assert.Contains(t, lines[0], `"position":3`)

	t.Run("follow prints new events until stopped", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		buf := &syncBuffer{}
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"events", "--database", cfg.Database, "--from", "4", "--follow", "--poll", "20ms"}, env, buf, &strings.Builder{})
		}()
		require.Equal(t, http.StatusOK, s.postUser("auth0|e3", "e3@example.com").Status)
		require.Eventually(t, func() bool { return strings.Contains(buf.String(), `"userId":"auth0|e3"`) }, 5*time.Second, 10*time.Millisecond)
		cancel()
		require.NoError(t, <-done)
		assert.Equal(t, 1, strings.Count(buf.String(), "\n"))
	})
}

// TestGoldenReadModel runs the provider payloads in testdata through the whole pipeline and compares the
// users rows with testdata/golden/users.golden (regenerate: go test ./cmd/userhook -run Golden -update).
func TestGoldenReadModel(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	clock := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	logs := &syncBuffer{}
	m := &Main{Config: cfg, Stderr: logs, UnbufferedLogs: true, Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Second)
		return clock
	}}
	require.NoError(t, m.Run(context.Background()))
	t.Cleanup(func() { _ = m.Close() })
	s := &testServer{t: t, Main: m, URL: m.URL(), logs: logs}

	const structured, batch = "application/cloudevents+json", "application/cloudevents-batch+json"
	steps := []struct{ path, file, contentType string }{
		{"/users", "auth0/post-login.json", "application/json"},
		{"/users", "auth0/post-registration.json", "application/json"},
		{"/users", "auth0/post-login.json", "application/json"},
		{"/users", "auth0/email-change.json", "application/json"},
		{"/events", "cloudevents/authpi-user-created.json", structured},
		{"/events", "cloudevents/authpi-user-updated.json", structured},
		{"/events", "cloudevents/authpi-email-verified.json", structured},
		{"/events", "cloudevents/structured-user-created.json", structured},
		{"/events", "cloudevents/authpi-user-deleted.json", structured},
		{"/events", "cloudevents/batch.json", batch},
		{"/events", "cloudevents/authpi-user-created.json", structured},
	}
	for _, st := range steps {
		body, err := os.ReadFile(filepath.Join("..", "..", "testdata", st.file))
		require.NoError(t, err)
		r := s.authed(http.MethodPost, st.path, string(body), ingestKey, "Content-Type", st.contentType)
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", st.file, r.Body)
	}
	s.waitProjected()
	rows, err := m.storage.reads.Rows(context.Background())
	require.NoError(t, err)
	got := strings.Join(rows, "\n") + "\n"
	golden := filepath.Join("..", "..", "testdata", "golden", "users.golden")
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(golden), 0o755))
		require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err, "run with -update to create the golden file")
	assert.Equal(t, string(want), got)
}
