// Package postgresdb opens the PostgreSQL database of a scaled-out deployment (USERHOOK_DATABASE=postgres://...)
// and applies each component's embedded migrations, once, even when several instances start together.
package postgresdb

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// DB is a connection pool.
type DB struct {
	Pool *pgxpool.Pool
	// Timeout bounds each call of the stores that is not bounded by a caller's context (the event store's
	// group commit); zero is no bound.
	Timeout time.Duration
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
	return &DB{Pool: pool, Timeout: timeout}, nil
}

// Close closes the pool.
func (db *DB) Close() error {
	db.Pool.Close()
	return nil
}

// migrationLock is the advisory lock key that serialises migrations of concurrently starting instances.
const migrationLock = 0x75686d6967 // "uhmig"

// Migrate applies, in file-name order, every migrations/*.sql file of migrations (a component's embedded
// files, laid out as //go:embed migrations/*.sql) that component has not applied yet, each
// in its own transaction with the record that it ran, under an advisory lock.
func (db *DB) Migrate(ctx context.Context, component string, migrations fs.FS) error {
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("postgresdb: migration lock: %w", err)
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock) }()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		component TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (component, name))`); err != nil {
		return fmt.Errorf("postgresdb: migrations table: %w", err)
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
					return fmt.Errorf("postgresdb: migrate %s/%s: %w", component, name, err)
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
