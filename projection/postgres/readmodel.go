// Package postgres is the users read model and the projection checkpoints in PostgreSQL, for a scaled-out
// deployment in which several instances project into, and read from, one database.
//
// The rows are those of the SQLite read model, column for column: user_id, the email and its lower-case key,
// email_verified, name, status, the profile as JSON text, created_at and updated_at in Unix nanoseconds (0 for
// the zero time), version and position.
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/internal/postgresdb"
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

// ReadModel is the PostgreSQL users table and checkpoints table.
type ReadModel struct {
	db       *postgresdb.DB
	announce string // the NOTIFY channel of every commit, when set
	space    int32  // this schema's advisory-lock space for user ids
}

// New migrates the read-model tables of db and returns the read model on them.
func New(ctx context.Context, db *postgresdb.DB) (*ReadModel, error) {
	if err := db.Migrate(ctx, Component, Migrations); err != nil {
		return nil, err
	}
	return &ReadModel{db: db, space: db.LockSpace(userLockSpace)}, nil
}

// userColumns are the columns scanUser reads; email_key is written beside them.
const userColumns = `user_id, email, email_verified, name, status, profile, created_at, updated_at, version, position`

const writeColumns = userColumns + `, email_key`

func scanUser(r pgx.Row) (aggregate.User, error) {
	var u aggregate.User
	var status, profile string
	var created, updated int64
	if err := r.Scan(&u.ID, &u.Email, &u.EmailVerified, &u.Name, &status, &profile, &created, &updated, &u.Version, &u.Position); err != nil {
		return aggregate.User{}, err
	}
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

// values is the row of u, in writeColumns order.
func values(u aggregate.User) ([]any, error) {
	profile := "{}"
	if len(u.Profile) > 0 {
		b, err := json.Marshal(u.Profile)
		if err != nil {
			return nil, fmt.Errorf("readmodel: profile of %s: %w", u.ID, err)
		}
		profile = string(b)
	}
	status := u.Status
	if status == "" {
		status = aggregate.StatusActive
	}
	return []any{u.ID, u.Email, u.EmailVerified, u.Name, string(status), profile, unixnano.Of(u.CreatedAt), unixnano.Of(u.UpdatedAt),
		u.Version, u.Position, projection.EmailKey(u.Email)}, nil
}

// upsertUsers writes many rows in one statement, one array per column in writeColumns order. A row is written
// only over a stored row of a lower version: no batch moves a row back, and a row built from nothing (a fresh
// user, which Batch does not read) leaves alone a stored row that already has its version or a later one.
const upsertUsers = `INSERT INTO users (` + writeColumns + `)
	SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[], $5::text[], $6::text[], $7::bigint[],
	                     $8::bigint[], $9::bigint[], $10::bigint[], $11::text[])
	ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, email_key = excluded.email_key, email_verified = excluded.email_verified,
	name = excluded.name, status = excluded.status, profile = excluded.profile, created_at = excluded.created_at,
	updated_at = excluded.updated_at, version = excluded.version, position = excluded.position
	WHERE users.version < excluded.version`

// upsertFresh is upsertUsers for the rows of fresh users, and returns those of them that had a row already,
// with the version it had. A row it inserts costs no lookup: xmax is 0 on an inserted row and set on an
// updated one (by the lock ON CONFLICT takes), and only an updated row, or one the version check left alone
// (not in written), is looked up. The lookups see the rows as they were before the statement (its snapshot),
// so they find the version before the write.
const upsertFresh = `WITH written AS (` + upsertUsers + `
	RETURNING user_id, CASE WHEN xmax <> 0 THEN (SELECT o.version FROM users o WHERE o.user_id = users.user_id) END AS before)
	SELECT f.id, COALESCE(w.before, (SELECT o.version FROM users o WHERE o.user_id = f.id))
	FROM unnest($1::text[]) AS f(id) LEFT JOIN written w ON w.user_id = f.id
	WHERE w.user_id IS NULL OR w.before IS NOT NULL`

const upsertCheckpoint = `INSERT INTO checkpoints (name, position) VALUES ($1, $2)
	ON CONFLICT (name) DO UPDATE SET position = GREATEST(checkpoints.position, excluded.position)`

// userLockSpace names the first key of the transaction-level advisory locks Batch takes on user ids
// (postgresdb.DB.LockSpace). The two-key lock space does not overlap the one-key space of the other locks.
const userLockSpace = "users"

// lockUsers takes the advisory locks in the order of the array, which lockKeys sorts, so that two batches
// never wait for each other in a cycle.
const lockUsers = `SELECT count(pg_advisory_xact_lock($1::int4, k)) FROM unnest($2::int4[]) AS k`

// lockKeys are the sorted, distinct advisory-lock keys of ids. Two ids may share a key; that costs only an
// occasional wait.
func lockKeys(ids []string) []int32 {
	keys := make([]int32, 0, len(ids))
	for _, id := range ids {
		h := fnv.New32a()
		_, _ = h.Write([]byte(id))
		keys = append(keys, int32(h.Sum32()))
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

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

// Batch implements projection.ReadModel. Besides locking the rows it reads (FOR UPDATE), it takes an advisory
// lock per user id, fresh or read, for the transaction: a row lock cannot hold a user that has no row yet, and
// without the advisory lock two instances could both start that user from zero and the later commit would
// overwrite the earlier one. With it, batches that share a user run one after the other, as SQLite's single
// writer runs every batch. When every user is fresh, no row is read at all.
func (m *ReadModel) Batch(ctx context.Context, name string, position int64, users projection.BatchUsers,
	fn func(rows map[string]*aggregate.User) ([]string, error)) (map[string]int64, error) {
	read := slices.Compact(slices.Sorted(slices.Values(users.Read)))
	fresh := slices.DeleteFunc(slices.Compact(slices.Sorted(slices.Values(users.Fresh))), func(id string) bool {
		_, found := slices.BinarySearch(read, id)
		return found
	})
	tx, err := m.db.RoundTrips(ctx)
	if err != nil {
		return nil, fmt.Errorf("readmodel: connect: %w", err)
	}
	defer tx.Release(ctx)
	rows := make(map[string]*aggregate.User, len(read)+len(fresh))
	for _, id := range read {
		rows[id] = &aggregate.User{ID: id}
	}
	for _, id := range fresh {
		rows[id] = &aggregate.User{ID: id}
	}
	// First round trip: open the transaction, lock the users, read the rows of those not fresh.
	var first pgx.Batch
	first.Queue(`BEGIN`)
	if len(rows) > 0 {
		first.Queue(lockUsers, m.space, lockKeys(append(slices.Clip(read), fresh...)))
	}
	if len(read) > 0 {
		first.Queue(`SELECT `+userColumns+` FROM users WHERE user_id = ANY($1) ORDER BY user_id FOR UPDATE`, read)
	}
	err = tx.Send(ctx, &first, func(res pgx.BatchResults) error {
		if _, err := res.Exec(); err != nil {
			return fmt.Errorf("readmodel: begin: %w", err)
		}
		if len(rows) > 0 {
			if _, err := res.Exec(); err != nil {
				return fmt.Errorf("readmodel: lock users: %w", err)
			}
		}
		if len(read) == 0 {
			return nil
		}
		q, err := res.Query()
		if err != nil {
			return fmt.Errorf("readmodel: read: %w", err)
		}
		defer q.Close()
		for q.Next() {
			u, err := scanUser(q)
			if err != nil {
				return fmt.Errorf("readmodel: read: %w", err)
			}
			*rows[u.ID] = u
		}
		return q.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("readmodel: %w", err)
	}
	changed, err := fn(rows)
	if err != nil {
		return nil, err
	}
	// Second round trip: the changed rows (those read in one statement, the fresh ones in another), the
	// checkpoint, the announcement, the commit.
	var readCols, freshCols rowColumns
	changed = slices.Compact(slices.Sorted(slices.Values(changed))) // one row each: ON CONFLICT may touch a row once
	for _, id := range changed {
		u, ok := rows[id]
		if !ok {
			return nil, fmt.Errorf("readmodel: %s is reported changed but was not read", id)
		}
		cols := &readCols
		if _, isFresh := slices.BinarySearch(fresh, id); isFresh {
			cols = &freshCols
		}
		if err := cols.add(*u); err != nil {
			return nil, err
		}
	}
	var second pgx.Batch
	if len(readCols.id) > 0 {
		second.Queue(upsertUsers, readCols.args()...)
	}
	if len(freshCols.id) > 0 {
		second.Queue(upsertFresh, freshCols.args()...)
	}
	second.Queue(upsertCheckpoint, name, position)
	second.Queue(`COMMIT`)
	if m.announce != "" {
		second.Queue(postgresdb.Announce, m.announce, strconv.FormatInt(position, 10))
	}
	var existing map[string]int64
	committed := false
	err = tx.Send(ctx, &second, func(res pgx.BatchResults) error {
		if len(readCols.id) > 0 {
			if _, err := res.Exec(); err != nil {
				return fmt.Errorf("readmodel: write: %w", err)
			}
		}
		if len(freshCols.id) > 0 {
			q, err := res.Query()
			if err != nil {
				return fmt.Errorf("readmodel: write: %w", err)
			}
			defer q.Close()
			for q.Next() {
				var id string
				var before *int64
				if err := q.Scan(&id, &before); err != nil {
					return fmt.Errorf("readmodel: write: %w", err)
				}
				if before != nil {
					if existing == nil {
						existing = map[string]int64{}
					}
					existing[id] = *before
				}
			}
			if err := q.Err(); err != nil {
				return fmt.Errorf("readmodel: write: %w", err)
			}
			q.Close()
		}
		if _, err := res.Exec(); err != nil {
			return fmt.Errorf("readmodel: checkpoint: %w", err)
		}
		if _, err := res.Exec(); err != nil {
			return fmt.Errorf("readmodel: commit: %w", err)
		}
		committed = true
		if m.announce != "" {
			_, _ = res.Exec() // after the commit: an announcement lost is not a batch lost
		}
		return nil
	})
	if !committed {
		return nil, err
	}
	tx.Committed()
	return existing, nil
}

// rowColumns are rows as the column arrays upsertUsers takes, in writeColumns order.
type rowColumns struct {
	id, email, name, status, profile, emailKey []string
	verified                                   []bool
	created, updated, version, position        []int64
}

func (c *rowColumns) add(u aggregate.User) error {
	vals, err := values(u)
	if err != nil {
		return err
	}
	c.id = append(c.id, vals[0].(string))
	c.email = append(c.email, vals[1].(string))
	c.verified = append(c.verified, vals[2].(bool))
	c.name = append(c.name, vals[3].(string))
	c.status = append(c.status, vals[4].(string))
	c.profile = append(c.profile, vals[5].(string))
	c.created = append(c.created, vals[6].(int64))
	c.updated = append(c.updated, vals[7].(int64))
	c.version = append(c.version, vals[8].(int64))
	c.position = append(c.position, vals[9].(int64))
	c.emailKey = append(c.emailKey, vals[10].(string))
	return nil
}

func (c *rowColumns) args() []any {
	return []any{c.id, c.email, c.verified, c.name, c.status, c.profile, c.created, c.updated, c.version, c.position, c.emailKey}
}

// AnnounceCommits has every Batch notify this schema's channel of that name (postgresdb.DB.Channel) with the
// position it committed: other instances' readers LISTEN to it to advance their trackers. One notification
// per batch, sent on commit.
func (m *ReadModel) AnnounceCommits(channel string) { m.announce = m.db.Channel(channel) }

// Checkpoint implements stream.Checkpoints.
func (m *ReadModel) Checkpoint(ctx context.Context, name string) (int64, error) {
	var pos int64
	err := m.db.Pool.QueryRow(ctx, `SELECT position FROM checkpoints WHERE name = $1`, name).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("readmodel: checkpoint %s: %w", name, err)
	}
	return pos, nil
}

// SaveCheckpoint implements stream.Checkpoints.
func (m *ReadModel) SaveCheckpoint(ctx context.Context, name string, position int64) error {
	if _, err := m.db.Pool.Exec(ctx, upsertCheckpoint, name, position); err != nil {
		return fmt.Errorf("readmodel: save checkpoint %s: %w", name, err)
	}
	return nil
}

// Get implements projection.ReadModel.
func (m *ReadModel) Get(ctx context.Context, userID string) (aggregate.User, error) {
	u, err := scanUser(m.db.Pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE user_id = $1`, userID))
	if errors.Is(err, pgx.ErrNoRows) {
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
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Email != "" {
		where = append(where, `email_key = `+arg(projection.EmailKey(f.Email)))
	}
	if f.Status != "" {
		where = append(where, `status = `+arg(f.Status))
	}
	if f.After != "" {
		where = append(where, `user_id > `+arg(f.After))
	}
	q := `SELECT ` + userColumns + ` FROM users`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	// A negative limit means no limit, as it does in SQLite (LIMIT NULL is LIMIT ALL).
	var limit any = f.Limit
	if f.Limit < 0 {
		limit = nil
	}
	q += ` ORDER BY user_id LIMIT ` + arg(limit)
	rows, err := m.db.Pool.Query(ctx, q, args...)
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
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("readmodel: list: %w", err)
	}
	return out, nil
}

// Rebuild implements projection.ReadModel. The rows are copied into a temporary table first, then the users
// table is emptied and filled from it and the checkpoint set, in one transaction. TRUNCATE locks the table
// until the commit, so readers wait for the new rows and never see a half-built table; the lock is held
// for a server-side copy only, not while the rows travel from the client. TRUNCATE rather than a new table
// swapped in by rename keeps the table itself (its indexes, grants and owner, and whatever later migrations
// add) without copying its definition. Two users with one id fail the copy into the table after TRUNCATE,
// and the rollback brings back the old rows.
func (m *ReadModel) Rebuild(ctx context.Context, name string, position int64, users []aggregate.User) error {
	cols := strings.Split(writeColumns, ", ")
	return pgx.BeginFunc(ctx, m.db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMPORARY TABLE users_rebuild (LIKE users INCLUDING DEFAULTS) ON COMMIT DROP`); err != nil {
			return fmt.Errorf("readmodel: create rebuild table: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"users_rebuild"}, cols, pgx.CopyFromSlice(len(users), func(i int) ([]any, error) {
			return values(users[i])
		})); err != nil {
			return fmt.Errorf("readmodel: rebuild: %w", err)
		}
		if _, err := tx.Exec(ctx, `TRUNCATE users`); err != nil {
			return fmt.Errorf("readmodel: rebuild: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO users (`+writeColumns+`) SELECT `+writeColumns+` FROM users_rebuild`); err != nil {
			return fmt.Errorf("readmodel: rebuild: %w", err)
		}
		// The checkpoint is set exactly, and last: a Batch takes the users table before the checkpoint row, so
		// taking them in the same order cannot deadlock with it. Going back only repeats work after a restart:
		// the projection skips what a row already has.
		if _, err := tx.Exec(ctx, `INSERT INTO checkpoints (name, position) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET position = excluded.position`, name, position); err != nil {
			return fmt.Errorf("readmodel: rebuild checkpoint: %w", err)
		}
		return nil
	})
}

// Rows implements projection.ReadModel: each row's stored values, Go-quoted strings and decimal numbers in
// userColumns order, so two PostgreSQL read models compare byte for byte. (The text differs from the SQLite
// model's, which is SQLite's quote().)
func (m *ReadModel) Rows(ctx context.Context) ([]string, error) {
	q, err := m.db.Pool.Query(ctx, `SELECT `+userColumns+` FROM users ORDER BY user_id`)
	if err != nil {
		return nil, fmt.Errorf("readmodel: rows: %w", err)
	}
	defer q.Close()
	var out []string
	for q.Next() {
		var id, email, name, status, profile string
		var verified bool
		var created, updated, version, position int64
		if err := q.Scan(&id, &email, &verified, &name, &status, &profile, &created, &updated, &version, &position); err != nil {
			return nil, fmt.Errorf("readmodel: rows: %w", err)
		}
		out = append(out, fmt.Sprintf("%q,%q,%t,%q,%q,%q,%d,%d,%d,%d",
			id, email, verified, name, status, profile, created, updated, version, position))
	}
	if err := q.Err(); err != nil {
		return nil, fmt.Errorf("readmodel: rows: %w", err)
	}
	return out, nil
}
