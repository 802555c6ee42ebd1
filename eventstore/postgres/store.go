// Package postgres is the event store on PostgreSQL, for several userhook instances on one database.
//
// Positions are never skipped by a reader, even with many writers on many instances: every append
// transaction takes one transaction-scoped advisory lock before it assigns positions (MAX + 1, ...), and holds
// it until it commits. Transactions that write events therefore commit one after another in position order, so
// any snapshot a reader takes holds a prefix of the log: position N+1 is never visible while N is not. (This is
// the failure of ThreeDotsLabs/watermill issue 311, where sequence values are taken in one order and committed in
// another; Watermill fixed it with transaction-id snapshots. The lock is simpler and gapless; its cost is that
// appends are serialised across instances, which group commit amortises: one lock, one transaction and one
// WAL flush per batch.)
//
// Within the lock every check is made in Go from two reads (the streams' versions, the ids already stored), so
// no insert fails and no savepoint is needed; the batch is then written with one INSERT ... SELECT FROM unnest.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/internal/postgresdb"
)

// Component names this package's tables in the database's migration records (goose_events): never rename it.
const Component = "events"

// Migrations are the SQL files that create and change the events tables, applied in version order on open.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// appendLock names the advisory lock every append transaction holds until it commits (postgresdb.DB.Lock).
const appendLock = "append"

// channel names the LISTEN/NOTIFY channel on which commits are announced to every instance
// (postgresdb.DB.Channel).
const channel = "userhook_events"

// MaxBatch bounds how many appends share one transaction.
const MaxBatch = 512

var _ eventstore.Store = (*Store)(nil)
var _ eventstore.Notifier = (*Store)(nil)
var _ eventstore.Recent = (*Store)(nil)
var _ eventstore.Receipts = (*Store)(nil)

// Store is the PostgreSQL event store.
type Store struct {
	db  *postgresdb.DB
	now func() time.Time
	// lock and channel are this schema's append lock and announcement channel.
	lock    int64
	channel string
	// fastMiss is set after a batch commitFast could not write: the next one is decided by reading first.
	// Only the writer's goroutine touches it.
	fastMiss bool

	writer *eventstore.GroupCommit

	committed  eventstore.Broadcast
	stopListen context.CancelFunc
	listenDone chan struct{}
}

// New migrates the events tables, starts the writer, and listens for commits of other instances.
func New(ctx context.Context, db *postgresdb.DB) (*Store, error) {
	if err := db.Migrate(ctx, Component, Migrations); err != nil {
		return nil, err
	}
	s := &Store{
		db:         db,
		now:        func() time.Time { return time.Now().UTC() },
		lock:       db.Lock(appendLock),
		channel:    db.Channel(channel),
		listenDone: make(chan struct{}),
	}
	s.writer = eventstore.NewGroupCommit(MaxBatch, s.commit, s.afterCommit)
	lctx, cancel := context.WithCancel(context.Background())
	s.stopListen = cancel
	go s.listen(lctx)
	return s, nil
}

// Recent implements eventstore.Recent: the events this process committed last.
func (s *Store) Recent(after int64, limit int) ([]eventstore.Event, bool) {
	return s.writer.Recent(after, limit)
}

// Committed implements eventstore.Notifier: it fires on commits of this instance and, through LISTEN, of every
// other instance on the database.
func (s *Store) Committed() <-chan struct{} { return s.committed.Committed() }

func (s *Store) listen(ctx context.Context) {
	defer close(s.listenDone)
	// Once listening, the newest position is read: every commit after it is announced. The announcement
	// carries the position a commit reached (an earlier release's carried none: the store is asked then).
	heard := func(ctx context.Context) {
		if last, err := s.LastPosition(ctx); err == nil {
			s.writer.Heard(last)
		}
		s.committed.Signal()
	}
	s.db.Listen(ctx, s.channel, slog.Default(), heard, func(payload string) {
		if pos, err := strconv.ParseInt(payload, 10, 64); err == nil {
			s.writer.Heard(pos)
			s.committed.Signal()
			return
		}
		heard(ctx)
	})
}

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, stream string, expectedVersion int64, events ...eventstore.Event) ([]eventstore.Event, error) {
	return s.writer.Append(ctx, stream, expectedVersion, events)
}

