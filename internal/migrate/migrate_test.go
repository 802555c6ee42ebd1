package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/internal/migrate"
	"github.com/userhook/userhook/internal/postgresdb"
	"github.com/userhook/userhook/internal/postgresdb/pgtest"
	"github.com/userhook/userhook/internal/sqlitedb/sqlitetest"
)

// migrator is what sqlitedb.DB and postgresdb.DB both offer.
type migrator interface {
	MigrateUp(ctx context.Context, component string, migrations fs.FS) (migrate.Result, error)
	MigrationStatus(ctx context.Context, component string, migrations fs.FS) (migrate.Status, error)
}

// backend is one database under test with a plain connection for the test's own statements.
type backend struct {
	db  migrator
	sql *sql.DB
}

const component = "things"

// files are the migrations of the component, the first n of them.
func files(n int) fstest.MapFS {
	all := []string{
		"-- +goose Up\nCREATE TABLE things (id INTEGER NOT NULL PRIMARY KEY);\n",
		"-- +goose Up\n-- A comment; with a semicolon.\nALTER TABLE things ADD COLUMN name TEXT NOT NULL DEFAULT '';\n",
		"-- +goose Up\nCREATE INDEX things_name ON things (name);\n",
	}
	fsys := fstest.MapFS{}
	for i := range n {
		fsys[fmt.Sprintf("migrations/%03d_step.sql", i+1)] = &fstest.MapFile{Data: []byte(all[i])}
	}
	return fsys
}

// legacyApply migrates the way releases before goose did: each file in file-name order, in a transaction
// with its row in schema_migrations(component, name).
func legacyApply(t *testing.T, db *sql.DB, component string, migrations fs.FS) {
	t.Helper()
	_, err := db.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
		component TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (component, name))`)
	require.NoError(t, err)
	names, err := fs.Glob(migrations, "migrations/*.sql")
	require.NoError(t, err)
	for _, name := range names { // fs.Glob sorts
		body, err := fs.ReadFile(migrations, name)
		require.NoError(t, err)
		tx, err := db.Begin()
		require.NoError(t, err)
		_, err = tx.Exec(string(body))
		require.NoError(t, err)
		_, err = tx.Exec(fmt.Sprintf(`INSERT INTO schema_migrations (component, name) VALUES ('%s', '%s')`, component, path.Base(name)))
		require.NoError(t, err)
		require.NoError(t, tx.Commit())
	}
}

func (b backend) count(t *testing.T, query string) int {
	t.Helper()
	var n int
	require.NoError(t, b.sql.QueryRow(query).Scan(&n))
	return n
}

// versions lists the component's goose table, version 0 included.
func (b backend) versions(t *testing.T) []int64 {
	t.Helper()
	rows, err := b.sql.Query(`SELECT version_id FROM ` + migrate.Table(component) + ` ORDER BY id`)
	require.NoError(t, err)
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		require.NoError(t, rows.Scan(&v))
		out = append(out, v)
	}
	require.NoError(t, rows.Err())
	return out
}

func names(ms []migrate.Applied) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

func TestSQLite(t *testing.T) {
	t.Parallel()
	run(t, func(t *testing.T) backend {
		db := sqlitetest.Open(t)
		return backend{db: db, sql: db.Write}
	}, func(t *testing.T, b backend) bool {
		return b.count(t, `SELECT COUNT(*) FROM sqlite_master WHERE name = '`+migrate.Table(component)+`'`) == 1
	})
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	open := func(t *testing.T, url string) *postgresdb.DB {
		db, err := postgresdb.Open(context.Background(), url, 0)
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	backendOn := func(t *testing.T, url string) backend {
		db := open(t, url)
		sqlDB, err := sql.Open("pgx", url)
		require.NoError(t, err)
		t.Cleanup(func() { _ = sqlDB.Close() })
		return backend{db: db, sql: sqlDB}
	}
	run(t, func(t *testing.T) backend { return backendOn(t, pgtest.URL(t)) }, func(t *testing.T, b backend) bool {
		return b.count(t, `SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = '`+
			migrate.Table(component)+`'`) == 1
	})

	t.Run("InstancesMigrateTogether", func(t *testing.T) {
		url := pgtest.URL(t)
		b := backendOn(t, url)
		results := together(t, open(t, url), open(t, url))
		assert.Equal(t, []int64{0, 1, 2, 3}, b.versions(t), "each version recorded once")
		assert.Len(t, append(results[0].Applied, results[1].Applied...), 3, "each migration applied by one of them")
		assert.Equal(t, int64(3), results[0].Version)
		assert.Equal(t, int64(3), results[1].Version)
	})

	t.Run("InstancesBaselineTogether", func(t *testing.T) {
		url := pgtest.URL(t)
		b := backendOn(t, url)
		legacyApply(t, b.sql, component, files(2))
		results := together(t, open(t, url), open(t, url), open(t, url))
		assert.Equal(t, []int64{0, 1, 2, 3}, b.versions(t))
		var baselined [][]int64
		for _, r := range results {
			if r.Baselined != nil {
				baselined = append(baselined, r.Baselined)
			}
		}
		assert.Equal(t, [][]int64{{1, 2}}, baselined, "one instance baselined")
	})
}

