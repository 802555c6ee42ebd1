// Package sqlitedb opens the embedded SQLite database that the event store, the read model, the API keys and
// the webhook tables share, and applies each component's embedded migrations (with goose, see
// internal/migrate).
//
// SQLite allows one writer at a time. Every writer in the process shares one write connection, so they queue
// in Go rather than spinning on SQLITE_BUSY; readers use a separate pool and never block the writer (WAL).
package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	_ "github.com/mattn/go-sqlite3" // the driver
	"github.com/pressly/goose/v3"

	"github.com/userhook/userhook/internal/migrate"
)

// DB is one SQLite database file opened with one write connection and a pool of readers.
type DB struct {
	// Path is the file the database lives in.
	Path string
	// Write is the single write connection; transactions on it begin IMMEDIATE.
	Write *sql.DB
	// Read is a pool of read-only connections.
	Read *sql.DB

	migrateMu sync.Mutex
	// mode is the write connection's synchronous setting as Tx last set it ("" when unknown).
	mode string
}

// Open opens (creating when needed) the SQLite database at path with WAL journaling and synchronous=FULL,
// so that a committed transaction survives a power cut.
func Open(path string) (*DB, error) {
	if path == "" {
		return nil, fmt.Errorf("sqlitedb: empty path")
	}
	if err := createPrivate(path); err != nil {
		return nil, err
	}
	common := url.Values{}
	common.Set("_journal_mode", "WAL")
	common.Set("_synchronous", "FULL")
	common.Set("_busy_timeout", "10000")
	common.Set("_foreign_keys", "on")

	wq := url.Values{}
	for k, v := range common {
		wq[k] = v
	}
	wq.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite3", "file:"+path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlitedb: open writer: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.Ping(); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlitedb: open %s: %w", path, err)
	}

	rq := url.Values{}
	for k, v := range common {
		rq[k] = v
	}
	rq.Set("_query_only", "true")
	r, err := sql.Open("sqlite3", "file:"+path+"?"+rq.Encode())
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlitedb: open reader: %w", err)
	}
	n := 2 * runtime.GOMAXPROCS(0)
	if n < 4 {
		n = 4
	}
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	return &DB{Path: path, Write: w, Read: r}, nil
}

// createPrivate makes the database's directory (0700, when it does not exist yet) and file (0600) readable by
// their owner alone: they hold outbound webhook secrets. SQLite creates the -wal and -shm files with the
// database file's permissions; files an earlier release left world-readable are made private here too.
func createPrivate(path string) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("sqlitedb: create directory: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sqlitedb: create %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		info, err := os.Stat(path + suffix)
		if err != nil || info.Mode().Perm()&0o077 == 0 {
			continue
		}
		if err := os.Chmod(path+suffix, 0o600); err != nil {
			return fmt.Errorf("sqlitedb: make %s private: %w", path+suffix, err)
		}
	}
	return nil
}

// Close closes both pools.
func (db *DB) Close() error {
	err1 := db.Read.Close()
	err2 := db.Write.Close()
	if err1 != nil {
		return err1
	}
	return err2
}

// dialect is SQLite's for internal/migrate, without a lock: the process migrates through its one write
// connection (migrateMu orders its stores) and each migration's transaction begins IMMEDIATE. Two processes
// that start on the same new file at the same moment are not serialised beyond that: the slower one may fail
// on a table the faster one just created, and starts when run again.
var dialect = migrate.Dialect{
	Goose:       goose.DialectSQLite3,
	TableExists: `SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?)`,
}

// Migrate brings a component's tables up to date (see MigrateUp): the store constructors call it, so every
// command that opens a store migrates first, and refuses a schema newer than it knows.
func (db *DB) Migrate(ctx context.Context, component string, migrations fs.FS) error {
	_, err := db.MigrateUp(ctx, component, migrations)
	return err
}

// MigrateUp applies, in version order, the migrations/NNN_name.sql files of migrations (a component's
// embedded files, laid out as //go:embed migrations/*.sql) that component has not applied yet, recording them
// in its version table goose_<component>; a database made before goose is baselined from schema_migrations
// first. A database at a version newer than migrations know is refused with a *migrate.TooNewError.
func (db *DB) MigrateUp(ctx context.Context, component string, migrations fs.FS) (migrate.Result, error) {
	db.migrateMu.Lock()
	defer db.migrateMu.Unlock()
	res, err := migrate.Up(ctx, db.Write, dialect, component, migrations)
	var tooNew *migrate.TooNewError
	if err != nil && !errors.As(err, &tooNew) {
		err = fmt.Errorf("sqlitedb: %w", err)
	}
	return res, err
}

// MigrationStatus reports where a component's schema stands without writing anything: it reads through the
// read-only pool.
func (db *DB) MigrationStatus(ctx context.Context, component string, migrations fs.FS) (migrate.Status, error) {
	st, err := migrate.ReadStatus(ctx, db.Read, dialect, component, migrations)
	if err != nil {
		err = fmt.Errorf("sqlitedb: %w", err)
	}
	return st, err
}

// Tx runs fn in one write transaction on the write connection and commits it. A durable transaction commits
// with synchronous=FULL: its commit is fsync'd before Tx returns, so it survives a power cut. A lazy one
// commits with synchronous=NORMAL (WAL): it survives a crash of the process, and a power cut can lose it only
// together with the lazy commits after it, up to the next durable commit, whose fsync carries them all.
// Derived state that is rebuilt from the event store (the read model, checkpoints, delivery bookkeeping) is
// written lazily, so it does not cost the ingest path an fsync per batch.
func (db *DB) Tx(ctx context.Context, durable bool, fn func(tx *sql.Tx) error) error {
	conn, err := db.Write.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	mode := "NORMAL"
	if durable {
		mode = "FULL"
	}
	// The pool holds one connection, so the pinned connection serialises access to db.mode.
	if db.mode != mode {
		db.mode = "" // unknown until the pragma is known to have run
		if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = "+mode); err != nil {
			return fmt.Errorf("sqlitedb: synchronous: %w", err)
		}
		db.mode = mode
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Exec runs one statement in its own write transaction (see Tx).
func (db *DB) Exec(ctx context.Context, durable bool, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := db.Tx(ctx, durable, func(tx *sql.Tx) error {
		var err error
		res, err = tx.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}