func (s *Store) afterCommit(_ []*eventstore.Pending, err error) {
	if err == nil {
		s.committed.Signal()
	}
}

func (s *Store) commit(batch []*eventstore.Pending) (err error) {
	// The writer is shared by every append: a stalled database must fail this batch within the deadline
	// rather than hold every caller. A commit cut short is rolled back by the server; none is half-written.
	ctx := context.Background()
	if s.db.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.db.Timeout)
		defer cancel()
	}
	defer func() {
		// A commit cut short by its deadline says so, whatever error the driver surfaced (a closed
		// connection, a cancelled statement): callers answer it as a database that did not answer in time.
		if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
	}()
	// Most batches are decided by the unique indexes alone: a new user's stream starts at version 1, an
	// update names the version it read. They are written in one round trip, without reading first. A batch
	// the indexes refuse (a version another append took, an event id stored before) is decided by reading.
	if !s.fastMiss && fastEligible(batch) {
		done, err := s.commitFast(ctx, batch)
		if done || err != nil {
			return err
		}
		// The next batch goes the reading way: a run of duplicates (a provider retrying) pays for one
		// refused round trip, not one per batch.
		s.fastMiss = true
	} else {
		s.fastMiss = false
	}
	// The checks are read before the append lock is taken, so that the lock, which every instance's commits
	// wait for, is held only while the server inserts and flushes, never across a round trip. Another
	// instance may commit to the same stream, or the same event id, in between: the unique indexes refuse
	// the insert then, and the batch is decided again with the lock taken first.
	err = s.commitOnce(ctx, batch, false)
	if isUniqueViolation(err) && ctx.Err() == nil {
		err = s.commitOnce(ctx, batch, true)
	}
	return err
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == uniqueViolation
}

// fastEligible says whether every append of batch names the version it expects, so that its events'
// versions are known without reading the stream.
func fastEligible(batch []*eventstore.Pending) bool {
	for _, r := range batch {
		if r.Expected == eventstore.ExpectAny {
			return false
		}
	}
	return true
}

// insertIfAtExpected is insertAfterLast, written only if every stream of $11 has the version of $12 stored
// (0: the stream is new, which the unique index checks): an append that expects a version its stream does
// not have yet would otherwise leave a gap. Nothing is written when one does not.
const insertIfAtExpected = insertAfterLast + `
	WHERE NOT EXISTS (SELECT 1 FROM unnest($11::text[], $12::bigint[]) AS x(s, v)
		WHERE x.v > 0 AND NOT EXISTS (SELECT 1 FROM events e WHERE e.stream_id = x.s AND e.version = x.v))`

