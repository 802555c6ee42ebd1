package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/apikey"
)

// cliResult is what one run of the program printed and returned.
type cliResult struct {
	Stdout, Stderr string
	Err            error
}

// runCLI runs the program with args in the environment env (nil: an empty one).
func runCLI(t *testing.T, env map[string]string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, args, func(k string) string { return env[k] }, &stdout, &stderr)
	return cliResult{Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
}

// cliDatabase is a database path in t's temporary directory, not created yet.
func cliDatabase(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "cli.db")
}

var createdKeyID = regexp.MustCompile(`\bkey_[0-9a-f]+\b`)

// createKey runs apikey create and returns the printed key and the id reported on stderr.
func createKey(t *testing.T, database, name, role string) (key, id string) {
	t.Helper()
	res := runCLI(t, nil, "apikey", "create", "--name", name, "--role", role, "--database", database)
	require.NoError(t, res.Err, "stderr: %s", res.Stderr)
	key = strings.TrimSuffix(res.Stdout, "\n")
	require.NotContains(t, key, "\n", "stdout has one line: %q", res.Stdout)
	id = createdKeyID.FindString(res.Stderr)
	require.NotEmpty(t, id, "stderr names the new key's id: %s", res.Stderr)
	return key, id
}

func TestCLIAPIKeyCreatePrintsOneWorkingKey(t *testing.T) {
	t.Parallel()
	database := cliDatabase(t)
	res := runCLI(t, nil, "apikey", "create", "--name", "x", "--role", "ingest", "--database", database)
	require.NoError(t, res.Err, "stderr: %s", res.Stderr)

	lines := strings.Split(strings.TrimSuffix(res.Stdout, "\n"), "\n")
	require.Len(t, lines, 1, "stdout: %q", res.Stdout)
	assert.True(t, strings.HasSuffix(res.Stdout, "\n"), "the line ends with a newline")
	key := lines[0]
	assert.True(t, strings.HasPrefix(key, "uhk_"), "key %q", key)
	assert.Greater(t, len(key), len("uhk_")+30, "the key carries enough randomness")
	assert.NotContains(t, res.Stderr, key, "the key is printed once, on stdout")
	_, err := os.Stat(database)
	require.NoError(t, err, "the database is created")

	cfg := testConfig(t)
	cfg.Database = database
	ts := startServer(t, cfg)
	r := ts.authed(http.MethodPost, "/users", `{"detail":{"data":{"user_name":"cli@example.com","user_id":"auth0|cli"}}}`, key)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.Equal(t, "1", r.Header.Get("X-Event-Position"))

	// A key created while the server runs works as well, and a read key is refused POST /users.
	adminStored, _ := createKey(t, database, "admin while serving", "admin")
	readStored, _ := createKey(t, database, "read while serving", "read")
	r = ts.authed(http.MethodPost, "/users", `{"detail":{"data":{"user_name":"cli2@example.com","user_id":"auth0|cli2"}}}`, adminStored)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.Equal(t, "2", r.Header.Get("X-Event-Position"))
	r = ts.authed(http.MethodPost, "/users", `{"detail":{"data":{"user_name":"cli3@example.com","user_id":"auth0|cli3"}}}`, readStored)
	assert.Equal(t, http.StatusForbidden, r.Status, "body: %s", r.Body)

	assertNoCredential(t, ts.logs.String(), key, adminStored, readStored)
}

func TestCLIAPIKeyList(t *testing.T) {
	t.Parallel()
	database := cliDatabase(t)
	ingest, ingestID := createKey(t, database, "auth0-action", "ingest")
	read, readID := createKey(t, database, "reporting", "read")
	res := runCLI(t, nil, "apikey", "revoke", "--database", database, readID)
	require.NoError(t, res.Err, "stderr: %s", res.Stderr)
	assert.Empty(t, res.Stdout)

	res = runCLI(t, nil, "apikey", "list", "--database", database)
	require.NoError(t, res.Err, "stderr: %s", res.Stderr)
	lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	require.Len(t, lines, 3, "a header and one line per key: %s", res.Stdout)
	assert.Equal(t, []string{"ID", "NAME", "ROLE", "CREATED", "REVOKED"}, strings.Fields(lines[0]))
	for i, want := range [][]string{{ingestID, "auth0-action", "ingest"}, {readID, "reporting", "read"}} {
		fields := strings.Fields(lines[i+1])
		require.Len(t, fields, 5, "line %q", lines[i+1])
		assert.Equal(t, want, fields[:3])
		_, err := time.Parse(time.RFC3339, fields[3])
		assert.NoError(t, err, "created %q", fields[3])
	}
	assert.Equal(t, "-", strings.Fields(lines[1])[4], "the ingest key is not revoked")
	_, err := time.Parse(time.RFC3339, strings.Fields(lines[2])[4])
	assert.NoError(t, err, "the read key's revocation time")
	for _, secret := range []string{ingest, read, apikey.Hash(ingest), apikey.Hash(read), strings.TrimPrefix(ingest, "uhk_")} {
		assert.NotContains(t, res.Stdout+res.Stderr, secret)
	}
}

