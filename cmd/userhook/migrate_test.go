package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	sourcesqlite "github.com/userhook/userhook/source/sqlite"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/apikey"
	apikeypg "github.com/userhook/userhook/apikey/postgres"
	deliverypg "github.com/userhook/userhook/delivery/postgres"
	deliverysqlite "github.com/userhook/userhook/delivery/sqlite"
	eventspg "github.com/userhook/userhook/eventstore/postgres"
	eventsqlite "github.com/userhook/userhook/eventstore/sqlite"
	"github.com/userhook/userhook/internal/migrate"
	"github.com/userhook/userhook/internal/postgresdb/pgtest"
	"github.com/userhook/userhook/internal/sqlitedb"
	projpg "github.com/userhook/userhook/projection/postgres"
	projsqlite "github.com/userhook/userhook/projection/sqlite"
)

// The fixture is a database the release at commit 8e33de6 made, before goose: `userhook apikey create` and a
// short `serve` that took one user and one webhook (see testdata/upgrade/README.md).
const (
	fixture        = "../../testdata/upgrade/userhook-8e33de6.db"
	fixtureKey     = "uhk_gPo9Onxdtrmi7b2M-amuK4EG9sTw_1_s2kcGTD-9Et4"
	fixtureKeyID   = "key_1f318e0f5f67e425"
	fixtureUser    = "auth0|upgrade"
	fixtureEmail   = "upgrade@example.com"
	fixtureWebhook = "wh_07b2de8d6f3e4a3f7d4eb343"
)

// latest is the newest version of a component's migrations.
func latest(t *testing.T, migrations fs.FS) int64 {
	t.Helper()
	names, err := fs.Glob(migrations, "migrations/*.sql")
	require.NoError(t, err)
	require.NotEmpty(t, names)
	var v int64
	_, err = fmt.Sscanf(path.Base(names[len(names)-1]), "%d_", &v)
	require.NoError(t, err)
	return v
}

func TestMigrateComponentsAgreeAcrossDatabases(t *testing.T) {
	t.Parallel()
	assert.Equal(t, eventsqlite.Component, eventspg.Component)
	assert.Equal(t, apikey.Component, apikeypg.Component)
	assert.Equal(t, projsqlite.Component, projpg.Component)
	assert.Equal(t, deliverysqlite.Component, deliverypg.Component)
}

func copyFixture(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(fixture)
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "userhook.db")
	require.NoError(t, os.WriteFile(p, b, 0o600))
	return p
}

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return sha256.Sum256(b)
}

// rows renders every row a query returns, one line each.
func rows(t *testing.T, db *sql.DB, query string) []string {
	t.Helper()
	rs, err := db.Query(query)
	require.NoError(t, err)
	defer rs.Close()
	cols, err := rs.Columns()
	require.NoError(t, err)
	var out []string
	for rs.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		require.NoError(t, rs.Scan(ptrs...))
		var line []string
		for _, v := range vals {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			line = append(line, fmt.Sprint(v))
		}
		out = append(out, strings.Join(line, "|"))
	}
	require.NoError(t, rs.Err())
	return out
}

// sqliteSchema is every table and index of a SQLite database as created, and the rows of the goose tables.
func sqliteSchema(t *testing.T, p string) (schema, versions []string) {
	t.Helper()
	db, err := sqlitedb.Open(p)
	require.NoError(t, err)
	defer db.Close()
	schema = rows(t, db.Read, `SELECT type, name, sql FROM sqlite_master WHERE name NOT IN ('schema_migrations', 'sqlite_autoindex_schema_migrations_1') ORDER BY name`)
	for _, c := range schemaComponents {
		for _, r := range rows(t, db.Read, `SELECT id, version_id, is_applied, tstamp FROM `+migrate.Table(c.name)+` ORDER BY id`) {
			versions = append(versions, c.name+"|"+r)
		}
	}
	return schema, versions
}

