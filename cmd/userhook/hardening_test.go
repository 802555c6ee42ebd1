package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBinaryPostgresOpenFailureIsOneLine runs every command that opens the database against a PostgreSQL that
// refuses connections: each exits 1 with one line naming the cause, never a panic (issue 12, defect 3).
func TestBinaryPostgresOpenFailureIsOneLine(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	// A port on loopback that nothing listens on: connection refused at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := "postgres://postgres:s3cret-pw@" + l.Addr().String() + "/nosuch?sslmode=disable&connect_timeout=5"
	require.NoError(t, l.Close())

	for _, args := range [][]string{
		{"serve", "--jwt-secret", strings.Repeat("x", 32), "--addr", "127.0.0.1:0"},
		{"replay"},
		{"apikey", "list"},
		{"events"},
	} {
		t.Run(args[0], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Env = append(os.Environ(), "USERHOOK_DATABASE="+refused, "USERHOOK_PUBSUB=embedded")
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.True(t, errors.As(err, &exit), "the command fails: %v\n%s", err, out)
			assert.Equal(t, 1, exit.ExitCode(), "exit status 1:\n%s", out)
			text := string(out)
			assert.NotContains(t, text, "panic", "no panic")
			assert.NotContains(t, text, "goroutine ", "no stack trace")
			assert.NotContains(t, text, "s3cret-pw", "the password stays out of the message")
			assert.Contains(t, text, "connection refused", "the cause is named")
			last := strings.TrimSpace(text)
			if i := strings.LastIndex(last, "\n"); i >= 0 {
				last = last[i+1:]
			}
			assert.True(t, strings.HasPrefix(last, "userhook: "), "the error is one line starting with userhook: %q", last)
		})
	}
}

// TestBinaryDataFilesArePrivate serves on a fresh data directory and checks that the database and its WAL and
// shared-memory files (which hold outbound webhook secrets) are readable by their owner alone, and the
// directory created for them too (issue 12, defect 5).
func TestBinaryDataFilesArePrivate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	db := filepath.Join(dir, "userhook.db")
	p := startBinary(t, []string{"USERHOOK_DATABASE=" + db}, "--dev")
	// One write, so the WAL holds something.
	resp, err := http.Get(p.URL + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()

	info, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm(), "the data directory")
	for _, name := range []string{"userhook.db", "userhook.db-wal", "userhook.db-shm", "dev.env"} {
		info, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err, name)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), name)
	}
}

// TestBinaryDataFilesMadePrivateOnUpgrade opens a database whose files a release before this fix created
// world-readable: they are made private at start.
func TestBinaryDataFilesMadePrivateOnUpgrade(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "userhook.db")
	res := runCLI(t, nil, "apikey", "list", "--database", db)
	require.NoError(t, res.Err, res.Stderr)
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if _, err := os.Stat(db + suffix); err == nil {
			require.NoError(t, os.Chmod(db+suffix, 0o644))
		}
	}
	res = runCLI(t, nil, "apikey", "list", "--database", db)
	require.NoError(t, res.Err, res.Stderr)
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if info, err := os.Stat(db + suffix); err == nil {
			assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "userhook.db"+suffix)
		}
	}
}

// TestClientThatLeavesIsNoServerError: a client that gives up while its request waits (here for a position
// the read model will not reach) is recorded as 499, not as a 500 with an error in the log.
func TestClientThatLeavesIsNoServerError(t *testing.T) {
	t.Parallel()
	s := startServer(t, testConfig(t))
	req, err := http.NewRequest(http.MethodGet, s.URL+"/users/auth0%7Cnobody?minPosition=1000000", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token(t))
	req.Header.Set("X-API-Key", readKey)
	client := &http.Client{Timeout: 200 * time.Millisecond}
	_, err = client.Do(req)
	require.Error(t, err, "the client gave up")
	require.Eventually(t, func() bool {
		return strings.Contains(string(s.do(http.MethodGet, "/metrics", "").Body), `code="499",method="GET",route="/users/:id"`)
	}, 10*time.Second, 50*time.Millisecond, "the request is recorded as 499")
	assert.NotContains(t, s.logs.String(), `"request failed"`, "nothing failed on the server's side")
}