func TestCLIAPIKeyListJSON(t *testing.T) {
	t.Parallel()
	database := cliDatabase(t)

	res := runCLI(t, nil, "apikey", "list", "--json", "--database", database)
	require.NoError(t, res.Err, "stderr: %s", res.Stderr)
	assert.Empty(t, res.Stdout, "no keys, no lines")

	admin, adminID := createKey(t, database, "ops", "admin")
	ingest, ingestID := createKey(t, database, "idp", "ingest")
	res = runCLI(t, nil, "apikey", "revoke", "--database", database, ingestID)
	require.NoError(t, res.Err, "stderr: %s", res.Stderr)

	res = runCLI(t, nil, "apikey", "list", "--json", "--database", database)
	require.NoError(t, res.Err, "stderr: %s", res.Stderr)
	lines := strings.Split(strings.TrimSuffix(res.Stdout, "\n"), "\n")
	require.Len(t, lines, 2, "one JSON line per key: %s", res.Stdout)
	var got []map[string]any
	for _, line := range lines {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "line %q", line)
		got = append(got, m)
	}
	assert.Equal(t, adminID, got[0]["id"])
	assert.Equal(t, "ops", got[0]["name"])
	assert.Equal(t, "admin", got[0]["role"])
	assert.NotContains(t, got[0], "revokedAt")
	assert.Equal(t, ingestID, got[1]["id"])
	assert.Equal(t, "idp", got[1]["name"])
	assert.Equal(t, "ingest", got[1]["role"])
	assert.Contains(t, got[1], "revokedAt")
	for _, m := range got {
		created, _ := m["createdAt"].(string)
		ts, err := time.Parse(time.RFC3339Nano, created)
		if assert.NoError(t, err, "createdAt %q", created) {
			assert.WithinDuration(t, time.Now(), ts, time.Minute)
		}
		for field := range m {
			assert.NotContains(t, strings.ToLower(field), "hash")
		}
	}
	for _, secret := range []string{admin, ingest, apikey.Hash(admin), apikey.Hash(ingest)} {
		assert.NotContains(t, res.Stdout, secret)
	}
}

func TestCLIAPIKeyRevokeUnknownID(t *testing.T) {
	t.Parallel()
	database := cliDatabase(t)
	_, id := createKey(t, database, "kept", "ingest")

	res := runCLI(t, nil, "apikey", "revoke", "--database", database, "key_0000000000000000")
	require.Error(t, res.Err)
	assert.Contains(t, res.Err.Error(), "key_0000000000000000")
	assert.Empty(t, res.Stdout)

	res = runCLI(t, nil, "apikey", "revoke", "--database", database)
	assert.Error(t, res.Err, "revoke without an id")
	res = runCLI(t, nil, "apikey", "revoke", "--database", database, id, "key_0000000000000000")
	assert.Error(t, res.Err, "revoke with two ids")

	for _, k := range cliListKeys(t, database) {
		assert.Nil(t, k.RevokedAt, "no key was revoked by the failed calls")
	}
}

// TestCLIAPIKeyRevokeFlagAfterID is the form `userhook apikey revoke ID --database PATH`: the documented usage
// puts the id first, and a flag after it must still be read.
func TestCLIAPIKeyRevokeFlagAfterID(t *testing.T) {
	t.Parallel()
	database := cliDatabase(t)
	_, id := createKey(t, database, "to revoke", "ingest")

	res := runCLI(t, nil, "apikey", "revoke", id, "--database", database)
	require.NoError(t, res.Err, "stderr: %s", res.Stderr)
	keys := cliListKeys(t, database)
	require.Len(t, keys, 1)
	assert.NotNil(t, keys[0].RevokedAt)
}