// commitFast writes batch in one pipelined round trip, as if every append's stream were at the version it
// expects and none of its event ids were stored: the transaction, the lock, the newest position, the insert,
// the commit and the announcement. done is false, with nothing written, when that was not so (the unique
// indexes refused the insert, or a stream lacked the version expected): the batch must then be decided by
// reading.
func (s *Store) commitFast(ctx context.Context, batch []*eventstore.Pending) (done bool, err error) {
	now := s.now()
	var rows Rows
	var n int64
	streams := make([]string, 0, len(batch))
	expected := make([]int64, 0, len(batch))
	for _, r := range batch {
		r.Out, r.Err = nil, nil
		if err := r.Ctx.Err(); err != nil {
			r.Err = err
			continue
		}
		out, err := place(&rows, &n, r, r.Expected, now)
		if err != nil {
			return true, err
		}
		r.Out = out
		streams = append(streams, r.Stream)
		expected = append(expected, r.Expected)
	}
	if n == 0 {
		return true, nil
	}
	tx, err := s.db.RoundTrips(ctx)
	if err != nil {
		return true, fmt.Errorf("eventstore/postgres: connect: %w", err)
	}
	defer tx.Release(ctx)
	var b pgx.Batch
	b.Queue(`BEGIN`)
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, s.lock)
	b.Queue(`SELECT COALESCE(MAX(position), 0) FROM events`)
	b.Queue(insertIfAtExpected, append(rows.Args(), streams, expected)...)
	b.Queue(`COMMIT`)
	b.Queue(announceNewest, s.channel)
	var last, written int64
	committed := false
	err = tx.Send(ctx, &b, func(res pgx.BatchResults) error {
		for _, what := range []string{"begin", "lock"} {
			if _, err := res.Exec(); err != nil {
				return fmt.Errorf("eventstore/postgres: %s: %w", what, err)
			}
		}
		if err := res.QueryRow().Scan(&last); err != nil {
			return fmt.Errorf("eventstore/postgres: last position: %w", err)
		}
		tag, err := res.Exec()
		if err != nil {
			return fmt.Errorf("eventstore/postgres: insert: %w", err)
		}
		written = tag.RowsAffected()
		if _, err := res.Exec(); err != nil {
			return fmt.Errorf("eventstore/postgres: commit: %w", err)
		}
		committed = true
		_, _ = res.Exec() // after the commit: an announcement lost is not an append lost
		return nil
	})
	if !committed {
		if isUniqueViolation(err) && ctx.Err() == nil {
			return false, nil
		}
		return true, err
	}
	tx.Committed()
	if written != n {
		// Nothing was written (the insert is all or nothing); the commit only ended the transaction.
		return false, nil
	}
	for _, r := range batch {
		for i := range r.Out {
			r.Out[i].Position += last
		}
	}
	return true, nil
}

