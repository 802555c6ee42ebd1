// Package sqlite is the embedded event store on a SQLite file.
//
// One writer goroutine owns all appends. Appends that arrive while a commit is in flight queue up and are
// committed together in the next transaction (group commit): one fsync for the whole group, each append in a
// savepoint of its own so that a failing one (a version conflict, a duplicate id) fails only its caller, and
// every caller is answered only after the transaction holding its events has committed. Positions are the
// table's rowid, assigned by that single writer in commit order, so a reader resuming from the last position
// it saw never skips an event.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/internal/sqlitedb"
)

// Component names this package's tables in the database's migration records (goose_events): never rename it.
const Component = "events"

// Migrations are the SQL files that create and change the events table, applied in version order on open.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// MaxBatch bounds how many appends share one transaction.
const MaxBatch = 512

var _ eventstore.Store = (*Store)(nil)
var _ eventstore.Notifier = (*Store)(nil)
var _ eventstore.Recent = (*Store)(nil)

// Store is the SQLite event store.
type Store struct {
	db  *sqlitedb.DB
	now func() time.Time

	writer *eventstore.GroupCommit

	committed eventstore.Broadcast
	stats     Stats
	statsMu   sync.Mutex

	receipts receipts // the receipts functions' statements and filter (receipts.go)
}

// Stats counts the writer's work, for benchmarks and metrics.
type Stats struct {
	Commits int64 // transactions committed
	Appends int64 // append calls committed or refused
}

// New migrates the events table in db and starts the writer. Close stops it.
func New(ctx context.Context, db *sqlitedb.DB) (*Store, error) {
	if err := db.Migrate(ctx, Component, Migrations); err != nil {
		return nil, err
	}
	s := &Store{db: db, now: func() time.Time { return time.Now().UTC() }}
	last, err := s.LastPosition(ctx)
	if err != nil {
		return nil, err
	}
	s.writer = eventstore.NewGroupCommit(MaxBatch, s.commitTx, s.afterCommit)
	s.writer.Heard(last) // one process writes the file: its own commits are all there is after this
	return s, nil
}

// Recent implements eventstore.Recent: the events this process committed last.
func (s *Store) Recent(after int64, limit int) ([]eventstore.Event, bool) {
	return s.writer.Recent(after, limit)
}

// Committed implements eventstore.Notifier.
func (s *Store) Committed() <-chan struct{} { return s.committed.Committed() }

// Stats returns the writer's counters so far.
func (s *Store) Stats() Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, stream string, expectedVersion int64, events ...eventstore.Event) ([]eventstore.Event, error) {
	return s.writer.Append(ctx, stream, expectedVersion, events)
}

func (s *Store) afterCommit(batch []*eventstore.Pending, err error) {
	s.statsMu.Lock()
	s.stats.Appends += int64(len(batch))
	if err == nil {
		s.stats.Commits++
	}
	s.statsMu.Unlock()
	if err == nil {
		s.committed.Signal()
	}
}

func (s *Store) commitTx(batch []*eventstore.Pending) error {
	ctx := context.Background()
	return s.db.Tx(ctx, true, func(tx *sql.Tx) error {
		versionStmt, err := tx.PrepareContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = ?`)
		if err != nil {
			return fmt.Errorf("eventstore/sqlite: prepare: %w", err)
		}
		defer versionStmt.Close()
		insertStmt, err := tx.PrepareContext(ctx, `INSERT INTO events
			(event_id, stream_id, stream_type, version, type, data, metadata, occurred_at, recorded_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("eventstore/sqlite: prepare: %w", err)
		}
		defer insertStmt.Close()

		now := s.now()
		for _, r := range batch {
			if err := r.Ctx.Err(); err != nil {
				r.Err = err
				continue
			}
			// A failing INSERT undoes only itself (SQLite aborts the statement, not the transaction), so an
			// append of one event needs no savepoint; several events do, so that a later one failing undoes
			// the first.
			multi := len(r.Events) > 1
			if multi {
				if _, err := tx.ExecContext(ctx, `SAVEPOINT append`); err != nil {
					return fmt.Errorf("eventstore/sqlite: savepoint: %w", err)
				}
			}
			r.Out, r.Err = appendOne(ctx, versionStmt, insertStmt, r, now)
			if r.Err != nil {
				r.Out = nil
				if multi {
					if _, err := tx.ExecContext(ctx, `ROLLBACK TO append`); err != nil {
						return fmt.Errorf("eventstore/sqlite: rollback to savepoint: %w", err)
					}
				}
			}
			if multi {
				if _, err := tx.ExecContext(ctx, `RELEASE append`); err != nil {
					return fmt.Errorf("eventstore/sqlite: release savepoint: %w", err)
				}
			}
		}
		return nil
	})
}