func TestCLIAPIKeyCreateReportsEveryFault(t *testing.T) {
	t.Parallel()
	database := cliDatabase(t)
	for name, args := range map[string][]string{
		"no name, no role":    {"apikey", "create", "--database", database},
		"no name, bogus role": {"apikey", "create", "--role", "bogus", "--database", database},
	} {
		t.Run(name, func(t *testing.T) {
			res := runCLI(t, nil, args...)
			require.Error(t, res.Err)
			assert.Contains(t, res.Err.Error(), "--name")
			assert.Contains(t, res.Err.Error(), "--role")
			assert.Empty(t, res.Stdout, "no key is printed")
		})
	}
	res := runCLI(t, nil, "apikey", "create", "--name", "x", "--role", "bogus", "--database", database)
	require.Error(t, res.Err)
	assert.Contains(t, res.Err.Error(), "--role")
	assert.NotContains(t, res.Err.Error(), "--name")
	res = runCLI(t, nil, "apikey", "create", "--name", "x", "--database", database)
	require.Error(t, res.Err)
	assert.Contains(t, res.Err.Error(), "--role")
	assert.Empty(t, cliListKeys(t, database), "no key was stored")
}

// parseToken verifies an HS256 token with secret and returns its claims.
func parseToken(t *testing.T, raw, secret string) (jwt.MapClaims, error) {
	t.Helper()
	c := jwt.MapClaims{}
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired()).
		ParseWithClaims(raw, c, func(*jwt.Token) (any, error) { return []byte(secret), nil })
	return c, err
}

func TestCLIToken(t *testing.T) {
	t.Parallel()
	const secret = "cli-token-secret-0123456789abcdef012345"
	res := runCLI(t, nil, "token", "--sub", "svc", "--jwt-secret", secret, "--ttl", "10m")
	require.NoError(t, res.Err, "stderr: %s", res.Stderr)
	lines := strings.Split(strings.TrimSuffix(res.Stdout, "\n"), "\n")
	require.Len(t, lines, 1, "stdout: %q", res.Stdout)
	assert.NotContains(t, res.Stderr, secret)

	claims, err := parseToken(t, lines[0], secret)
	require.NoError(t, err)
	sub, err := claims.GetSubject()
	require.NoError(t, err)
	assert.Equal(t, "svc", sub)
	exp, err := claims.GetExpirationTime()
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(10*time.Minute), exp.Time, 5*time.Second)

	_, err = parseToken(t, lines[0], secret+"x")
	assert.Error(t, err, "the token is signed with the given secret")

	// The token opens a server configured with the same secret.
	cfg := testConfig(t)
	cfg.JWTSecret = secret
	ts := startServer(t, cfg)
	r := ts.do(http.MethodPost, "/users", `{"detail":{"data":{"user_name":"svc@example.com","user_id":"auth0|svc"}}}`,
		"Content-Type", "application/json", "Authorization", "Bearer "+lines[0], "X-API-Key", ingestKey)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assertNoCredential(t, ts.logs.String(), lines[0], secret)
}

func TestCLITokenWithIssuerAndAudience(t *testing.T) {
	t.Parallel()
	const secret = "cli-token-secret-0123456789abcdef012345"
	res := runCLI(t, map[string]string{"USERHOOK_JWT_ISSUER": testIssuer},
		"token", "--sub", "svc", "--jwt-secret", secret, "--jwt-audience", testAudience)
	require.NoError(t, res.Err, "stderr: %s", res.Stderr)
	claims, err := parseToken(t, strings.TrimSpace(res.Stdout), secret)
	require.NoError(t, err)
	iss, _ := claims.GetIssuer()
	aud, _ := claims.GetAudience()
	assert.Equal(t, testIssuer, iss)
	assert.Equal(t, jwt.ClaimStrings{testAudience}, aud)
	exp, err := claims.GetExpirationTime()
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(time.Hour), exp.Time, 5*time.Second, "the default ttl is 1h")
}

func TestCLITokenWithoutSecretFails(t *testing.T) {
	t.Parallel()
	res := runCLI(t, nil, "token", "--sub", "svc")
	require.Error(t, res.Err)
	assert.Contains(t, res.Err.Error(), "USERHOOK_JWT_SECRET")
	assert.Empty(t, res.Stdout)

	res = runCLI(t, nil, "token")
	require.Error(t, res.Err)
	assert.Contains(t, res.Err.Error(), "--sub", "every fault at once")
	assert.Contains(t, res.Err.Error(), "USERHOOK_JWT_SECRET", "every fault at once")
	assert.Empty(t, res.Stdout)
}