// checkAtLatest checks that every component records its versions in its goose table, each of them once, up to
// the latest this binary knows.
func checkAtLatest(t *testing.T, ctx context.Context, cfg Config) {
	t.Helper()
	var out bytes.Buffer
	require.NoError(t, runMigrate(ctx, cfg, "status", &out))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 1+len(schemaComponents), out.String())
	for i, c := range schemaComponents {
		v := latest(t, c.migrations(cfg.IsPostgres()))
		assert.Equal(t, []string{c.name, migrate.Table(c.name), fmt.Sprint(v), fmt.Sprint(v), "up", "to", "date", "-"},
			strings.Fields(lines[i+1]))
	}
}

func TestMigrateUpgradesSQLiteDatabaseOfOldRelease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := copyFixture(t)
	cfg := Config{Database: p, LogLevel: "info"}

	before := fileSum(t, p)
	var out bytes.Buffer
	require.NoError(t, runMigrate(ctx, cfg, "status", &out))
	for _, c := range schemaComponents {
		v := latest(t, c.sqlite)
		if c.name == sourcesqlite.Component {
			// Sources came after that release: their tables are simply pending.
			assert.Regexp(t, fmt.Sprintf(`(?m)^%s +- +0 +%d +pending +`, c.name, v), out.String())
			continue
		}
		assert.Regexp(t, fmt.Sprintf(`(?m)^%s +schema_migrations +%d +%d +up to date +-$`, c.name, v, v), out.String(),
			"status reads what the old release recorded")
	}
	assert.Equal(t, before, fileSum(t, p), "status writes nothing")

	// Opening the stores, as every command does, upgrades the database in place.
	st, err := openStorage(ctx, cfg)
	require.NoError(t, err)
	k, err := st.keys.ByHash(ctx, apikey.Hash(fixtureKey))
	require.NoError(t, err, "the old key still authenticates")
	assert.Equal(t, fixtureKeyID, k.ID)
	assert.Equal(t, apikey.RoleAdmin, k.Role)
	u, err := st.reads.Get(ctx, fixtureUser)
	require.NoError(t, err)
	assert.Equal(t, fixtureEmail, u.Email)
	evs, err := st.events.Load(ctx, fixtureUser)
	require.NoError(t, err)
	assert.Len(t, evs, 1)
	hooks, err := st.hooks.Webhooks(ctx)
	require.NoError(t, err)
	require.Len(t, hooks, 1)
	assert.Equal(t, fixtureWebhook, hooks[0].ID)
	require.NoError(t, st.Close())

	checkAtLatest(t, ctx, cfg)
	schema, versions := sqliteSchema(t, p)
	var want []string
	for _, c := range schemaComponents {
		for v := range latest(t, c.sqlite) + 1 {
			want = append(want, fmt.Sprintf("%s|%d", c.name, v))
		}
	}
	var got []string
	for _, r := range versions {
		f := strings.Split(r, "|")
		got = append(got, f[0]+"|"+f[2])
	}
	assert.Equal(t, want, got, "version 0 and every version once, per component")

	// The upgraded database has the tables and indexes a new one has, as the old release created them.
	fresh := filepath.Join(t.TempDir(), "fresh.db")
	out.Reset()
	require.NoError(t, runMigrate(ctx, Config{Database: fresh, LogLevel: "info"}, "up", &out))
	freshSchema, _ := sqliteSchema(t, fresh)
	assert.Equal(t, freshSchema, schema)

	// Opening again, or migrate up, changes nothing.
	st, err = openStorage(ctx, cfg)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	out.Reset()
	require.NoError(t, runMigrate(ctx, cfg, "up", &out))
	var atVersion []string
	for _, c := range schemaComponents {
		atVersion = append(atVersion, fmt.Sprintf("%s: at version %d", c.name, latest(t, c.sqlite)))
	}
	assert.Equal(t, strings.Join(atVersion, "\n")+"\n", out.String())
	schema2, versions2 := sqliteSchema(t, p)
	assert.Equal(t, schema, schema2)
	assert.Equal(t, versions, versions2)
}

