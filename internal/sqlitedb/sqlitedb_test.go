package sqlitedb_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/internal/sqlitedb"
	"github.com/userhook/userhook/internal/sqlitedb/sqlitetest"
)

// synchronous reads the write connection's setting inside a transaction of the given durability.
func synchronous(t *testing.T, db *sqlitedb.DB, durable bool) int {
	t.Helper()
	var mode int
	require.NoError(t, db.Tx(context.Background(), durable, func(tx *sql.Tx) error {
		return tx.QueryRow(`PRAGMA synchronous`).Scan(&mode)
	}))
	return mode
}

func TestTxDurability(t *testing.T) {
	t.Parallel()
	db := sqlitetest.Open(t)
	const normal, full = 1, 2
	assert.Equal(t, full, synchronous(t, db, true))
	assert.Equal(t, normal, synchronous(t, db, false), "a lazy transaction commits without an fsync")
	assert.Equal(t, full, synchronous(t, db, true), "a durable one after it is fsync'd again")
	assert.Equal(t, normal, synchronous(t, db, false))
	assert.Equal(t, normal, synchronous(t, db, false))

	var journal string
	require.NoError(t, db.Read.QueryRow(`PRAGMA journal_mode`).Scan(&journal))
	assert.Equal(t, "wal", journal)
}

func TestTxRollsBackOnError(t *testing.T) {
	t.Parallel()
	db := sqlitetest.Open(t)
	ctx := context.Background()
	_, err := db.Exec(ctx, true, `CREATE TABLE t (v INTEGER)`)
	require.NoError(t, err)
	err = db.Tx(ctx, true, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO t VALUES (1)`); err != nil {
			return err
		}
		return assert.AnError
	})
	require.ErrorIs(t, err, assert.AnError)
	var n int
	require.NoError(t, db.Read.QueryRow(`SELECT COUNT(*) FROM t`).Scan(&n))
	assert.Zero(t, n)
}