// together migrates the component to files(3) on every db at once, as instances starting together do; each
// must succeed.
func together(t *testing.T, dbs ...*postgresdb.DB) []migrate.Result {
	t.Helper()
	var wg sync.WaitGroup
	results := make([]migrate.Result, len(dbs))
	errs := make([]error, len(dbs))
	for i, db := range dbs {
		wg.Go(func() { results[i], errs[i] = db.MigrateUp(context.Background(), component, files(3)) })
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	return results
}

// run is the suite both databases pass. hasGooseTable says whether the component's version table exists.
func run(t *testing.T, open func(t *testing.T) backend, hasGooseTable func(t *testing.T, b backend) bool) {
	ctx := context.Background()

	t.Run("NewDatabase", func(t *testing.T) {
		b := open(t)
		res, err := b.db.MigrateUp(ctx, component, files(2))
		require.NoError(t, err)
		assert.Empty(t, res.Baselined)
		assert.Equal(t, []string{"001_step.sql", "002_step.sql"}, names(res.Applied))
		assert.Equal(t, int64(2), res.Version)
		assert.Equal(t, []int64{0, 1, 2}, b.versions(t))

		res, err = b.db.MigrateUp(ctx, component, files(3))
		require.NoError(t, err)
		assert.Equal(t, []string{"003_step.sql"}, names(res.Applied), "only the new one")
		assert.Equal(t, int64(3), res.Version)

		res, err = b.db.MigrateUp(ctx, component, files(3))
		require.NoError(t, err)
		assert.Empty(t, res.Applied)
		assert.Equal(t, int64(3), res.Version)
		assert.Equal(t, []int64{0, 1, 2, 3}, b.versions(t))
	})

	t.Run("BaselineThenNewerOnly", func(t *testing.T) {
		b := open(t)
		legacyApply(t, b.sql, component, files(1))
		legacyApply(t, b.sql, "other", fstest.MapFS{"migrations/007_other.sql": {Data: []byte("-- nothing\n")}})

		// 001 creates a table: running it again would fail.
		res, err := b.db.MigrateUp(ctx, component, files(3))
		require.NoError(t, err)
		assert.Equal(t, []int64{1}, res.Baselined, "another component's rows are not this one's")
		assert.Equal(t, []string{"002_step.sql", "003_step.sql"}, names(res.Applied))
		assert.Equal(t, []int64{0, 1, 2, 3}, b.versions(t))
		assert.Equal(t, 2, b.count(t, `SELECT COUNT(*) FROM schema_migrations`), "left as it was")

		res, err = b.db.MigrateUp(ctx, component, files(3))
		require.NoError(t, err)
		assert.Empty(t, res.Baselined, "once")
		assert.Empty(t, res.Applied)
	})

	t.Run("BaselineEverything", func(t *testing.T) {
		b := open(t)
		legacyApply(t, b.sql, component, files(3))
		res, err := b.db.MigrateUp(ctx, component, files(3))
		require.NoError(t, err)
		assert.Equal(t, []int64{1, 2, 3}, res.Baselined)
		assert.Empty(t, res.Applied)
		assert.Equal(t, int64(3), res.Version)
	})

	t.Run("StatusWritesNothing", func(t *testing.T) {
		b := open(t)
		st, err := b.db.MigrationStatus(ctx, component, files(2))
		require.NoError(t, err)
		assert.Equal(t, migrate.Status{Component: component, Latest: 2,
			Pending: []migrate.Migration{{Version: 1, Name: "001_step.sql"}, {Version: 2, Name: "002_step.sql"}}}, st)
		assert.False(t, hasGooseTable(t, b))

		legacyApply(t, b.sql, component, files(1))
		st, err = b.db.MigrationStatus(ctx, component, files(2))
		require.NoError(t, err)
		assert.Equal(t, migrate.Status{Component: component, Table: migrate.LegacyTable, Version: 1, Latest: 2,
			Pending: []migrate.Migration{{Version: 2, Name: "002_step.sql"}}}, st)
		assert.False(t, hasGooseTable(t, b), "the baseline waits for up")

		_, err = b.db.MigrateUp(ctx, component, files(2))
		require.NoError(t, err)
		st, err = b.db.MigrationStatus(ctx, component, files(3))
		require.NoError(t, err)
		assert.Equal(t, migrate.Status{Component: component, Table: migrate.Table(component), Version: 2, Latest: 3,
			Pending: []migrate.Migration{{Version: 3, Name: "003_step.sql"}}}, st)
		assert.Equal(t, []int64{0, 1, 2}, b.versions(t))
	})

	t.Run("RefusesNewerSchema", func(t *testing.T) {
		b := open(t)
		_, err := b.db.MigrateUp(ctx, component, files(3))
		require.NoError(t, err)
		_, err = b.db.MigrateUp(ctx, component, files(2))
		var tooNew *migrate.TooNewError
		require.ErrorAs(t, err, &tooNew)
		assert.EqualError(t, err, "database schema of things is at version 3, this binary knows up to 2: upgrade userhook")

		st, err := b.db.MigrationStatus(ctx, component, files(2))
		require.NoError(t, err)
		assert.True(t, st.TooNew())
		assert.Equal(t, int64(3), st.Version)
		assert.Empty(t, st.Pending)
	})

	t.Run("RefusesNewerLegacySchema", func(t *testing.T) {
		b := open(t)
		legacyApply(t, b.sql, component, files(3))
		_, err := b.db.MigrateUp(ctx, component, files(2))
		assert.EqualError(t, err, "database schema of things is at version 3, this binary knows up to 2: upgrade userhook")
	})

	t.Run("FailedMigrationIsRolledBack", func(t *testing.T) {
		b := open(t)
		bad := files(1)
		bad["migrations/002_bad.sql"] = &fstest.MapFile{Data: []byte("-- +goose Up\nALTER TABLE things ADD COLUMN x INTEGER;\nSELECT * FROM no_such_table;\n")}
		res, err := b.db.MigrateUp(ctx, component, bad)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "002_bad.sql")
		assert.Equal(t, []string{"001_step.sql"}, names(res.Applied), "what ran before the failure stays applied")
		assert.Equal(t, []int64{0, 1}, b.versions(t))
		_, err = b.sql.Exec(`ALTER TABLE things ADD COLUMN x INTEGER`)
		assert.NoError(t, err, "the failed file's first statement was rolled back with it")
	})
}
