// Package sqlite keeps the sources in the embedded SQLite database.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/internal/sqlitedb"
	"github.com/userhook/userhook/internal/unixnano"
	"github.com/userhook/userhook/source"
)

// Component names the sources table in the database's migration records (goose_sources), in SQLite and
// PostgreSQL alike: never rename it.
const Component = "sources"

// Migrations are the SQL files that create and change the sources table, applied in version order on open.
//
//go:embed migrations/*.sql
var Migrations embed.FS

var _ source.Store = (*Store)(nil)

// Store is the SQLite source store.
type Store struct{ db *sqlitedb.DB }

// New migrates the sources table of db and returns the store.
func New(ctx context.Context, db *sqlitedb.DB) (*Store, error) {
	if err := db.Migrate(ctx, Component, Migrations); err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

func notFound(id string) error {
	return userhook.Errorf(userhook.ErrNotFound, "source %q not found", id)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

const columns = `id, name, provider, secrets, enabled, created_at, updated_at, last_event_at`

type scanner interface{ Scan(...any) error }

func scan(r scanner) (source.Source, error) {
	var s source.Source
	var provider string
	var sealed []byte
	var enabled int
	var created, updated, last int64
	if err := r.Scan(&s.ID, &s.Name, &provider, &sealed, &enabled, &created, &updated, &last); err != nil {
		return source.Source{}, err
	}
	secrets, err := source.Open(sealed)
	if err != nil {
		return source.Source{}, fmt.Errorf("source %s: %w", s.ID, err)
	}
	s.Provider, s.Secrets, s.Enabled = source.Provider(provider), secrets, enabled != 0
	s.CreatedAt, s.UpdatedAt, s.LastEventAt = unixnano.Time(created), unixnano.Time(updated), unixnano.Time(last)
	return s, nil
}

// Create implements source.Store.
func (s *Store) Create(ctx context.Context, src source.Source) error {
	sealed, err := source.Seal(src.Secrets)
	if err != nil {
		return err
	}
	if _, err := s.db.Exec(ctx, true, `INSERT INTO sources (`+columns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		src.ID, src.Name, string(src.Provider), sealed, boolInt(src.Enabled),
		unixnano.Of(src.CreatedAt), unixnano.Of(src.UpdatedAt), unixnano.Of(src.LastEventAt)); err != nil {
		return fmt.Errorf("source/sqlite: create: %w", err)
	}
	return nil
}

// Get implements source.Store.
func (s *Store) Get(ctx context.Context, id string) (source.Source, error) {
	src, err := scan(s.db.Read.QueryRowContext(ctx, `SELECT `+columns+` FROM sources WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return source.Source{}, notFound(id)
	}
	if err != nil {
		return source.Source{}, fmt.Errorf("source/sqlite: get: %w", err)
	}
	return src, nil
}

// List implements source.Store.
func (s *Store) List(ctx context.Context) ([]source.Source, error) {
	rows, err := s.db.Read.QueryContext(ctx, `SELECT `+columns+` FROM sources ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("source/sqlite: list: %w", err)
	}
	defer rows.Close()
	out := []source.Source{}
	for rows.Next() {
		src, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("source/sqlite: list: %w", err)
		}
		out = append(out, src)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("source/sqlite: list: %w", err)
	}
	return out, nil
}

// Update implements source.Store.
func (s *Store) Update(ctx context.Context, src source.Source) error {
	sealed, err := source.Seal(src.Secrets)
	if err != nil {
		return err
	}
	res, err := s.db.Exec(ctx, true, `UPDATE sources SET name = ?, enabled = ?, secrets = ?, updated_at = ? WHERE id = ?`,
		src.Name, boolInt(src.Enabled), sealed, unixnano.Of(src.UpdatedAt), src.ID)
	if err != nil {
		return fmt.Errorf("source/sqlite: update: %w", err)
	}
	return affected(res, src.ID)
}

// Delete implements source.Store.
func (s *Store) Delete(ctx context.Context, id string) error {
	res, err := s.db.Exec(ctx, true, `DELETE FROM sources WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("source/sqlite: delete: %w", err)
	}
	return affected(res, id)
}

// Touch implements source.Store. It commits lazily (see sqlitedb.DB.Tx): the time of the last event is a
// hint for the operator, written on every authenticated request, and not worth an fsync of its own; the
// events themselves are committed durably by the event store.
func (s *Store) Touch(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.Exec(ctx, false, `UPDATE sources SET last_event_at = max(last_event_at, ?) WHERE id = ?`,
		unixnano.Of(at), id)
	if err != nil {
		return fmt.Errorf("source/sqlite: touch: %w", err)
	}
	return affected(res, id)
}

// affected is nil when the statement matched a row (SQLite counts a matched row even when its values stay
// the same), and the not-found error of id when it matched none.
func affected(res sql.Result, id string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("source/sqlite: %w", err)
	}
	if n == 0 {
		return notFound(id)
	}
	return nil
}
