// Package migrate brings the tables of each component of userhook (events, api_keys, readmodel, webhooks) up
// to date with pressly/goose, in SQLite and PostgreSQL alike. internal/sqlitedb and internal/postgresdb call it
// with their dialect; the logic is written once here so the two backends cannot drift apart.
//
// Each component has its embedded migrations/NNN_name.sql files (annotated "-- +goose Up") and a version table
// of its own, goose_<component>, so one component's migrations never wait for, or block, another's.
//
// Databases made before goose recorded each applied file by name in schema_migrations(component, name). The
// first Up on such a database baselines the component: in one transaction it creates the component's version
// table holding the versions of the files already applied, and goose then applies only newer ones.
// schema_migrations is left as it was; nothing reads it after the baseline, and a downgrade to a release before
// goose is not supported.
package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"
)

// LegacyTable is where releases before goose recorded applied migration files.
const LegacyTable = "schema_migrations"

// Table is the name of a component's goose version table.
func Table(component string) string { return "goose_" + component }

// Dialect is what differs between the databases.
type Dialect struct {
	// Goose is goose's name for the database.
	Goose goose.Dialect
	// TableExists is a query with one parameter, a table name, answering whether that table exists where
	// unqualified names are created (goose's own check for its version table looks there too).
	TableExists string
	// Locker, when set, returns a new session lock that serialises migrations of instances starting together
	// (PostgreSQL). A new one for every use: goose's lockers count their retries across calls.
	Locker func() (lock.SessionLocker, error)
}

// Migration is one migration file of a component.
type Migration struct {
	Version int64
	// Name is the file name, 001_events.sql.
	Name string
}

// Applied is a migration Up applied and how long it took.
type Applied struct {
	Migration
	Duration time.Duration
}

// Result is what Up did to one component.
type Result struct {
	Component string
	// Baselined are the versions copied from schema_migrations into the new version table (none when the
	// component had its version table already, or the database was new).
	Baselined []int64
	// Applied are the migrations run, in order.
	Applied []Applied
	// Version is the component's version afterwards.
	Version int64
}

// Status is where one component's schema stands.
type Status struct {
	Component string
	// Table is where the component's versions are recorded: its goose table, LegacyTable before the
	// baseline, or "" when nothing is recorded yet.
	Table string
	// Version is the highest version applied (0: none); Latest the highest this binary knows.
	Version int64
	Latest  int64
	// Pending are the migrations this binary knows and the database has not applied, in order.
	Pending []Migration
}

// TooNew says whether the database is ahead of this binary.
func (s Status) TooNew() bool { return s.Version > s.Latest }

// TooNewError is a database whose schema a newer release migrated: this binary refuses to run on it rather
// than misread tables it does not know.
type TooNewError struct {
	Component       string
	Version, Latest int64
}

func (e *TooNewError) Error() string {
	return fmt.Sprintf("database schema of %s is at version %d, this binary knows up to %d: upgrade userhook",
		e.Component, e.Version, e.Latest)
}

// provider is goose on one component's migrations and version table.
func provider(db *sql.DB, d Dialect, component string, migrations fs.FS, opts ...goose.ProviderOption) (*goose.Provider, error) {
	dir, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	opts = append([]goose.ProviderOption{
		goose.WithTableName(Table(component)),
		goose.WithDisableGlobalRegistry(true), // SQL files only; nothing registered in init functions
	}, opts...)
	p, err := goose.NewProvider(d.Goose, db, dir, opts...)
	if err != nil {
		return nil, fmt.Errorf("migrations of %s: %w", component, err)
	}
	return p, nil
}

// Up baselines component when its database predates goose, refuses a schema newer than migrations, and
// applies the pending migrations, each in its own transaction with the record that it ran.
func Up(ctx context.Context, db *sql.DB, d Dialect, component string, migrations fs.FS) (Result, error) {
	res := Result{Component: component}
	var opts []goose.ProviderOption
	if d.Locker != nil {
		l, err := d.Locker()
		if err != nil {
			return res, err
		}
		opts = append(opts, goose.WithSessionLocker(l))
	}
	p, err := provider(db, d, component, migrations, opts...)
	if err != nil {
		return res, err
	}
	if res.Baselined, err = prepare(ctx, db, d, component); err != nil {
		return res, fmt.Errorf("migrate %s: %w", component, err)
	}
	current, latest, err := p.GetVersions(ctx)
	if err != nil {
		return res, fmt.Errorf("migrate %s: %w", component, err)
	}
	if current > latest {
		return res, &TooNewError{Component: component, Version: current, Latest: latest}
	}
	res.Version = current
	applied, err := p.Up(ctx)
	var partial *goose.PartialError
	if errors.As(err, &partial) {
		applied = partial.Applied
		if partial.Failed != nil && partial.Failed.Source != nil {
			err = fmt.Errorf("%s: %w", source(partial.Failed.Source).Name, partial.Err)
		}
	}
	for _, r := range applied {
		res.Applied = append(res.Applied, Applied{Migration: source(r.Source), Duration: r.Duration})
		res.Version = max(res.Version, r.Source.Version)
	}
	if err != nil {
		return res, fmt.Errorf("migrate %s: %w", component, err)
	}
	return res, nil
}

