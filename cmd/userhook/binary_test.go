package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// buildBinary compiles ./cmd/userhook once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "userhook-bin-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "userhook")
		out, err := exec.Command("go", "build", "-o", binaryPath, ".").CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, binaryErr)
	return binaryPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// process is the real binary running serve.
type process struct {
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	URL    string
}

func startBinary(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	bin := buildBinary(t)
	addr := freeAddr(t)
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Env = append(append(os.Environ(), "USERHOOK_ADDR="+addr), env...)
	p := &process{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, URL: "http://" + addr}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	up := assert.Eventually(t, func() bool {
		resp, err := http.Get(p.URL + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	}, 15*time.Second, 50*time.Millisecond)
	require.True(t, up, "serve did not come up: %s", p.stderr.String())
	return p
}

// printedCurl joins the continuation lines of the curl that serve --dev printed.
func printedCurl(out string) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	on := false
	for sc.Scan() {
		line := sc.Text()
		if !on {
			i := strings.Index(line, "curl ")
			if i < 0 {
				continue
			}
			on, line = true, line[i:]
		}
		cont := strings.HasSuffix(line, "\\")
		lines = append(lines, strings.TrimSuffix(line, "\\"))
		if !cont {
			break
		}
	}
	return strings.Join(lines, " ")
}

func TestBinaryDevCurlAsPrinted(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	dir := t.TempDir()
	p := startBinary(t, []string{"USERHOOK_DATABASE=" + filepath.Join(dir, "dev.db")}, "--dev")
	assert.Eventually(t, func() bool { return strings.Contains(p.stdout.String(), "-d '") }, 5*time.Second, 20*time.Millisecond)
	curl := printedCurl(p.stdout.String())
	require.NotEmpty(t, curl, "serve --dev printed a curl: %s", p.stdout.String())

	out, err := exec.Command("bash", "-c", curl+" -s -o /dev/stderr -w '%{http_code}'").Output()
	require.NoError(t, err)
	assert.Equal(t, "200", string(out))

	// The README's variant reads the credentials --dev wrote beside the database.
	readme := ". " + filepath.Join(dir, "dev.env") + ` && curl -sS -o /dev/null -w '%{http_code}' -X POST "$USERHOOK_URL/users" ` +
		`-H "Content-Type: application/json" -H "Authorization: Bearer $USERHOOK_DEV_TOKEN" -H "X-API-Key: $USERHOOK_DEV_KEY" ` +
		`-d '{"detail":{"data":{"user_name":"user@example.com","user_id":"auth0|abc"}}}'`
	out, err = exec.Command("bash", "-c", readme).Output()
	require.NoError(t, err)
	assert.Equal(t, "200", string(out))

	// SIGTERM: a clean exit that removes the credentials file.
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		assert.NoError(t, err, "exit status after SIGTERM")
	case <-ctx.Done():
		t.Fatal("serve did not stop on SIGTERM")
	}
	_, err = os.Stat(filepath.Join(dir, "dev.env"))
	assert.True(t, os.IsNotExist(err), "dev.env is removed on shutdown")

	// Log lines are buffered; shutdown writes out the rest. Every line is JSON, one per request.
	logs := strings.TrimSpace(p.stderr.String())
	assert.Equal(t, 2, strings.Count(logs, `"route":"/users"`), "a line for each of the two posts: %s", logs)
	for _, line := range strings.Split(logs, "\n") {
		assert.True(t, strings.HasPrefix(line, "{"), "stderr carries JSON log lines only: %q", line)
	}
}

func TestBinaryRefusesToServeWithoutJWTConfig(t *testing.T) {
	bin := buildBinary(t)
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "USERHOOK_ADDR="+freeAddr(t), "USERHOOK_DATABASE="+filepath.Join(t.TempDir(), "x.db"),
		"USERHOOK_JWT_SECRET=", "USERHOOK_JWKS_URL=")
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "USERHOOK_JWT_SECRET")
	assert.Contains(t, string(out), "USERHOOK_JWKS_URL")
}
