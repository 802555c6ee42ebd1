package apikey

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/userhook/userhook/internal/sqlitedb"
)

// Component names the api_keys table in the database's migration records (goose_api_keys), in SQLite and
// PostgreSQL alike: never rename it.
const Component = "api_keys"

// SQLiteMigrations are the SQL files that create and change the SQLite api_keys table, applied in version
// order on open.
//
//go:embed migrations/*.sql
var SQLiteMigrations embed.FS

// SQLiteStore keeps keys in the embedded database.
type SQLiteStore struct{ db *sqlitedb.DB }

var _ Store = (*SQLiteStore)(nil)

// NewSQLiteStore migrates the api_keys table and returns the store.
func NewSQLiteStore(ctx context.Context, db *sqlitedb.DB) (*SQLiteStore, error) {
	if err := db.Migrate(ctx, Component, SQLiteMigrations); err != nil {
		return nil, err
	}
	return &SQLiteStore{db: db}, nil
}

// Create implements Store.
func (s *SQLiteStore) Create(ctx context.Context, k Key) error {
	_, err := s.db.Exec(ctx, true, `INSERT INTO api_keys (id, name, role, hash, created_at) VALUES (?, ?, ?, ?, ?)`,
		k.ID, k.Name, string(k.Role), k.Hash, k.CreatedAt.UnixNano())
	if err != nil {
		return fmt.Errorf("apikey: create: %w", err)
	}
	return nil
}

// List implements Store.
func (s *SQLiteStore) List(ctx context.Context) ([]Key, error) {
	rows, err := s.db.Read.QueryContext(ctx, `SELECT id, name, role, hash, created_at, revoked_at FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("apikey: list: %w", err)
	}
	defer rows.Close()
	var out []Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// Revoke implements Store.
func (s *SQLiteStore) Revoke(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.Exec(ctx, true, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, at.UnixNano(), id)
	if err != nil {
		return fmt.Errorf("apikey: revoke: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// ByHash implements Store.
func (s *SQLiteStore) ByHash(ctx context.Context, hash string) (Key, error) {
	row := s.db.Read.QueryRowContext(ctx, `SELECT id, name, role, hash, created_at, revoked_at FROM api_keys WHERE hash = ?`, hash)
	k, err := scanKey(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Key{}, ErrNotFound
	}
	return k, err
}

type scanner interface{ Scan(...any) error }

func scanKey(r scanner) (Key, error) {
	var k Key
	var role string
	var created int64
	var revoked sql.NullInt64
	if err := r.Scan(&k.ID, &k.Name, &role, &k.Hash, &created, &revoked); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Key{}, err
		}
		return Key{}, fmt.Errorf("apikey: scan: %w", err)
	}
	k.Role = Role(role)
	k.CreatedAt = time.Unix(0, created).UTC()
	if revoked.Valid {
		t := time.Unix(0, revoked.Int64).UTC()
		k.RevokedAt = &t
	}
	return k, nil
}
