// Package sqlite is the users read model and the projection checkpoints in the embedded SQLite database.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/internal/sqlitedb"
	"github.com/userhook/userhook/internal/unixnano"
	"github.com/userhook/userhook/projection"
)

// Component names this package's tables in the database's migration records (goose_readmodel): never rename it.
const Component = "readmodel"

// Migrations are the SQL files that create and change the read-model tables, applied in version order on open.
//
//go:embed migrations/*.sql
var Migrations embed.FS

var _ projection.ReadModel = (*ReadModel)(nil)

// ReadModel is the SQLite users table.
type ReadModel struct{ db *sqlitedb.DB }

// New migrates the read-model tables of db.
func New(ctx context.Context, db *sqlitedb.DB) (*ReadModel, error) {
	if err := db.Migrate(ctx, Component, Migrations); err != nil {
		return nil, err
	}
	return &ReadModel{db: db}, nil
}

// userColumns are the columns scanUser reads; email_key (the email in lower case, for the case-insensitive
// filter) is written beside them.
const userColumns = `user_id, email, email_verified, name, status, profile, created_at, updated_at, version, position`

const writeColumns = userColumns + `, email_key`

type scanner interface{ Scan(...any) error }

func scanUser(r scanner) (aggregate.User, error) {
	var u aggregate.User
	var verified int
	var status, profile string
	var created, updated int64
	if err := r.Scan(&u.ID, &u.Email, &verified, &u.Name, &status, &profile, &created, &updated, &u.Version, &u.Position); err != nil {
		return aggregate.User{}, err
	}
	u.EmailVerified = verified != 0
	u.Status = aggregate.Status(status)
	if profile != "" && profile != "{}" {
		if err := json.Unmarshal([]byte(profile), &u.Profile); err != nil {
			return aggregate.User{}, fmt.Errorf("readmodel: profile of %s: %w", u.ID, err)
		}
	}
	u.CreatedAt = unixnano.Time(created)
	u.UpdatedAt = unixnano.Time(updated)
	return u, nil
}

// values is the row of u, in userColumns order.
func values(u aggregate.User) ([]any, error) {
	profile := "{}"
	if len(u.Profile) > 0 {
		b, err := json.Marshal(u.Profile)
		if err != nil {
			return nil, err
		}
		profile = string(b)
	}
	status := u.Status
	if status == "" {
		status = aggregate.StatusActive
	}
	verified := 0
	if u.EmailVerified {
		verified = 1
	}
	return []any{u.ID, u.Email, verified, u.Name, string(status), profile, unixnano.Of(u.CreatedAt), unixnano.Of(u.UpdatedAt),
		u.Version, u.Position, projection.EmailKey(u.Email)}, nil
}

