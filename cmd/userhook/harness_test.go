package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/internal/sqlitedb"
	"github.com/userhook/userhook/transport"
)

// testSecret is the HS256 secret of test servers.
const testSecret = "test-secret-0123456789abcdef0123456789"

// Bootstrap keys of test servers, one per role.
const (
	ingestKey = "ingest-key-0123456789abcdef"
	readKey   = "read-key-0123456789abcdef0"
	adminKey  = "admin-key-0123456789abcdef"
)

// testServer is a running userhook on a free loopback port.
type testServer struct {
	t    *testing.T
	Main *Main
	URL  string
	logs *syncBuffer
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testConfig is a serve configuration on a fresh database in t's temporary directory.
func testConfig(t *testing.T) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Database = filepath.Join(t.TempDir(), "userhook.db")
	cfg.JWTSecret = testSecret
	cfg.APIKeys = ingestKey + ":ingest," + readKey + ":read," + adminKey + ":admin"
	cfg.LogLevel = "debug"
	return cfg
}

// parseServe reads a serve command line and its variables into the configuration, as run does.
func parseServe(args []string, env map[string]string) (Config, error) {
	var c cli
	parser, err := newParser(&c, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err != nil {
		return Config{}, err
	}
	_, err = parser.Parse(append([]string{"serve"}, args...))
	return Config(c.Serve), err
}

// sqliteDB is the embedded database the server runs on.
func (s *testServer) sqliteDB() *sqlitedb.DB {
	s.t.Helper()
	b, ok := s.Main.backend.(*sqliteBackend)
	require.True(s.t, ok, "the server runs on SQLite")
	return b.db
}

// startServer runs the whole program with cfg until the test ends.
func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	return startMain(t, &Main{Config: cfg})
}

// startMain runs m, set up by the test (its Config, its clock), until the test ends; its output goes to the
// test server's log.
func startMain(t *testing.T, m *Main) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	m.Stderr, m.Stdout, m.UnbufferedLogs = logs, logs, true
	require.NoError(t, m.Run(context.Background()))
	t.Cleanup(func() { _ = m.Close() })
	return &testServer{t: t, Main: m, URL: m.URL(), logs: logs}
}

// testClock is a clock that moves only when the test moves it, for a Main.Now: what would take seconds of
// waiting (a rate limit's bucket refilling) takes an Advance.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.Now()} }

// Now is the clock's time.
func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d.
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// token returns a valid HS256 token for the test secret.
func token(t *testing.T) string {
	t.Helper()
	tok, err := transport.SignToken(transport.TokenRequest{Secret: []byte(testSecret), Subject: "test", TTL: time.Hour})
	require.NoError(t, err)
	return tok
}

// response is a decoded HTTP answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic map.
func (r response) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &m), "body: %s", r.Body)
	return m
}

// do sends a request; headers are name, value pairs.
func (s *testServer) do(method, path string, body string, headers ...string) response {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	require.NoError(s.t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// authed sends a request with a valid token and the given API key.
func (s *testServer) authed(method, path, body, key string, headers ...string) response {
	s.t.Helper()
	h := append([]string{"Authorization", "Bearer " + token(s.t), "X-API-Key", key, "Content-Type", "application/json"}, headers...)
	return s.do(method, path, body, h...)
}

// postUser posts the seed 000 payload for one user with the ingest key.
func (s *testServer) postUser(userID, email string) response {
	s.t.Helper()
	b, err := json.Marshal(map[string]any{"detail": map[string]any{"data": map[string]any{"user_name": email, "user_id": userID}}})
	require.NoError(s.t, err)
	return s.authed(http.MethodPost, "/users", string(b), ingestKey)
}

// tryPost posts one user with plain net/http and reports the status, or the transport error.
func tryPost(base, userID string) (int, error) {
	body := `{"detail":{"data":{"user_name":"u@example.com","user_id":"` + userID + `"}}}`
	req, err := http.NewRequest(http.MethodPost, base+"/users", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	tok, err := transport.SignToken(transport.TokenRequest{Secret: []byte(testSecret), Subject: "test", TTL: time.Hour})
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-API-Key", ingestKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// stringsBuilder is a strings.Builder with a trimmed view, for CLI output.
type stringsBuilder struct{ strings.Builder }

func (b *stringsBuilder) trimmed() string { return strings.TrimSpace(b.String()) }