func source(s *goose.Source) Migration {
	return Migration{Version: s.Version, Name: path.Base(s.Path)}
}

// prepare creates component's version table when it has none, under the lock: holding the versions
// schema_migrations records for it (the baseline), or only goose's initial version 0 on a new database, which
// is what goose itself would create. Instances starting together on a new database thus never race to create
// it. It returns the versions it baselined.
func prepare(ctx context.Context, db *sql.DB, d Dialect, component string) (_ []int64, err error) {
	table := Table(component)
	// Every start after the first finds the table; only the first takes the lock.
	if ok, err := exists(ctx, db, d, table); err != nil || ok {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if d.Locker != nil {
		l, err := d.Locker()
		if err != nil {
			return nil, err
		}
		if err := l.SessionLock(ctx, conn); err != nil {
			return nil, fmt.Errorf("migration lock: %w", err)
		}
		defer func() { err = errors.Join(err, l.SessionUnlock(context.WithoutCancel(ctx), conn)) }()
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	if ok, err := exists(ctx, tx, d, table); err != nil || ok {
		return nil, err // another instance made it while this one waited for the lock
	}
	versions, err := legacyVersions(ctx, tx, d, component)
	if err != nil {
		return nil, err
	}
	store, err := database.NewStore(d.Goose, table)
	if err != nil {
		return nil, err
	}
	if err := store.CreateVersionTable(ctx, tx); err != nil {
		return nil, fmt.Errorf("create %s: %w", table, err)
	}
	for _, v := range append([]int64{0}, versions...) {
		if err := store.Insert(ctx, tx, database.InsertRequest{Version: v}); err != nil {
			return nil, fmt.Errorf("baseline %s: %w", table, err)
		}
	}
	return versions, tx.Commit()
}

// querier is a database, a connection or a transaction.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func exists(ctx context.Context, q querier, d Dialect, table string) (bool, error) {
	var ok bool
	if err := q.QueryRowContext(ctx, d.TableExists, table).Scan(&ok); err != nil {
		return false, fmt.Errorf("look for table %s: %w", table, err)
	}
	return ok, nil
}

// legacyVersions are the versions of the files schema_migrations records as applied for component, in
// ascending order; none when there is no such table.
func legacyVersions(ctx context.Context, q querier, d Dialect, component string) ([]int64, error) {
	if ok, err := exists(ctx, q, d, LegacyTable); err != nil || !ok {
		return nil, err
	}
	// The table is small (one row per file ever applied); filtering here needs no placeholder per dialect.
	rows, err := q.QueryContext(ctx, `SELECT component, name FROM `+LegacyTable)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", LegacyTable, err)
	}
	defer rows.Close()
	var versions []int64
	for rows.Next() {
		var c, name string
		if err := rows.Scan(&c, &name); err != nil {
			return nil, err
		}
		if c != component {
			continue
		}
		v, err := goose.NumericComponent(name)
		if err != nil {
			return nil, fmt.Errorf("%s records %s/%s: %w", LegacyTable, c, name, err)
		}
		versions = append(versions, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.Sort(versions)
	return versions, nil
}

// ReadStatus reports where component's schema stands, writing nothing: before the baseline it reads
// schema_migrations, and on a new database it reports every migration pending. db may be a read-only
// connection.
func ReadStatus(ctx context.Context, db *sql.DB, d Dialect, component string, migrations fs.FS) (Status, error) {
	st := Status{Component: component}
	p, err := provider(db, d, component, migrations)
	if err != nil {
		return st, err
	}
	sources := p.ListSources()
	st.Latest = sources[len(sources)-1].Version // goose refuses an empty directory
	applied := map[int64]bool{}
	table := Table(component)
	ok, err := exists(ctx, db, d, table)
	switch {
	case err != nil:
		return st, err
	case ok:
		// The table exists, so goose only reads: it creates nothing and, without a locker, locks nothing.
		st.Table = table
		all, err := p.Status(ctx)
		if err != nil {
			return st, fmt.Errorf("status of %s: %w", component, err)
		}
		for _, m := range all {
			applied[m.Source.Version] = m.State == goose.StateApplied
		}
		if st.Version, err = p.GetDBVersion(ctx); err != nil {
			return st, fmt.Errorf("status of %s: %w", component, err)
		}
	default:
		versions, err := legacyVersions(ctx, db, d, component)
		if err != nil {
			return st, fmt.Errorf("status of %s: %w", component, err)
		}
		for _, v := range versions {
			st.Table = LegacyTable
			applied[v] = true
			st.Version = max(st.Version, v)
		}
	}
	for _, s := range sources {
		if !applied[s.Version] {
			st.Pending = append(st.Pending, source(s))
		}
	}
	return st, nil
}
