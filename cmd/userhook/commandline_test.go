package main

import (
	"os/exec"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCLICommandFlagsIgnoreVariables: a variable named after a command's own flag changes nothing, so one left
// in an environment can neither make an admin key nor turn a production serve into a development one.
func TestCLICommandFlagsIgnoreVariables(t *testing.T) {
	t.Parallel()
	t.Run("USERHOOK_ROLE=admin", func(t *testing.T) {
		t.Parallel()
		database := cliDatabase(t)
		env := map[string]string{"USERHOOK_ROLE": "admin", "USERHOOK_NAME": "from-env"}
		res := runCLI(t, env, "apikey", "create", "--database", database)
		require.Error(t, res.Err)
		assert.Contains(t, res.Err.Error(), "--role")
		assert.Contains(t, res.Err.Error(), "--name")
		assert.Empty(t, res.Stdout, "no key is printed")
		assert.Empty(t, cliListKeys(t, database), "no key was stored")

		createKey(t, database, "reader", "read")
		keys := cliListKeys(t, database)
		require.Len(t, keys, 1)
		assert.Equal(t, "read", string(keys[0].Role), "--role wins, and there is no variable to lose to")
	})
	t.Run("USERHOOK_DEV=true", func(t *testing.T) {
		t.Parallel()
		env := map[string]string{"USERHOOK_DEV": "true", "USERHOOK_DATABASE": cliDatabase(t), "USERHOOK_ADDR": "127.0.0.1:0"}
		res := runCLI(t, env, "serve")
		require.Error(t, res.Err, "serve is not in development mode, so it needs a JWT setting")
		assert.Contains(t, res.Err.Error(), "USERHOOK_JWT_SECRET")
		assert.Empty(t, res.Stdout, "no development credentials are printed")
	})
	t.Run("USERHOOK_JSON=true", func(t *testing.T) {
		t.Parallel()
		res := runCLI(t, map[string]string{"USERHOOK_JSON": "true"}, "apikey", "list", "--database", cliDatabase(t))
		require.NoError(t, res.Err, "stderr: %s", res.Stderr)
		assert.True(t, strings.HasPrefix(res.Stdout, "ID"), "a table, not JSON lines: %q", res.Stdout)
	})
}

// TestServeSettingsFromVariables: every setting of serve but --dev comes from its variable when no flag gives
// it, whatever its type.
func TestServeSettingsFromVariables(t *testing.T) {
	t.Parallel()
	cfg, err := parseServe([]string{"--delivery-workers", "9"}, map[string]string{
		"USERHOOK_WEBHOOK_ALLOW_PRIVATE": "true", "USERHOOK_DELIVERY_WORKERS": "8", "USERHOOK_READY_STALL": "5s",
		"USERHOOK_READY_MAX_LAG": "7", "USERHOOK_PUBSUB": "nats://127.0.0.1:4222", "USERHOOK_DEV": "true",
		"USERHOOK_ADDR": "", // empty: unset
	})
	require.NoError(t, err)
	want := DefaultConfig()
	want.WebhookAllowPrivate, want.DeliveryWorkers, want.ReadyStall = true, 9, 5*time.Second
	want.ReadyMaxLag, want.PubSub = 7, "nats://127.0.0.1:4222"
	assert.Equal(t, want, cfg)
}

// TestCLIUsageErrorsExit2: a command line that cannot be understood (an unknown command, a flag another
// command takes, a missing or extra argument) exits 2; a command line that is understood but fails exits 1.
func TestCLIUsageErrorsExit2(t *testing.T) {
	t.Parallel()
	database := cliDatabase(t)
	for _, args := range [][]string{
		{},
		{"bogus"},
		{"apikey", "create", "--name", "x", "--role", "read", "--json", "--database", database},
		{"apikey", "list", "--name", "x", "--database", database},
		{"token", "--sub", "svc", "--database", database},
		{"serve", "--bogus"},
		{"serve", "--shutdown-timeout", "soon"},
		{"apikey", "revoke", "--database", database},
		{"apikey", "revoke", "--database", database, "key_1", "key_2"},
		{"migrate", "down", "--database", database},
		{"completion", "fish"},
	} {
		res := runCLI(t, nil, args...)
		if assert.Error(t, res.Err, "%q", args) {
			assert.Equal(t, 2, exitCode(res.Err), "%q: %v", args, res.Err)
		}
		assert.Empty(t, res.Stdout, "%q", args)
	}
	res := runCLI(t, nil, "apikey", "revoke", "--database", database, "key_0000000000000000")
	require.Error(t, res.Err)
	assert.Equal(t, 1, exitCode(res.Err), "an unknown key is not a usage error")
}

func TestCLIHelpShowsVariablesAndDefaults(t *testing.T) {
	t.Parallel()
	res := runCLI(t, nil, "serve", "--help")
	require.NoError(t, res.Err)
	assert.Contains(t, res.Stdout, "--addr=HOST:PORT")
	assert.Contains(t, res.Stdout, "($USERHOOK_ADDR, default :8080)")
	assert.Contains(t, res.Stdout, "$USERHOOK_DELIVERY_BACKOFF, default")
	assert.Contains(t, res.Stdout, "--dev")
	assert.NotContains(t, res.Stdout, "USERHOOK_DEV", "--dev is a flag only")

	res = runCLI(t, nil, "apikey", "create", "--help")
	require.NoError(t, res.Err)
	assert.Contains(t, res.Stdout, "($USERHOOK_DATABASE, default ./data/userhook.db)")
	assert.Contains(t, res.Stdout, "--role=ROLE")
	assert.NotContains(t, res.Stdout, "USERHOOK_ROLE")
	assert.NotContains(t, res.Stdout, "--json", "apikey list's flag is not apikey create's")

	res = runCLI(t, nil, "token", "-h")
	require.NoError(t, res.Err)
	assert.Contains(t, res.Stdout, "how long the token is valid (default 1h)")

	res = runCLI(t, nil, "--help")
	require.NoError(t, res.Err)
	for _, command := range []string{"serve", "replay", "events", "apikey create", "apikey list", "apikey revoke",
		"token", "migrate status", "migrate up", "version", "completion"} {
		assert.Contains(t, res.Stdout, "\n  "+command+" ", "the help lists %s", command)
	}
	assert.Equal(t, res, runCLI(t, nil, "help"), "help is --help")
}

func TestCLIVersion(t *testing.T) {
	t.Parallel()
	res := runCLI(t, nil, "version")
	require.NoError(t, res.Err)
	assert.True(t, strings.HasPrefix(res.Stdout, "userhook "), "%q", res.Stdout)
	assert.Contains(t, res.Stdout, "\ncommit: ")
	assert.Contains(t, res.Stdout, "\ngo: "+runtime.Version())
}

// TestCLICompletion completes command lines with the bash script as bash would.
func TestCLICompletion(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	res := runCLI(t, nil, "completion", "bash")
	require.NoError(t, res.Err)
	complete := func(line string) []string {
		t.Helper()
		words := strings.Fields(line)
		if strings.HasSuffix(line, " ") {
			words = append(words, "")
		}
		script := res.Stdout + `COMP_WORDS=(` + strings.Join(quoteAll(words), " ") + `); COMP_CWORD=${#COMP_WORDS[@]}; ((COMP_CWORD--))
_userhook; printf '%s\n' "${COMPREPLY[@]}"`
		out, err := exec.Command(bash, "-c", script).Output()
		require.NoError(t, err, line)
		return strings.Fields(string(out))
	}
	assert.Equal(t, []string{"create"}, complete("userhook apikey c"))
	assert.Equal(t, []string{"status", "up"}, complete("userhook migrate "))
	assert.Equal(t, []string{"--addr"}, complete("userhook serve --ad"))
	assert.Equal(t, []string{"--role"}, complete("userhook apikey create --name x --ro"))
	assert.Empty(t, complete("userhook apikey create --database "), "a flag's value: the shell completes file names")

	zsh := runCLI(t, nil, "completion", "zsh")
	require.NoError(t, zsh.Err)
	assert.True(t, strings.HasPrefix(zsh.Stdout, "autoload -U +X bashcompinit && bashcompinit\n"))
}

func quoteAll(words []string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = "'" + w + "'"
	}
	return out
}

