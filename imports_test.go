package userhook_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/userhook/userhook"

// imports lists, per package directory, what its non-test files import.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin" || d.Name() == "data") && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			out[dir] = append(out[dir], p)
		}
		return nil
	})
	require.NoError(t, err)
	return out
}

func isStd(p string) bool { return !strings.Contains(strings.SplitN(p, "/", 2)[0], ".") }

// TestImportRules guards the dependency directions of STYLE.md: cmd wires everything; Echo, JWT and
// CloudEvents live in transport; Watermill in projection, delivery and cmd; SQL drivers in the storage
// implementations; the eventstore root uses the standard library alone; ingest uses aggregate and the
// eventstore root.
func TestImportRules(t *testing.T) {
	all := imports(t)
	require.NotEmpty(t, all["eventstore"], "the walk found the packages")
	only := func(prefix string, allowed ...string) {
		for dir, imps := range all {
			for _, p := range imps {
				if !strings.HasPrefix(p, prefix) {
					continue
				}
				ok := false
				for _, a := range allowed {
					ok = ok || dir == a || strings.HasPrefix(dir, a+"/")
				}
				assert.True(t, ok, "%s imports %s, which belongs only in %v", dir, p, allowed)
			}
		}
	}
	only("github.com/labstack/echo", "transport")
	only("github.com/golang-jwt/jwt", "transport")
	only("github.com/MicahParks/keyfunc", "transport")
	only("github.com/cloudevents/sdk-go", "transport")
	only("github.com/ThreeDotsLabs/watermill", "stream", "projection", "delivery", "cmd")
	only("github.com/mattn/go-sqlite3", "internal/sqlitedb", "eventstore/sqlite")
	only("code.dny.dev/ssrf", "delivery")
	only("github.com/pressly/goose", "internal/migrate", "internal/sqlitedb", "internal/postgresdb")
	only("github.com/alecthomas/kong", "cmd/userhook")
	only("github.com/sony/gobreaker", "delivery")
	only("github.com/prometheus/client_golang", "metrics")
	only("github.com/nats-io/nats.go", "cmd") // the server's bus, and the bench's stream clean-up
	only("github.com/jackc/pgx", "eventstore/postgres", "internal/postgresdb", "projection/postgres", "delivery/postgres",
		"apikey/postgres", "cmd")

	for _, p := range all["eventstore"] {
		assert.True(t, isStd(p), "the eventstore root uses the standard library alone, not %s", p)
	}
	for _, p := range all["aggregate"] {
		assert.True(t, isStd(p) || p == module || p == module+"/eventstore" || p == "github.com/google/uuid",
			"aggregate depends on the eventstore root only, not %s", p)
	}
	for _, p := range all["stream"] {
		assert.True(t, isStd(p) || p == module+"/eventstore" || p == module+"/internal/retry" ||
			strings.HasPrefix(p, "github.com/ThreeDotsLabs/watermill"),
			"stream is plumbing: the eventstore root and Watermill only, not %s", p)
	}
	require.NotEmpty(t, all["ingest"], "the walk found the ingest package")
	for _, p := range all["ingest"] {
		// ingest is provider-neutral: no HTTP framework, no CloudEvents, no Watermill, no metrics library (it
		// counts through its Observer); decoders live in transport.
		assert.True(t, isStd(p) && p != "net/http" || p == module || p == module+"/aggregate" || p == module+"/eventstore",
			"ingest depends on aggregate and the eventstore root only, not %s", p)
	}
	for dir, imps := range all {
		for _, p := range imps {
			if dir != "cmd/userhook" {
				assert.False(t, strings.HasPrefix(p, module+"/cmd"), "%s imports %s: nothing imports cmd", dir, p)
			}
			if !strings.HasPrefix(dir, "transport") && !strings.HasPrefix(dir, "cmd") {
				assert.NotEqual(t, module+"/transport", p, "%s imports transport: only cmd does", dir)
			}
			if strings.HasPrefix(dir, "projection") || strings.HasPrefix(dir, "aggregate") || strings.HasPrefix(dir, "eventstore") {
				assert.False(t, strings.HasPrefix(p, module+"/delivery"), "%s imports %s: delivery sits beside projection", dir, p)
			}
		}
	}
}
