package postgresdb_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/internal/postgresdb"
	"github.com/userhook/userhook/internal/postgresdb/pgtest"
)

// TestIntegrationLocksAndChannelsPerSchema: a session lock named alike (the relay's) is held by one instance
// of a deployment at a time, but deployments in two schemas of one database each take their own; their
// channels differ too.
func TestIntegrationLocksAndChannelsPerSchema(t *testing.T) {
	ctx := context.Background()
	open := func(url string) *postgresdb.DB {
		db, err := postgresdb.Open(ctx, url, 0)
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	urlA, urlB := pgtest.URL(t), pgtest.URL(t)
	a1, a2, b := open(urlA), open(urlA), open(urlB)
	try := func(db *postgresdb.DB) bool {
		conn, err := db.Pool.Acquire(ctx)
		require.NoError(t, err)
		t.Cleanup(conn.Release)
		var got bool
		require.NoError(t, conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, db.Lock("relay")).Scan(&got))
		t.Cleanup(func() { _, _ = conn.Exec(context.Background(), `SELECT pg_advisory_unlock_all()`) })
		return got
	}
	assert.True(t, try(a1), "the first instance leads")
	assert.False(t, try(a2), "a second instance of the same deployment waits")
	assert.True(t, try(b), "another deployment's instance leads its own")
	assert.Equal(t, a1.Channel("c"), a2.Channel("c"))
	assert.NotEqual(t, a1.Channel("c"), b.Channel("c"))
	assert.NotEqual(t, a1.LockSpace("users"), b.LockSpace("users"))
}