// TestCommandFlagsAreConfigs: the database and token flags of the commands other than serve are Config's
// fields, with the same names, variables, defaults and help.
func TestCommandFlagsAreConfigs(t *testing.T) {
	t.Parallel()
	config := reflect.TypeFor[Config]()
	for _, part := range []reflect.Type{reflect.TypeFor[databaseFlags](), reflect.TypeFor[jwtFlags]()} {
		for i := range part.NumField() {
			f := part.Field(i)
			want, ok := config.FieldByName(f.Name)
			if assert.True(t, ok, "%s.%s is a Config field", part.Name(), f.Name) {
				assert.Equal(t, want.Tag, f.Tag, "%s.%s", part.Name(), f.Name)
				assert.Equal(t, want.Type, f.Type, "%s.%s", part.Name(), f.Name)
			}
		}
	}
}

// TestEveryVariableIsNamedAfterItsFlag: USERHOOK_<FLAG>, as the README says.
func TestEveryVariableIsNamedAfterItsFlag(t *testing.T) {
	t.Parallel()
	parser, err := newParser(&cli{}, func(string) string { return "" }, nil, nil)
	require.NoError(t, err)
	seen := 0
	for _, leaf := range parser.Model.Leaves(false) {
		for _, group := range leaf.AllFlags(false) {
			for _, f := range group {
				if env := f.Tag.Get("envvar"); env != "" {
					seen++
					assert.Equal(t, "USERHOOK_"+strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_")), env, "--%s", f.Name)
				}
			}
		}
	}
	assert.Positive(t, seen)
}
