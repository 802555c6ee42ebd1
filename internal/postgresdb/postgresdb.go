// Package postgresdb opens the PostgreSQL database of a scaled-out deployment (USERHOOK_DATABASE=postgres://...)
// and applies each component's embedded migrations (with goose, see internal/migrate), once, even when several
// instances start together.
package postgresdb

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/userhook/userhook/internal/migrate"
)

// DB is a connection pool.
type DB struct {
	Pool *pgxpool.Pool
	// Timeout bounds each call of the stores that is not bounded by a caller's context (the event store's
	// group commit); zero is no bound.
	Timeout time.Duration
	// schema is the current schema of the pool's connections (search_path), read once at Open.
	schema string
}

// Open connects to url (any postgres:// URL pgx accepts; extra parameters such as search_path are sent as
// run-time settings). A positive timeout is the deadline of every store call: callers bound their contexts
// with it (see Timeout), and the server itself cancels a statement running a second longer
// (statement_timeout) and ends a session left idle inside a transaction, so a stalled client never holds a
// lock for long.
func Open(ctx context.Context, url string, timeout time.Duration) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgresdb: %w", err)
	}
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	// Every statement is planned for its own arguments. The stores' lookups take arrays (id = ANY($1)), and
	// pgx prepares them: a generic plan, made while a table was young and small, scans the whole table and
	// is kept as the table grows (measured: 9 ms per read-model batch at 20,000 users instead of 0.1 ms).
	if _, set := cfg.ConnConfig.RuntimeParams["plan_cache_mode"]; !set {
		cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	}
	if timeout > 0 {
		params := cfg.ConnConfig.RuntimeParams
		if _, set := params["statement_timeout"]; !set {
			params["statement_timeout"] = strconv.FormatInt((timeout + time.Second).Milliseconds(), 10)
		}
		if _, set := params["idle_in_transaction_session_timeout"]; !set {
			params["idle_in_transaction_session_timeout"] = strconv.FormatInt(max(4*timeout, time.Minute).Milliseconds(), 10)
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgresdb: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgresdb: %w", err)
	}
	db := &DB{Pool: pool, Timeout: timeout}
	if err := pool.QueryRow(ctx, `SELECT COALESCE(current_schema(), '')`).Scan(&db.schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgresdb: %w", err)
	}
	return db, nil
}

// Notification channels and advisory locks belong to the whole database, not to a schema: deployments that
// share a database in schemas of their own (search_path) would hear each other's commits and wait for, or
// worse, take over, each other's locks. Channel and Lock give each schema names of its own.

// Channel is the LISTEN/NOTIFY channel name for this schema's name.
func (db *DB) Channel(name string) string {
	h := fnv.New64a()
	h.Write([]byte(db.schema))
	return fmt.Sprintf("%s_%016x", name, h.Sum64())
}

// Lock is the one-key advisory lock for this schema's name.
func (db *DB) Lock(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("userhook lock " + name + " " + db.schema))
	return int64(h.Sum64())
}

// LockSpace is the first key of a two-key advisory lock space for this schema's name.
func (db *DB) LockSpace(name string) int32 {
	h := fnv.New32a()
	h.Write([]byte("userhook lock space " + name + " " + db.schema))
	return int32(h.Sum32())
}

// Close closes the pool.
func (db *DB) Close() error {
	db.Pool.Close()
	return nil
}

// dialect is PostgreSQL's for internal/migrate. Its lock is goose's session locker on a key of the current
// schema's own, polled every second for five minutes (goose's default polls every five seconds, which would hold
// up instances starting together). Keying the lock by schema serialises the instances that migrate one schema,
// and them alone: deployments (or tests) in other schemas of the same database do not wait for each other.
func (db *DB) dialect(ctx context.Context) (migrate.Dialect, error) {
	h := fnv.New64a()
	h.Write([]byte("userhook migrations " + db.schema))
	key := int64(h.Sum64())
	return migrate.Dialect{
		Goose:       goose.DialectPostgres,
		TableExists: `SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1)`,
		Locker: func() (lock.SessionLocker, error) {
			return lock.NewPostgresSessionLocker(lock.WithLockID(key), lock.WithLockTimeout(1, 300))
		},
	}, nil
}

// Migrate brings a component's tables up to date (see MigrateUp): the store constructors call it, so every
// command that opens a store migrates first, and refuses a schema newer than it knows.
func (db *DB) Migrate(ctx context.Context, component string, migrations fs.FS) error {
	_, err := db.MigrateUp(ctx, component, migrations)
	return err
}

// MigrateUp applies, in version order, the migrations/NNN_name.sql files of migrations (a component's
// embedded files, laid out as //go:embed migrations/*.sql) that component has not applied yet, recording them
// in its version table goose_<component>, under an advisory lock that instances starting together take in
// turn (see dialect); a database made before goose is baselined from schema_migrations first. A database at a version newer
// than migrations know is refused with a *migrate.TooNewError.
func (db *DB) MigrateUp(ctx context.Context, component string, migrations fs.FS) (migrate.Result, error) {
	d, err := db.dialect(ctx)
	if err != nil {
		return migrate.Result{Component: component}, fmt.Errorf("postgresdb: %w", err)
	}
	sqlDB := stdlib.OpenDBFromPool(db.Pool) // goose speaks database/sql; this borrows the pool's connections
	defer sqlDB.Close()
	res, err := migrate.Up(ctx, sqlDB, d, component, migrations)
	var tooNew *migrate.TooNewError
	if err != nil && !errors.As(err, &tooNew) {
		err = fmt.Errorf("postgresdb: %w", err)
	}
	return res, err
}

// MigrationStatus reports where a component's schema stands without writing or locking anything.
func (db *DB) MigrationStatus(ctx context.Context, component string, migrations fs.FS) (migrate.Status, error) {
	d, err := db.dialect(ctx)
	if err != nil {
		return migrate.Status{Component: component}, fmt.Errorf("postgresdb: %w", err)
	}
	sqlDB := stdlib.OpenDBFromPool(db.Pool)
	defer sqlDB.Close()
	st, err := migrate.ReadStatus(ctx, sqlDB, d, component, migrations)
	if err != nil {
		err = fmt.Errorf("postgresdb: %w", err)
	}
	return st, err
}