func TestCLIEnvironmentFallback(t *testing.T) {
	t.Parallel()
	const envSecret = "env-secret-0123456789abcdef0123456789"
	const flagSecret = "flag-secret-0123456789abcdef012345678"

	t.Run("USERHOOK_JWT_SECRET", func(t *testing.T) {
		t.Parallel()
		res := runCLI(t, map[string]string{"USERHOOK_JWT_SECRET": envSecret}, "token", "--sub", "svc")
		require.NoError(t, res.Err, "stderr: %s", res.Stderr)
		_, err := parseToken(t, strings.TrimSpace(res.Stdout), envSecret)
		assert.NoError(t, err)
	})
	t.Run("--jwt-secret wins over USERHOOK_JWT_SECRET", func(t *testing.T) {
		t.Parallel()
		res := runCLI(t, map[string]string{"USERHOOK_JWT_SECRET": envSecret}, "token", "--sub", "svc", "--jwt-secret", flagSecret)
		require.NoError(t, res.Err, "stderr: %s", res.Stderr)
		_, err := parseToken(t, strings.TrimSpace(res.Stdout), flagSecret)
		assert.NoError(t, err)
		_, err = parseToken(t, strings.TrimSpace(res.Stdout), envSecret)
		assert.Error(t, err)
	})
	t.Run("USERHOOK_TTL and USERHOOK_SUB do nothing: a command's own flags are flags only", func(t *testing.T) {
		t.Parallel()
		env := map[string]string{"USERHOOK_JWT_SECRET": envSecret, "USERHOOK_TTL": "3m", "USERHOOK_SUB": "from-env"}
		res := runCLI(t, env, "token")
		require.Error(t, res.Err, "USERHOOK_SUB is no --sub")
		assert.Contains(t, res.Err.Error(), "--sub")
		assert.Empty(t, res.Stdout)

		res = runCLI(t, env, "token", "--sub", "svc")
		require.NoError(t, res.Err, "stderr: %s", res.Stderr)
		claims, err := parseToken(t, strings.TrimSpace(res.Stdout), envSecret)
		require.NoError(t, err)
		sub, _ := claims.GetSubject()
		assert.Equal(t, "svc", sub)
		exp, err := claims.GetExpirationTime()
		require.NoError(t, err)
		assert.WithinDuration(t, time.Now().Add(time.Hour), exp.Time, 5*time.Second, "the default ttl, not USERHOOK_TTL")
	})
	t.Run("USERHOOK_DATABASE", func(t *testing.T) {
		t.Parallel()
		database := cliDatabase(t)
		env := map[string]string{"USERHOOK_DATABASE": database}
		res := runCLI(t, env, "apikey", "create", "--name", "from-env", "--role", "read")
		require.NoError(t, res.Err, "stderr: %s", res.Stderr)
		keys := cliListKeys(t, database)
		require.Len(t, keys, 1, "the key is in the database the variable names")
		assert.Equal(t, "from-env", keys[0].Name)

		res = runCLI(t, env, "apikey", "list")
		require.NoError(t, res.Err, "stderr: %s", res.Stderr)
		assert.Contains(t, res.Stdout, keys[0].ID)
	})
	t.Run("--database wins over USERHOOK_DATABASE", func(t *testing.T) {
		t.Parallel()
		envDB, flagDB := cliDatabase(t), cliDatabase(t)
		res := runCLI(t, map[string]string{"USERHOOK_DATABASE": envDB}, "apikey", "create", "--name", "from-flag", "--role", "admin", "--database", flagDB)
		require.NoError(t, res.Err, "stderr: %s", res.Stderr)
		keys := cliListKeys(t, flagDB)
		require.Len(t, keys, 1)
		assert.Equal(t, "from-flag", keys[0].Name)
		_, err := os.Stat(envDB)
		assert.True(t, os.IsNotExist(err), "the variable's database is not touched")
	})
	t.Run("a bad variable is reported by name", func(t *testing.T) {
		t.Parallel()
		res := runCLI(t, map[string]string{"USERHOOK_JWT_SECRET": envSecret, "USERHOOK_SHUTDOWN_TIMEOUT": "soon",
			"USERHOOK_DATABASE": cliDatabase(t)}, "serve", "--addr", "127.0.0.1:0")
		require.Error(t, res.Err)
		assert.Contains(t, res.Err.Error(), "USERHOOK_SHUTDOWN_TIMEOUT")
		assert.Equal(t, 1, exitCode(res.Err), "a setting's fault, not the command line's")
		assert.Empty(t, res.Stdout)
	})
}

