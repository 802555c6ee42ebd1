package postgresdb

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// RoundTrips is one transaction sent as a few pipelined batches on one pooled connection: the caller's first
// batch opens it (BEGIN first), its last closes it (COMMIT last), and each batch is one round trip to the
// server. A batch that reads decides what the next one writes. Release rolls the transaction back unless
// Committed was called, so a failure never leaves it open on a connection that goes back to the pool.
type RoundTrips struct {
	conn      *pgxpool.Conn
	committed bool
}

// RoundTrips acquires a connection for a pipelined transaction; Release gives it back.
func (db *DB) RoundTrips(ctx context.Context) (*RoundTrips, error) {
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &RoundTrips{conn: conn}, nil
}

// Send sends b in one round trip and hands its results to read, in the order the statements were queued;
// every result is drained before Send returns, and the first error is returned.
func (rt *RoundTrips) Send(ctx context.Context, b *pgx.Batch, read func(pgx.BatchResults) error) error {
	res := rt.conn.SendBatch(ctx, b)
	err := read(res)
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	return err
}

// Committed records that the batch holding COMMIT succeeded.
func (rt *RoundTrips) Committed() { rt.committed = true }

// Release rolls back a transaction not committed, within 2 s (on a connection that stopped answering, the
// caller must not wait: pgxpool destroys a connection left inside a transaction anyway), and gives the
// connection back.
func (rt *RoundTrips) Release(ctx context.Context) {
	if !rt.committed {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_, _ = rt.conn.Exec(rctx, `ROLLBACK`)
		cancel()
	}
	rt.conn.Release()
}

// Announce NOTIFYs channel $1 with payload $2, queued right after a pipelined transaction's COMMIT, in a
// transaction of its own that does not wait for the WAL flush. A NOTIFY inside a transaction makes its COMMIT
// hold PostgreSQL's notify-queue lock until the commit is flushed, which lines up the commits of every
// notifying transaction on the server (the event store's and the read model's, of every instance) one flush
// after the other. After the COMMIT it holds that lock for microseconds. A client that dies between the two
// loses only the announcement; listeners also poll. A caller reads its result but does not fail on it: the
// transaction before it committed.
const Announce = `SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2)`
