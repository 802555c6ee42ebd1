// Package postgres keeps API keys in PostgreSQL, for a deployment of several instances that share one
// database.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/userhook/userhook/apikey"
	"github.com/userhook/userhook/internal/postgresdb"
)

// Component is apikey.Component: the api_keys table has one name in the migration records of both databases.
const Component = apikey.Component

// Migrations are the SQL files that create and change the api_keys table, applied in version order on open.
//
//go:embed migrations/*.sql
var Migrations embed.FS

var _ apikey.Store = (*Store)(nil)

// Store is the PostgreSQL API key store.
type Store struct{ db *postgresdb.DB }

// New migrates the api_keys table of db and returns the store.
func New(ctx context.Context, db *postgresdb.DB) (*Store, error) {
	if err := db.Migrate(ctx, Component, Migrations); err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

const keyColumns = `id, name, role, hash, created_at, revoked_at`

// Create implements apikey.Store.
func (s *Store) Create(ctx context.Context, k apikey.Key) error {
	if _, err := s.db.Pool.Exec(ctx, `INSERT INTO api_keys (id, name, role, hash, created_at) VALUES ($1, $2, $3, $4, $5)`,
		k.ID, k.Name, string(k.Role), k.Hash, k.CreatedAt.UnixNano()); err != nil {
		return fmt.Errorf("apikey/postgres: create: %w", err)
	}
	return nil
}

// List implements apikey.Store.
func (s *Store) List(ctx context.Context) ([]apikey.Key, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT `+keyColumns+` FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("apikey/postgres: list: %w", err)
	}
	defer rows.Close()
	var out []apikey.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("apikey/postgres: list: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("apikey/postgres: list: %w", err)
	}
	return out, nil
}

// Revoke implements apikey.Store; a key revoked before keeps its first revocation time.
func (s *Store) Revoke(ctx context.Context, id string, at time.Time) error {
	tag, err := s.db.Pool.Exec(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2`, at.UnixNano(), id)
	if err != nil {
		return fmt.Errorf("apikey/postgres: revoke: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return apikey.ErrNotFound
	}
	return nil
}

// ByHash implements apikey.Store.
func (s *Store) ByHash(ctx context.Context, hash string) (apikey.Key, error) {
	k, err := scanKey(s.db.Pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return apikey.Key{}, apikey.ErrNotFound
	}
	if err != nil {
		return apikey.Key{}, fmt.Errorf("apikey/postgres: by hash: %w", err)
	}
	return k, nil
}

func scanKey(r pgx.Row) (apikey.Key, error) {
	var k apikey.Key
	var role string
	var created int64
	var revoked *int64
	if err := r.Scan(&k.ID, &k.Name, &role, &k.Hash, &created, &revoked); err != nil {
		return apikey.Key{}, err
	}
	k.Role = apikey.Role(role)
	k.CreatedAt = time.Unix(0, created).UTC()
	if revoked != nil {
		t := time.Unix(0, *revoked).UTC()
		k.RevokedAt = &t
	}
	return k, nil
}
