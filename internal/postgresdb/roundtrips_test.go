package postgresdb_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/internal/postgresdb"
	"github.com/userhook/userhook/internal/postgresdb/pgtest"
)

// TestIntegrationRoundTrips: a pipelined transaction that is released without its commit, or whose batch
// failed, leaves nothing behind; one that commits keeps its writes.
func TestIntegrationRoundTrips(t *testing.T) {
	ctx := context.Background()
	db, err := postgresdb.Open(ctx, pgtest.URL(t), 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	_, err = db.Pool.Exec(ctx, `CREATE TABLE rt (x INT PRIMARY KEY)`)
	require.NoError(t, err)
	count := func() int {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM rt`).Scan(&n))
		return n
	}
	exec := func(res pgx.BatchResults, n int) error {
		for range n {
			if _, err := res.Exec(); err != nil {
				return err
			}
		}
		return nil
	}

	rt, err := db.RoundTrips(ctx)
	require.NoError(t, err)
	var b pgx.Batch
	b.Queue(`BEGIN`)
	b.Queue(`INSERT INTO rt VALUES (1)`)
	require.NoError(t, rt.Send(ctx, &b, func(res pgx.BatchResults) error { return exec(res, 2) }))
	rt.Release(ctx) // a failure before the commit
	assert.Zero(t, count(), "rolled back")

	rt, err = db.RoundTrips(ctx)
	require.NoError(t, err)
	var bad pgx.Batch
	bad.Queue(`BEGIN`)
	bad.Queue(`INSERT INTO rt VALUES (2)`)
	bad.Queue(`INSERT INTO rt VALUES (2)`) // a unique violation mid-batch
	bad.Queue(`COMMIT`)
	assert.Error(t, rt.Send(ctx, &bad, func(res pgx.BatchResults) error { return exec(res, 4) }))
	rt.Release(ctx)
	assert.Zero(t, count(), "nothing of the failed batch stays")

	rt, err = db.RoundTrips(ctx)
	require.NoError(t, err)
	var good pgx.Batch
	good.Queue(`BEGIN`)
	good.Queue(`INSERT INTO rt VALUES (3)`)
	good.Queue(`COMMIT`)
	require.NoError(t, rt.Send(ctx, &good, func(res pgx.BatchResults) error { return exec(res, 3) }))
	rt.Committed()
	rt.Release(ctx)
	assert.Equal(t, 1, count())

}
