package sqlite_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/internal/sqlitedb"
	"github.com/userhook/userhook/internal/sqlitedb/sqlitetest"
	"github.com/userhook/userhook/projection"
	"github.com/userhook/userhook/projection/readmodeltest"
	projsqlite "github.com/userhook/userhook/projection/sqlite"
)

func newModel(t *testing.T) (*projsqlite.ReadModel, *sqlitedb.DB) {
	t.Helper()
	db := sqlitetest.Open(t)
	m, err := projsqlite.New(context.Background(), db)
	require.NoError(t, err)
	return m, db
}

func TestContract(t *testing.T) {
	t.Parallel()
	readmodeltest.Run(t, func(t *testing.T) projection.ReadModel {
		m, _ := newModel(t)
		return m
	})
}

func indexNames(t *testing.T, db *sqlitedb.DB) []string {
	t.Helper()
	q, err := db.Read.QueryContext(context.Background(), `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'users' ORDER BY name`)
	require.NoError(t, err)
	defer q.Close()
	var out []string
	for q.Next() {
		var n string
		require.NoError(t, q.Scan(&n))
		out = append(out, n)
	}
	require.NoError(t, q.Err())
	return out
}

// Rebuild swaps in a new table, so it must recreate the indexes the migrations made; the contract suite sees
// only that lookups still work, not that they still use an index.
func TestRebuildKeepsTheIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, db := newModel(t)
	readmodeltest.Put(t, m, readmodeltest.User("u1", "a@example.com", aggregate.StatusActive, 1, 1))
	indexes := indexNames(t, db)
	require.Contains(t, indexes, "users_email")
	require.Contains(t, indexes, "users_status")

	for _, users := range [][]aggregate.User{
		{readmodeltest.User("u2", "b@example.com", aggregate.StatusActive, 1, 2)},
		{readmodeltest.User("u3", "c@example.com", aggregate.StatusActive, 1, 3)},
		nil,
	} {
		require.NoError(t, m.Rebuild(ctx, readmodeltest.Name, 3, users))
		assert.Equal(t, indexes, indexNames(t, db), "the indexes come back with the table")
	}

	var plan string
	require.NoError(t, db.Read.QueryRowContext(ctx, `EXPLAIN QUERY PLAN SELECT user_id FROM users WHERE email_key = ?`, "x").
		Scan(new(int), new(int), new(int), &plan))
	assert.Contains(t, plan, "users_email", "the email filter uses its index after a rebuild")
}

// Readers use their own pool and never wait for the single writer, which WAL journaling allows: a read
// from inside a write transaction sees the last committed rows instead of blocking.
func TestReadsDuringAWriteUseWAL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, db := newModel(t)
	var mode string
	require.NoError(t, db.Read.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode))
	assert.Equal(t, "wal", mode)

	readmodeltest.Put(t, m, readmodeltest.User("u1", "a@example.com", aggregate.StatusActive, 1, 1))
	_, err := m.Batch(ctx, readmodeltest.Name, 2, projection.BatchUsers{Read: []string{"u1"}}, func(rows map[string]*aggregate.User) ([]string, error) {
		got, err := m.Get(ctx, "u1")
		require.NoError(t, err)
		assert.Equal(t, int64(1), got.Version)
		pos, err := m.Checkpoint(ctx, readmodeltest.Name)
		require.NoError(t, err)
		assert.Equal(t, int64(1), pos)
		rows["u1"].Version = 2
		return []string{"u1"}, nil
	})
	require.NoError(t, err)
	pos, err := m.Checkpoint(ctx, readmodeltest.Name)
	require.NoError(t, err)
	assert.Equal(t, int64(2), pos)
}
