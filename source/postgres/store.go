// Package postgres keeps the sources in PostgreSQL, for a deployment of several instances that share one
// database.
//
// It reaches pgx through internal/postgresdb's pool alone and imports no driver package itself (the import
// rules of the repository's root test): pgx's ErrNoRows matches database/sql's, and a row is anything that
// scans.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/internal/postgresdb"
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

// Store is the PostgreSQL source store.
type Store struct{ db *postgresdb.DB }

// New migrates the sources table of db and returns the store.
func New(ctx context.Context, db *postgresdb.DB) (*Store, error) {
	if err := db.Migrate(ctx, Component, Migrations); err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

func notFound(id string) error {
	return userhook.Errorf(userhook.ErrNotFound, "source %q not found", id)
}

const columns = `id, name, provider, secrets, enabled, created_at, updated_at, last_event_at`

type scanner interface{ Scan(...any) error }

func scan(r scanner) (source.Source, error) {
	var s source.Source
	var provider string
	var sealed []byte
	var created, updated, last int64
	if err := r.Scan(&s.ID, &s.Name, &provider, &sealed, &s.Enabled, &created, &updated, &last); err != nil {
		return source.Source{}, err
	}
	secrets, err := source.Open(sealed)
	if err != nil {
		return source.Source{}, fmt.Errorf("source %s: %w", s.ID, err)
	}
	s.Provider, s.Secrets = source.Provider(provider), secrets
	s.CreatedAt, s.UpdatedAt, s.LastEventAt = unixnano.Time(created), unixnano.Time(updated), unixnano.Time(last)
	return s, nil
}

// Create implements source.Store.
func (s *Store) Create(ctx context.Context, src source.Source) error {
	sealed, err := source.Seal(src.Secrets)
	if err != nil {
		return err
	}
	if _, err := s.db.Pool.Exec(ctx, `INSERT INTO sources (`+columns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		src.ID, src.Name, string(src.Provider), sealed, src.Enabled,
		unixnano.Of(src.CreatedAt), unixnano.Of(src.UpdatedAt), unixnano.Of(src.LastEventAt)); err != nil {
		return fmt.Errorf("source/postgres: create: %w", err)
	}
	return nil
}

// Get implements source.Store.
func (s *Store) Get(ctx context.Context, id string) (source.Source, error) {
	src, err := scan(s.db.Pool.QueryRow(ctx, `SELECT `+columns+` FROM sources WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) { // pgx.ErrNoRows matches it
		return source.Source{}, notFound(id)
	}
	if err != nil {
		return source.Source{}, fmt.Errorf("source/postgres: get: %w", err)
	}
	return src, nil
}

// List implements source.Store.
func (s *Store) List(ctx context.Context) ([]source.Source, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT `+columns+` FROM sources ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("source/postgres: list: %w", err)
	}
	defer rows.Close()
	out := []source.Source{}
	for rows.Next() {
		src, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("source/postgres: list: %w", err)
		}
		out = append(out, src)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("source/postgres: list: %w", err)
	}
	return out, nil
}

// Update implements source.Store.
func (s *Store) Update(ctx context.Context, src source.Source) error {
	sealed, err := source.Seal(src.Secrets)
	if err != nil {
		return err
	}
	tag, err := s.db.Pool.Exec(ctx, `UPDATE sources SET name = $1, enabled = $2, secrets = $3, updated_at = $4 WHERE id = $5`,
		src.Name, src.Enabled, sealed, unixnano.Of(src.UpdatedAt), src.ID)
	if err != nil {
		return fmt.Errorf("source/postgres: update: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound(src.ID)
	}
	return nil
}

// Delete implements source.Store.
func (s *Store) Delete(ctx context.Context, id string) error {
	tag, err := s.db.Pool.Exec(ctx, `DELETE FROM sources WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("source/postgres: delete: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound(id)
	}
	return nil
}

// Touch implements source.Store. Instances touching one source at once queue on its row lock, and GREATEST
// keeps the latest time whatever order they commit in.
func (s *Store) Touch(ctx context.Context, id string, at time.Time) error {
	tag, err := s.db.Pool.Exec(ctx, `UPDATE sources SET last_event_at = GREATEST(last_event_at, $1) WHERE id = $2`,
		unixnano.Of(at), id)
	if err != nil {
		return fmt.Errorf("source/postgres: touch: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound(id)
	}
	return nil
}