// upsertUser writes a row over a stored row of a lower version only: no batch moves a row back.
const upsertUser = `INSERT INTO users (` + writeColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, email_key = excluded.email_key, email_verified = excluded.email_verified,
	name = excluded.name, status = excluded.status, profile = excluded.profile, created_at = excluded.created_at,
	updated_at = excluded.updated_at, version = excluded.version, position = excluded.position
	WHERE users.version < excluded.version`

// insertFresh writes the row of a fresh user, which Batch did not read, when it has none; when it has one,
// Batch reads that row's version and writes with upsertUser, which keeps a row at that version or a later one.
const insertFresh = `INSERT INTO users (` + writeColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (user_id) DO NOTHING`

const upsertCheckpoint = `INSERT INTO checkpoints (name, position) VALUES (?, ?)
	ON CONFLICT (name) DO UPDATE SET position = MAX(position, excluded.position)`

// Update implements projection.ReadModel.
func (m *ReadModel) Update(ctx context.Context, name string, position int64, userID string, fn func(u *aggregate.User) (bool, error)) error {
	_, err := m.Batch(ctx, name, position, projection.BatchUsers{Read: []string{userID}}, func(rows map[string]*aggregate.User) ([]string, error) {
		changed, err := fn(rows[userID])
		if err != nil || !changed {
			return nil, err
		}
		return []string{userID}, nil
	})
	return err
}

// Batch implements projection.ReadModel. The rows of fresh users are not read: a fresh row is inserted, and
// only when that finds a row already is that row's version read.
func (m *ReadModel) Batch(ctx context.Context, name string, position int64, users projection.BatchUsers,
	fn func(rows map[string]*aggregate.User) ([]string, error)) (map[string]int64, error) {
	var existing map[string]int64
	err := m.db.Tx(ctx, false, func(tx *sql.Tx) error {
		existing = nil
		rows := make(map[string]*aggregate.User, len(users.Read)+len(users.Fresh))
		if len(users.Read) > 0 {
			// One query for every row of the batch (a JSON array of ids), not one per user.
			ids, err := json.Marshal(users.Read)
			if err != nil {
				return err
			}
			found, err := tx.QueryContext(ctx, `SELECT `+userColumns+` FROM users WHERE user_id IN (SELECT value FROM json_each(?))`, string(ids))
			if err != nil {
				return fmt.Errorf("readmodel: read rows: %w", err)
			}
			for found.Next() {
				u, err := scanUser(found)
				if err != nil {
					found.Close()
					return fmt.Errorf("readmodel: read rows: %w", err)
				}
				rows[u.ID] = &u
			}
			if err := found.Close(); err != nil {
				return err
			}
			if err := found.Err(); err != nil {
				return err
			}
		}
		fresh := map[string]bool{}
		for _, id := range users.Read {
			if _, ok := rows[id]; !ok {
				rows[id] = &aggregate.User{ID: id}
			}
		}
		for _, id := range users.Fresh {
			if _, ok := rows[id]; !ok {
				rows[id] = &aggregate.User{ID: id}
				fresh[id] = true
			}
		}
		changed, err := fn(rows)
		if err != nil {
			return err
		}
		var put, insert *sql.Stmt
		defer func() {
			for _, s := range []*sql.Stmt{put, insert} {
				if s != nil {
					_ = s.Close()
				}
			}
		}()
		written := map[string]bool{}
		for _, id := range changed {
			u, ok := rows[id]
			if !ok {
				return fmt.Errorf("readmodel: %s is reported changed but was not read", id)
			}
			if written[id] {
				continue
			}
			written[id] = true
			vals, err := values(*u)
			if err != nil {
				return err
			}
			if fresh[id] {
				if insert == nil {
					if insert, err = tx.PrepareContext(ctx, insertFresh); err != nil {
						return err
					}
				}
				res, err := insert.ExecContext(ctx, vals...)
				if err != nil {
					return fmt.Errorf("readmodel: write %s: %w", id, err)
				}
				n, err := res.RowsAffected()
				if err != nil {
					return fmt.Errorf("readmodel: write %s: %w", id, err)
				}
				if n == 1 {
					continue // a new row
				}
				var before int64
				if err := tx.QueryRowContext(ctx, `SELECT version FROM users WHERE user_id = ?`, id).Scan(&before); err != nil {
					return fmt.Errorf("readmodel: read %s: %w", id, err)
				}
				if existing == nil {
					existing = map[string]int64{}
				}
				existing[id] = before
			}
			if put == nil {
				if put, err = tx.PrepareContext(ctx, upsertUser); err != nil {
					return err
				}
			}
			if _, err := put.ExecContext(ctx, vals...); err != nil {
				return fmt.Errorf("readmodel: write %s: %w", id, err)
			}
		}
		if _, err := tx.ExecContext(ctx, upsertCheckpoint, name, position); err != nil {
			return fmt.Errorf("readmodel: checkpoint: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return existing, nil
}

// Checkpoint implements stream.Checkpoints.
func (m *ReadModel) Checkpoint(ctx context.Context, name string) (int64, error) {
	var pos int64
	err := m.db.Read.QueryRowContext(ctx, `SELECT position FROM checkpoints WHERE name = ?`, name).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("readmodel: checkpoint %s: %w", name, err)
	}
	return pos, nil
}

// SaveCheckpoint implements stream.Checkpoints.
func (m *ReadModel) SaveCheckpoint(ctx context.Context, name string, position int64) error {
	if _, err := m.db.Exec(ctx, false, upsertCheckpoint, name, position); err != nil {
		return fmt.Errorf("readmodel: save checkpoint %s: %w", name, err)
	}
	return nil
}

// Get implements projection.ReadModel.
func (m *ReadModel) Get(ctx context.Context, userID string) (aggregate.User, error) {
	u, err := scanUser(m.db.Read.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE user_id = ?`, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return aggregate.User{}, userhook.Errorf(userhook.ErrNotFound, "no user %q", userID)
	}
	if err != nil {
		return aggregate.User{}, fmt.Errorf("readmodel: get: %w", err)
	}
	return u, nil
}

// List implements projection.ReadModel.
func (m *ReadModel) List(ctx context.Context, f projection.ListFilter) ([]aggregate.User, error) {
	var where []string
	var args []any
	if f.Email != "" {
		where = append(where, `email_key = ?`)
		args = append(args, projection.EmailKey(f.Email))
	}
	if f.Status != "" {
		where = append(where, `status = ?`)
		args = append(args, f.Status)
	}
	if f.After != "" {
		where = append(where, `user_id > ?`)
		args = append(args, f.After)
	}
	q := `SELECT ` + userColumns + ` FROM users`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY user_id LIMIT ?`
	args = append(args, f.Limit)
	rows, err := m.db.Read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("readmodel: list: %w", err)
	}
	defer rows.Close()
	out := []aggregate.User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("readmodel: list: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// Rebuild implements projection.ReadModel: a fresh table built from users replaces the old one, with the
// checkpoint, in one transaction; readers see the old table until it commits.
func (m *ReadModel) Rebuild(ctx context.Context, name string, position int64, users []aggregate.User) error {
	return m.db.Tx(ctx, false, func(tx *sql.Tx) error {
		var tableSQL string
		if err := tx.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'users'`).Scan(&tableSQL); err != nil {
			return fmt.Errorf("readmodel: users schema: %w", err)
		}
		indexSQL, err := indexes(ctx, tx)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS users_rebuild`); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, strings.Replace(tableSQL, "users", "users_rebuild", 1)); err != nil {
			return fmt.Errorf("readmodel: create rebuild table: %w", err)
		}
		if err := insertRebuild(ctx, tx, users); err != nil {
			return err
		}
		for _, q := range []string{`DROP TABLE users`, `ALTER TABLE users_rebuild RENAME TO users`} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("readmodel: swap: %w", err)
			}
		}
		for _, q := range indexSQL {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("readmodel: index: %w", err)
			}
		}
		// The checkpoint is set exactly. Going back only repeats work after a restart: the projection skips
		// what a row already has.
		if _, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (name, position) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET position = excluded.position`, name, position); err != nil {
			return err
		}
		return nil
	})
}

// rebuildBatch is how many rows one INSERT of a rebuild writes.
const rebuildBatch = 100

// insertRebuild writes users into users_rebuild, rebuildBatch rows a statement. Each row's values (the JSON of
// its profile, its email key) are made on another goroutine while SQLite inserts the batch before.
func insertRebuild(ctx context.Context, tx *sql.Tx, users []aggregate.User) error {
	type batch struct {
		users []aggregate.User
		args  []any
		err   error
	}
	batches := make(chan batch, 2)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Go(func() {
		defer close(batches)
		for lo := 0; lo < len(users); lo += rebuildBatch {
			b := batch{users: users[lo:min(lo+rebuildBatch, len(users))]}
			for _, u := range b.users {
				vals, err := values(u)
				if err != nil {
					b.err = err
					break
				}
				if b.args == nil {
					b.args = make([]any, 0, len(b.users)*len(vals))
				}
				b.args = append(b.args, vals...)
			}
			select {
			case batches <- b:
			case <-stop:
				return
			}
			if b.err != nil {
				return
			}
		}
	})
	statements := map[int]*sql.Stmt{} // by rows: the full batch's, and the last one's
	defer func() {
		for _, s := range statements {
			_ = s.Close()
		}
	}()
	for b := range batches {
		if b.err != nil {
			return b.err
		}
		stmt := statements[len(b.users)]
		if stmt == nil {
			q := `INSERT INTO users_rebuild (` + writeColumns + `) VALUES ` +
				strings.Repeat(rowPlaceholders+`, `, len(b.users)-1) + rowPlaceholders
			var err error
			if stmt, err = tx.PrepareContext(ctx, q); err != nil {
				return err
			}
			statements[len(b.users)] = stmt
		}
		if err := execQuery(ctx, stmt, b.args); err != nil {
			return fmt.Errorf("readmodel: rebuild %s to %s: %w", b.users[0].ID, b.users[len(b.users)-1].ID, err)
		}
	}
	return nil
}

// execQuery runs a statement that returns no rows through Query rather than Exec: go-sqlite3 binds a query's
// parameters and steps it in one call into C, and an Exec's one call for each parameter.
func execQuery(ctx context.Context, stmt *sql.Stmt, args []any) error {
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	for rows.Next() {
	}
	if err := rows.Close(); err != nil {
		return err
	}
	return rows.Err()
}

// rowPlaceholders are the parameters of one row of writeColumns.
const rowPlaceholders = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

func indexes(ctx context.Context, tx *sql.Tx) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'users' AND sql IS NOT NULL ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var q string
		if err := rows.Scan(&q); err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, rows.Err()
}

// Rows implements projection.ReadModel: each row's stored values as SQL literals (SQLite's quote()), so two
// read models compare byte for byte.
func (m *ReadModel) Rows(ctx context.Context) ([]string, error) {
	cols := strings.Split(userColumns, ", ")
	for i, c := range cols {
		cols[i] = "quote(" + c + ")"
	}
	rows, err := m.db.Read.QueryContext(ctx, `SELECT `+strings.Join(cols, ` || ',' || `)+` FROM users ORDER BY user_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, err
		}
		out = append(out, line)
	}
	return out, rows.Err()
}