// legacyPostgresMigrate is (*postgresdb.DB).Migrate as the release at 8e33de6 had it, before goose: every
// migrations/*.sql file in file-name order, each in a transaction with its row in schema_migrations, under an
// advisory lock.
func legacyPostgresMigrate(ctx context.Context, pool *pgxpool.Pool, component string, migrations fs.FS) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, 0x75686d6967); err != nil {
		return err
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, 0x75686d6967) }()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		component TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (component, name))`); err != nil {
		return err
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		body, err := fs.ReadFile(migrations, name)
		if err != nil {
			return err
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		var done bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE component = $1 AND name = $2)`,
			component, path.Base(name)).Scan(&done); err != nil {
			_ = tx.Rollback(ctx)
			return err
		}
		if !done {
			if strings.TrimSpace(string(body)) != "" {
				if _, err := tx.Exec(ctx, string(body)); err != nil {
					_ = tx.Rollback(ctx)
					return fmt.Errorf("migrate %s/%s: %w", component, name, err)
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (component, name) VALUES ($1, $2)`, component, path.Base(name)); err != nil {
				_ = tx.Rollback(ctx)
				return err
			}
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
	}
	return nil
}

// postgresSchema is every column and index of the test's schema, and the rows of the goose tables.
func postgresSchema(t *testing.T, url string) (schema, versions []string) {
	t.Helper()
	db, err := sql.Open("pgx", url)
	require.NoError(t, err)
	defer db.Close()
	var current string
	require.NoError(t, db.QueryRow(`SELECT current_schema()`).Scan(&current))
	schema = rows(t, db, `SELECT table_name, column_name, data_type, is_nullable, column_default, collation_name
		FROM information_schema.columns WHERE table_schema = current_schema() AND table_name <> 'schema_migrations'
		ORDER BY table_name, ordinal_position`)
	for _, r := range rows(t, db, `SELECT indexname, indexdef FROM pg_indexes
		WHERE schemaname = current_schema() AND tablename <> 'schema_migrations' ORDER BY indexname`) {
		schema = append(schema, strings.ReplaceAll(r, current+".", ""))
	}
	for _, c := range schemaComponents {
		for _, r := range rows(t, db, `SELECT id, version_id, is_applied, tstamp FROM `+migrate.Table(c.name)+` ORDER BY id`) {
			versions = append(versions, c.name+"|"+r)
		}
	}
	return schema, versions
}

func TestMigrateUpgradesPostgresDatabaseOfOldRelease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	cfg := Config{Database: url, LogLevel: "info"}

	// The old release's migrations, then the rows it wrote for a key and a user.
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	for _, c := range schemaComponents {
		require.NoError(t, legacyPostgresMigrate(ctx, pool, c.name, c.postgres))
	}
	now := time.Now().UnixNano()
	_, err = pool.Exec(ctx, `INSERT INTO api_keys (id, name, role, hash, created_at) VALUES ($1, 'upgrade-fixture', 'admin', $2, $3)`,
		fixtureKeyID, apikey.Hash(fixtureKey), now)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO users (user_id, email, email_key, status, created_at, updated_at, version, position)
		VALUES ($1, $2, $2, 'active', $3, $3, 1, 1)`, fixtureUser, fixtureEmail, now)
	require.NoError(t, err)

	var out bytes.Buffer
	require.NoError(t, runMigrate(ctx, cfg, "status", &out))
	for _, c := range schemaComponents {
		v := latest(t, c.postgres)
		assert.Regexp(t, fmt.Sprintf(`(?m)^%s +schema_migrations +%d +%d +up to date +-$`, c.name, v, v), out.String())
	}
	var gooseTables int
	require.NoError(t, pool.QueryRow(ctx, `SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'goose%'`).Scan(&gooseTables))
	assert.Zero(t, gooseTables, "status writes nothing")

	st, err := openStorage(ctx, cfg)
	require.NoError(t, err)
	k, err := st.keys.ByHash(ctx, apikey.Hash(fixtureKey))
	require.NoError(t, err)
	assert.Equal(t, fixtureKeyID, k.ID)
	u, err := st.reads.Get(ctx, fixtureUser)
	require.NoError(t, err)
	assert.Equal(t, fixtureEmail, u.Email)
	require.NoError(t, st.Close())

	checkAtLatest(t, ctx, cfg)
	schema, versions := postgresSchema(t, url)

	fresh := pgtest.URL(t)
	out.Reset()
	require.NoError(t, runMigrate(ctx, Config{Database: fresh, LogLevel: "info"}, "up", &out))
	freshSchema, _ := postgresSchema(t, fresh)
	assert.Equal(t, freshSchema, schema, "the upgraded schema is the one a new database gets")

	st, err = openStorage(ctx, cfg)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	schema2, versions2 := postgresSchema(t, url)
	assert.Equal(t, schema, schema2)
	assert.Equal(t, versions, versions2, "a second open changes nothing")
}

func TestMigrateStatusAndUpOnNewDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "data", "userhook.db")
	cfg := Config{Database: p, LogLevel: "info"}

	err := runMigrate(ctx, cfg, "status", &bytes.Buffer{})
	assert.EqualError(t, err, "migrate status: there is no database at "+p)
	assert.NoFileExists(t, p, "status creates nothing")

	var out bytes.Buffer
	require.NoError(t, runMigrate(ctx, cfg, "up", &out))
	var want []string
	for _, c := range schemaComponents {
		names, err := fs.Glob(c.sqlite, "migrations/*.sql")
		require.NoError(t, err)
		for _, n := range names {
			want = append(want, fmt.Sprintf(`%s: applied %s in [0-9.]+[µm]?s`, c.name, regexp.QuoteMeta(path.Base(n))))
		}
		want = append(want, fmt.Sprintf("%s: at version %d", c.name, latest(t, c.sqlite)))
	}
	assert.Regexp(t, "^"+strings.Join(want, "\n")+"\n$", out.String())
	checkAtLatest(t, ctx, cfg)

	st, err := openStorage(ctx, cfg)
	require.NoError(t, err, "the stores open on what migrate up made")
	require.NoError(t, st.Close())

	var usage usageError
	assert.ErrorAs(t, runMigrate(ctx, cfg, "down", &out), &usage)
}