// place adds the events of append r, its stream at version current, to rows at the positions after *n
// (counted from 1 until the newest stored position is known), and returns them as they will be stored.
func place(rows *Rows, n *int64, r *eventstore.Pending, current int64, now time.Time) ([]eventstore.Event, error) {
	out := make([]eventstore.Event, len(r.Events))
	for i, e := range r.Events {
		*n++
		e.StreamID = r.Stream
		e.Version = current + int64(i) + 1
		e.Position = *n
		e.RecordedAt = now
		if e.OccurredAt.IsZero() {
			e.OccurredAt = now
		}
		e.OccurredAt = e.OccurredAt.UTC()
		if err := rows.Add(e); err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

// announceNewest is postgresdb.Announce with the newest stored position for payload.
const announceNewest = `SELECT set_config('synchronous_commit', 'off', true),
	pg_notify($1, (SELECT COALESCE(MAX(position), 0) FROM events)::text)`

// uniqueViolation is PostgreSQL's SQLSTATE for a duplicate key.
const uniqueViolation = "23505"

// insertAfterLast writes the events of Rows, whose positions count from 1, after the newest stored position.
const insertAfterLast = `INSERT INTO events
	(position, event_id, stream_id, stream_type, version, type, data, metadata, occurred_at, recorded_at)
	SELECT l.last + t.p, t.id, t.stream, t.stream_type, t.version, t.type, t.data, t.metadata, t.occurred, t.recorded
	FROM (SELECT COALESCE(MAX(position), 0) AS last FROM events) AS l,
	     unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bytea[],
	            $8::text[], $9::bigint[], $10::bigint[])
	     AS t(p, id, stream, stream_type, version, type, data, metadata, occurred, recorded)`

// commitOnce decides and writes batch in two pipelined round trips: the checks, then the lock, the insert,
// the announcement and the commit. lockFirst takes the append lock before the checks instead.
func (s *Store) commitOnce(ctx context.Context, batch []*eventstore.Pending, lockFirst bool) error {
	tx, err := s.db.RoundTrips(ctx)
	if err != nil {
		return fmt.Errorf("eventstore/postgres: connect: %w", err)
	}
	defer tx.Release(ctx)
	streams := make([]string, 0, len(batch))
	var ids []string
	for _, r := range batch {
		r.Out, r.Err = nil, nil
		streams = append(streams, r.Stream)
		for _, e := range r.Events {
			ids = append(ids, e.ID)
		}
	}
	// First round trip: open the transaction and read what the checks need.
	var first pgx.Batch
	first.Queue(`BEGIN`)
	if lockFirst {
		first.Queue(`SELECT pg_advisory_xact_lock($1)`, s.lock)
	}
	// One index probe per stream (the newest version of (stream_id, version)), whatever the planner knows of
	// the table; streams without events come back 0.
	first.Queue(`SELECT s.id, COALESCE((SELECT MAX(version) FROM events WHERE stream_id = s.id), 0)
		FROM unnest($1::text[]) AS s(id)`, streams)
	first.Queue(`SELECT event_id FROM events WHERE event_id = ANY($1)`, ids)
	versions := map[string]int64{}
	stored := map[string]bool{}
	err = tx.Send(ctx, &first, func(res pgx.BatchResults) error {
		if _, err := res.Exec(); err != nil {
			return fmt.Errorf("eventstore/postgres: begin: %w", err)
		}
		if lockFirst {
			if _, err := res.Exec(); err != nil {
				return fmt.Errorf("eventstore/postgres: lock: %w", err)
			}
		}
		rows, err := res.Query()
		if err != nil {
			return fmt.Errorf("eventstore/postgres: versions: %w", err)
		}
		for rows.Next() {
			var id string
			var v int64
			if err := rows.Scan(&id, &v); err != nil {
				rows.Close()
				return err
			}
			versions[id] = v
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("eventstore/postgres: versions: %w", err)
		}
		rows, err = res.Query()
		if err != nil {
			return fmt.Errorf("eventstore/postgres: ids: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			stored[id] = true
		}
		rows.Close()
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("eventstore/postgres: %w", err)
	}

	now := s.now()
	var rows Rows
	var n int64 // the events written, whose positions count from 1 until the newest stored one is known
	for _, r := range batch {
		if err := r.Ctx.Err(); err != nil {
			r.Err = err
			continue
		}
		current := versions[r.Stream]
		if r.Expected != eventstore.ExpectAny && current != r.Expected {
			r.Err = &eventstore.VersionConflictError{Stream: r.Stream, Expected: r.Expected, Actual: current}
			continue
		}
		dup := ""
		for _, e := range r.Events {
			if stored[e.ID] {
				dup = e.ID
				break
			}
		}
		if dup != "" {
			r.Err = &eventstore.DuplicateError{EventID: dup}
			continue
		}
		out, err := place(&rows, &n, r, current, now)
		if err != nil {
			return err
		}
		for _, e := range out {
			stored[e.ID] = true
		}
		versions[r.Stream] = current + int64(len(r.Events))
		r.Out = out
	}
	// Second round trip: the lock, the newest position, the batch's events after it, the announcement of
	// the position reached to every instance, and the commit.
	var second pgx.Batch
	if n > 0 {
		if !lockFirst {
			second.Queue(`SELECT pg_advisory_xact_lock($1)`, s.lock)
		}
		second.Queue(`SELECT COALESCE(MAX(position), 0) FROM events`)
		second.Queue(insertAfterLast, rows.Args()...)
	}
	second.Queue(`COMMIT`)
	if n > 0 {
		// The newest position is announced to every instance once committed (postgresdb.Announce).
		second.Queue(announceNewest, s.channel)
	}
	var last int64
	committed := false
	err = tx.Send(ctx, &second, func(res pgx.BatchResults) error {
		if n > 0 {
			if !lockFirst {
				if _, err := res.Exec(); err != nil {
					return fmt.Errorf("eventstore/postgres: lock: %w", err)
				}
			}
			if err := res.QueryRow().Scan(&last); err != nil {
				return fmt.Errorf("eventstore/postgres: last position: %w", err)
			}
			if _, err := res.Exec(); err != nil {
				return fmt.Errorf("eventstore/postgres: insert: %w", err)
			}
		}
		if _, err := res.Exec(); err != nil {
			return fmt.Errorf("eventstore/postgres: commit: %w", err)
		}
		committed = true
		if n > 0 {
			_, _ = res.Exec() // after the commit: an announcement lost is not an append lost
		}
		return nil
	})
	if !committed {
		return err
	}
	tx.Committed()
	for _, r := range batch {
		for i := range r.Out {
			r.Out[i].Position += last
		}
	}
	return nil
}

const selectColumns = `SELECT ` + eventstore.Columns + ` FROM events`

// Load implements eventstore.Store.
func (s *Store) Load(ctx context.Context, stream string) ([]eventstore.Event, error) {
	rows, err := s.db.Pool.Query(ctx, selectColumns+` WHERE stream_id = $1 ORDER BY version`, stream)
	if err != nil {
		return nil, fmt.Errorf("eventstore/postgres: load: %w", err)
	}
	return scanEvents(rows)
}

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, after int64, limit int) ([]eventstore.Event, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.db.Pool.Query(ctx, selectColumns+` WHERE position > $1 ORDER BY position LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("eventstore/postgres: read all: %w", err)
	}
	return scanEvents(rows)
}

func scanEvents(rows pgx.Rows) ([]eventstore.Event, error) {
	defer rows.Close()
	var out []eventstore.Event
	for rows.Next() {
		e, err := eventstore.ScanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("eventstore/postgres: scan: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// LastPosition implements eventstore.Store.
func (s *Store) LastPosition(ctx context.Context) (int64, error) {
	var pos int64
	if err := s.db.Pool.QueryRow(ctx, `SELECT COALESCE(MAX(position), 0) FROM events`).Scan(&pos); err != nil {
		return 0, fmt.Errorf("eventstore/postgres: last position: %w", err)
	}
	return pos, nil
}

// Ping implements eventstore.Store.
func (s *Store) Ping(ctx context.Context) error { return s.db.Pool.Ping(ctx) }

// Received implements eventstore.Receipts.
func (s *Store) Received(ctx context.Context, key string) (bool, error) {
	var found bool
	err := s.db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE event_id = $1)
		OR EXISTS (SELECT 1 FROM receipts WHERE key = $1)`, key).Scan(&found)
	if err != nil {
		return false, fmt.Errorf("eventstore/postgres: received: %w", err)
	}
	return found, nil
}

// Receive implements eventstore.Receipts.
func (s *Store) Receive(ctx context.Context, key, outcome string) error {
	tag, err := s.db.Pool.Exec(ctx, `INSERT INTO receipts (key, outcome, received_at)
		SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM events WHERE event_id = $1)
		ON CONFLICT (key) DO NOTHING`, key, outcome, s.now().UnixNano())
	if err != nil {
		return fmt.Errorf("eventstore/postgres: receive: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return &eventstore.DuplicateError{EventID: key}
	}
	return nil
}

// Close implements eventstore.Store: it refuses new appends, commits the queued ones, and stops listening.
// The pool belongs to the caller.
func (s *Store) Close() error {
	s.writer.Close()
	s.stopListen()
	<-s.listenDone
	return nil
}

var _ eventstore.Prober = (*Store)(nil)
var _ eventstore.CommitObserver = (*Store)(nil)

// Writes implements eventstore.Prober.
func (s *Store) Writes() eventstore.Writes { return s.writer.Health.Writes() }

// Probe implements eventstore.Prober: one small committed write.
func (s *Store) Probe(ctx context.Context) error {
	now := s.now()
	_, err := s.db.Pool.Exec(ctx, `INSERT INTO write_probe (id, at) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at`, now.UnixNano())
	s.writer.Health.Record(now, err)
	return err
}

// ObserveCommits implements eventstore.CommitObserver.
func (s *Store) ObserveCommits(fn func(appends int)) { s.writer.ObserveCommits(fn) }