func TestCLIServeRefusesWithoutJWTConfig(t *testing.T) {
	t.Parallel()
	database := cliDatabase(t)
	res := runCLI(t, nil, "serve", "--addr", "127.0.0.1:0", "--database", database)
	require.Error(t, res.Err)
	assert.Contains(t, res.Err.Error(), "USERHOOK_JWT_SECRET")
	assert.Contains(t, res.Err.Error(), "USERHOOK_JWKS_URL")
	assert.Contains(t, res.Err.Error(), "--dev")
	assert.Empty(t, res.Stdout)

	cfg := DefaultConfig()
	cfg.Addr, cfg.Database = "127.0.0.1:0", database
	err := cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "USERHOOK_JWT_SECRET")

	cfg.Dev = true
	assert.NoError(t, cfg.Validate(), "--dev generates its own secret")
	cfg.Dev, cfg.JWKSURL = false, "https://tenant.example/.well-known/jwks.json"
	assert.NoError(t, cfg.Validate(), "a JWKS URL alone is enough")
	cfg.JWKSURL, cfg.JWTSecret = "", testSecret
	assert.NoError(t, cfg.Validate(), "a secret alone is enough")
}

func TestConfigValidateReportsEveryFault(t *testing.T) {
	t.Parallel()
	const shortSecret = "short-secret-value"
	const badKeys = "tiny-key-01:ingest,no-role-here-0123456789,valid-length-key-0123456789:superuser"

	cfg := DefaultConfig()
	cfg.Database = cliDatabase(t)
	cfg.Addr = "no-port-here"
	cfg.JWTSecret = shortSecret
	cfg.APIKeys = badKeys
	cfg.DeliveryBackoff = "5s,later"
	err := cfg.Validate()
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{"addr", "jwt-secret", "32", "USERHOOK_API_KEYS entry 1", "entry 2", "entry 3", "delivery-backoff"} {
		assert.Contains(t, msg, want)
	}
	assertValidateQuotesNoSecret(t, msg, shortSecret, badKeys)

	// The same through serve, from flags and variables, before anything listens.
	res := runCLI(t, map[string]string{"USERHOOK_API_KEYS": badKeys, "USERHOOK_DELIVERY_BACKOFF": "5s,later"},
		"serve", "--addr", "no-port-here", "--jwt-secret", shortSecret, "--database", cfg.Database)
	require.Error(t, res.Err)
	for _, want := range []string{"addr", "jwt-secret", "USERHOOK_API_KEYS entry 1", "entry 2", "entry 3", "delivery-backoff"} {
		assert.Contains(t, res.Err.Error(), want)
	}
	assertValidateQuotesNoSecret(t, res.Err.Error()+res.Stdout+res.Stderr, shortSecret, badKeys)

	// Webhook secrets are reported without being quoted either.
	cfg = DefaultConfig()
	cfg.Database, cfg.JWTSecret = cliDatabase(t), testSecret
	cfg.WebhookSecrets = "whsec_not*base64-secret-material,plain-secret-material"
	err = cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "webhook-secrets: entry 1")
	assert.Contains(t, err.Error(), "webhook-secrets: entry 2")
	assert.NotContains(t, err.Error(), "secret-material")
}

// assertValidateQuotesNoSecret checks that msg quotes neither the secret nor any key of the KEY:ROLE list.
func assertValidateQuotesNoSecret(t *testing.T, msg, secret, keys string) {
	t.Helper()
	assert.NotContains(t, msg, secret)
	for _, entry := range strings.Split(keys, ",") {
		key := entry
		if i := strings.LastIndexByte(entry, ':'); i > 0 {
			key = entry[:i]
		}
		assert.NotContains(t, msg, key)
	}
}

// TestConfigValidateKeyWrittenRoleFirst: a bootstrap entry written ROLE:KEY, the order swapped, must not get
// its key quoted back in the error either.
func TestConfigValidateKeyWrittenRoleFirst(t *testing.T) {
	t.Parallel()
	const key = "swapped-order-key-0123456789abcdef"
	cfg := DefaultConfig()
	cfg.Database, cfg.JWTSecret = cliDatabase(t), testSecret
	cfg.APIKeys = "ingest:" + key
	err := cfg.Validate()
	require.Error(t, err, "the role %q is not a role", key)
	assert.NotContains(t, err.Error(), key, "the key is never quoted back")
	assert.Contains(t, err.Error(), "USERHOOK_API_KEYS entry 1")
}