func TestMigrateStatusShowsPending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := copyFixture(t)
	cfg := Config{Database: p, LogLevel: "info"}
	// Take the fixture back to before the webhooks' second migration, as a database of an older release.
	db, err := sqlitedb.Open(p)
	require.NoError(t, err)
	_, err = db.Exec(ctx, true, `DELETE FROM schema_migrations WHERE component = 'webhooks' AND name = '002_claim_per_webhook.sql'`)
	require.NoError(t, err)
	_, err = db.Exec(ctx, true, `DROP INDEX deliveries_claim`)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	var out bytes.Buffer
	require.NoError(t, runMigrate(ctx, cfg, "status", &out))
	assert.Regexp(t, `(?m)^webhooks +schema_migrations +1 +2 +pending +002_claim_per_webhook\.sql$`, out.String())

	out.Reset()
	require.NoError(t, runMigrate(ctx, cfg, "up", &out))
	assert.Contains(t, out.String(), "webhooks: baselined version 1 from schema_migrations into goose_webhooks\n"+
		"webhooks: applied 002_claim_per_webhook.sql in ")
	assert.Contains(t, out.String(), "events: baselined versions 1, 2, 3 from schema_migrations into goose_events\n")
	checkAtLatest(t, ctx, cfg)
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "userhook.db")
	cfg := Config{Database: p, LogLevel: "info"}
	require.NoError(t, runMigrate(ctx, cfg, "up", &bytes.Buffer{}))
	// A newer release added a webhooks migration.
	db, err := sqlitedb.Open(p)
	require.NoError(t, err)
	_, err = db.Exec(ctx, true, `INSERT INTO goose_webhooks (version_id, is_applied) VALUES (99, 1)`)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	want := fmt.Sprintf("database schema of webhooks is at version 99, this binary knows up to %d: upgrade userhook",
		latest(t, deliverysqlite.Migrations))

	_, err = openStorage(ctx, cfg)
	var tooNew *migrate.TooNewError
	require.ErrorAs(t, err, &tooNew, "every command that opens the stores refuses to start")
	assert.Equal(t, want, err.Error())

	err = runMigrate(ctx, cfg, "up", &bytes.Buffer{})
	assert.EqualError(t, err, want)

	var out bytes.Buffer
	err = runMigrate(ctx, cfg, "status", &out)
	assert.EqualError(t, err, want)
	assert.Regexp(t, `(?m)^webhooks +goose_webhooks +99 +[0-9]+ +newer than this binary +-$`, out.String())
	assert.True(t, errors.As(err, &tooNew))
}