func appendOne(ctx context.Context, versionStmt, insertStmt *sql.Stmt, r *eventstore.Pending, now time.Time) ([]eventstore.Event, error) {
	// A new stream (expected version 0) needs no read: its first event takes version 1, and the unique
	// (stream, version) index refuses it when the stream exists.
	var current int64
	if r.Expected != 0 {
		if err := versionStmt.QueryRowContext(ctx, r.Stream).Scan(&current); err != nil {
			return nil, fmt.Errorf("eventstore/sqlite: read version: %w", err)
		}
		if r.Expected != eventstore.ExpectAny && current != r.Expected {
			return nil, &eventstore.VersionConflictError{Stream: r.Stream, Expected: r.Expected, Actual: current}
		}
	}
	out := make([]eventstore.Event, len(r.Events))
	for i, e := range r.Events {
		e.StreamID = r.Stream
		e.Version = current + int64(i) + 1
		e.RecordedAt = now
		if e.OccurredAt.IsZero() {
			e.OccurredAt = now
		}
		e.OccurredAt = e.OccurredAt.UTC()
		meta, err := eventstore.EncodeMetadata(e.Metadata)
		if err != nil {
			return nil, err
		}
		data := []byte(e.Data)
		if data == nil {
			data = []byte("null")
		}
		res, err := insertStmt.ExecContext(ctx, e.ID, e.StreamID, e.StreamType, e.Version, e.Type, data, meta,
			e.OccurredAt.UnixNano(), e.RecordedAt.UnixNano())
		if err != nil {
			err = classify(err, r.Stream, r.Expected, current, e.ID)
			var vc *eventstore.VersionConflictError
			if errors.As(err, &vc) && r.Expected == 0 {
				// The unread stream existed: say at which version.
				_ = versionStmt.QueryRowContext(ctx, r.Stream).Scan(&vc.Actual)
			}
			return nil, err
		}
		if e.Position, err = res.LastInsertId(); err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

// classify turns a constraint failure into the store's typed errors.
func classify(err error, stream string, expected, current int64, eventID string) error {
	var se sqlite3.Error
	if errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique {
		switch {
		case strings.Contains(se.Error(), "events.event_id"):
			return &eventstore.DuplicateError{EventID: eventID}
		case strings.Contains(se.Error(), "events.stream_id"):
			return &eventstore.VersionConflictError{Stream: stream, Expected: expected, Actual: current}
		}
	}
	return fmt.Errorf("eventstore/sqlite: insert: %w", err)
}

const selectColumns = `SELECT ` + eventstore.Columns + ` FROM events`

// Load implements eventstore.Store.
func (s *Store) Load(ctx context.Context, stream string) ([]eventstore.Event, error) {
	rows, err := s.db.Read.QueryContext(ctx, selectColumns+` WHERE stream_id = ? ORDER BY version`, stream)
	if err != nil {
		return nil, fmt.Errorf("eventstore/sqlite: load: %w", err)
	}
	return scanEvents(rows)
}

// ReadAll implements eventstore.Store. It reads the rows through the driver (readPage): a replay reads the
// whole table a page at a time, and database/sql's Rows cost it a third more than the driver does.
func (s *Store) ReadAll(ctx context.Context, after int64, limit int) ([]eventstore.Event, error) {
	if limit <= 0 {
		return nil, nil
	}
	events, err := readPage(ctx, s.db.Read, after, limit)
	if err != nil {
		return nil, fmt.Errorf("eventstore/sqlite: read all: %w", err)
	}
	return events, nil
}

// LastPosition implements eventstore.Store.
func (s *Store) LastPosition(ctx context.Context) (int64, error) {
	var pos int64
	err := s.db.Read.QueryRowContext(ctx, `SELECT COALESCE(MAX(position), 0) FROM events`).Scan(&pos)
	if err != nil {
		return 0, fmt.Errorf("eventstore/sqlite: last position: %w", err)
	}
	return pos, nil
}

// Ping implements eventstore.Store.
func (s *Store) Ping(ctx context.Context) error {
	var n int64
	return s.db.Read.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM events LIMIT 1)`).Scan(&n)
}

// Close implements eventstore.Store: it refuses new appends, commits the queued ones and stops the writer.
// The database itself belongs to the caller.
func (s *Store) Close() error {
	s.writer.Close()
	s.receipts.close(s.db)
	return nil
}

func scanEvents(rows *sql.Rows) ([]eventstore.Event, error) {
	defer rows.Close()
	var out []eventstore.Event
	for rows.Next() {
		e, err := eventstore.ScanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("eventstore/sqlite: scan: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("eventstore/sqlite: rows: %w", err)
	}
	return out, nil
}

var _ eventstore.Receipts = (*Store)(nil)

// Received implements eventstore.Receipts.
func (s *Store) Received(ctx context.Context, key string) (bool, error) {
	r := s.rc()
	found, err := r.queryBool(ctx, &r.receivedStmt, receivedQuery, key, key)
	if err != nil {
		return false, fmt.Errorf("eventstore/sqlite: received: %w", err)
	}
	return found, nil
}

// Receipted says whether key was recorded by Receive, not looking at the stored events: the question
// ingest.Service asks of every provider event before deciding (a copy of a stored event is refused by the
// append, or by Receive, all the same). It is answered from memory for a key never recorded: a filter of
// every receipt key, built when the store first needs it, and kept as Receive records more. It relies on
// this process being the one that records receipts in the file.
func (s *Store) Receipted(ctx context.Context, key string) (bool, error) {
	found, err := s.rc().receipted(ctx, key)
	if err != nil {
		return false, fmt.Errorf("eventstore/sqlite: receipted: %w", err)
	}
	return found, nil
}

// Receive implements eventstore.Receipts.
func (s *Store) Receive(ctx context.Context, key, outcome string) error {
	var res sql.Result
	err := s.rc().receive(key, func() (err error) {
		res, err = s.db.Exec(ctx, true, receiveQuery, key, outcome, s.now().UnixNano(), key)
		return err
	})
	if err != nil {
		return fmt.Errorf("eventstore/sqlite: receive: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return &eventstore.DuplicateError{EventID: key}
	}
	return nil
}

var _ eventstore.Prober = (*Store)(nil)
var _ eventstore.CommitObserver = (*Store)(nil)

// Writes implements eventstore.Prober.
func (s *Store) Writes() eventstore.Writes { return s.writer.Health.Writes() }

// Probe implements eventstore.Prober: one durable write on the write connection, as an append's.
func (s *Store) Probe(ctx context.Context) error {
	now := s.now()
	_, err := s.db.Exec(ctx, true, `INSERT INTO write_probe (id, at) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET at = excluded.at`, now.UnixNano())
	s.writer.Health.Record(now, err)
	return err
}

// ObserveCommits implements eventstore.CommitObserver.
func (s *Store) ObserveCommits(fn func(appends int)) { s.writer.ObserveCommits(fn) }
