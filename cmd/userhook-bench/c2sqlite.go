package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/eventstore/sqlite"
	"github.com/userhook/userhook/internal/sqlitedb"
	"github.com/userhook/userhook/projection"
	readmodel "github.com/userhook/userhook/projection/sqlite"
	"github.com/userhook/userhook/transport"
)

// insertEvent writes one event row with its position given: the ceilings count positions in Go.
const insertEvent = `INSERT INTO events
	(position, event_id, stream_id, stream_type, version, type, data, metadata, occurred_at, recorded_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// upsertUser writes a user's row as the read model writes one (the same columns and conflict clause).
const upsertUser = `INSERT INTO users
	(user_id, email, email_verified, name, status, profile, created_at, updated_at, version, position, email_key)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, email_key = excluded.email_key, email_verified = excluded.email_verified,
	name = excluded.name, status = excluded.status, profile = excluded.profile, created_at = excluded.created_at,
	updated_at = excluded.updated_at, version = excluded.version, position = excluded.position
	WHERE users.version < excluded.version`

// emailKey carries a request's email to the writer in the append's context, so that C3's commit writes the
// user's row without decoding the event it just encoded.
type emailKey struct{}

// ceilingSQLite is C2 (level 2) or C3 (level 3), the ceilings userhook's embedded default is measured against.
// C2 is C1's work, then the event userhook would store for a new user (the same columns, a UUIDv7 id, the
// same metadata) appended to the project's events table, with its unique indexes, in a SQLite file opened as
// the project opens one (internal/sqlitedb: WAL, one write connection, synchronous=FULL for the events' commit)
// and migrated by the project's migrations; one group-commit writer (eventstore.NewGroupCommit) commits the
// appends that queued meanwhile in one transaction, one prepared INSERT per event, positions from a counter in
// Go, the 200 after the commit. C3 also upserts the user's row in the read model's users table in the same
// transaction: the read model at its cheapest, with no projection, checkpoint or second transaction. No reads,
// no cache, no relay, no pub/sub.
func ceilingSQLite(ctx context.Context, path string, level int) (http.Handler, func(), error) {
	db, err := sqlitedb.Open(path)
	if err != nil {
		return nil, nil, err
	}
	if err := db.Migrate(ctx, sqlite.Component, sqlite.Migrations); err != nil {
		db.Close()
		return nil, nil, err
	}
	if level >= 3 {
		if err := db.Migrate(ctx, readmodel.Component, readmodel.Migrations); err != nil {
			db.Close()
			return nil, nil, err
		}
	}
	var last int64
	if err := db.Read.QueryRowContext(ctx, `SELECT COALESCE(MAX(position), 0) FROM events`).Scan(&last); err != nil {
		db.Close()
		return nil, nil, err
	}
	commit := func(batch []*eventstore.Pending) error {
		// Only the writer's goroutine runs commit: last needs no lock.
		ctx := context.Background()
		now := time.Now().UTC()
		next := last
		err := db.Tx(ctx, true, func(tx *sql.Tx) error {
			insert, err := tx.PrepareContext(ctx, insertEvent)
			if err != nil {
				return err
			}
			defer insert.Close()
			var upsert *sql.Stmt
			if level >= 3 {
				if upsert, err = tx.PrepareContext(ctx, upsertUser); err != nil {
					return err
				}
				defer upsert.Close()
			}
			for _, p := range batch {
				out := make([]eventstore.Event, len(p.Events))
				for i, e := range p.Events {
					next++
					e.StreamID, e.Version, e.Position, e.RecordedAt = p.Stream, int64(i)+1, next, now
					meta, err := eventstore.EncodeMetadata(e.Metadata)
					if err != nil {
						return err
					}
					if _, err := insert.ExecContext(ctx, e.Position, e.ID, e.StreamID, e.StreamType, e.Version, e.Type,
						[]byte(e.Data), meta, e.OccurredAt.UnixNano(), now.UnixNano()); err != nil {
						return err
					}
					out[i] = e
				}
				if upsert != nil {
					email, _ := p.Ctx.Value(emailKey{}).(string)
					at := out[0].OccurredAt.UnixNano()
					if _, err := upsert.ExecContext(ctx, p.Stream, email, 0, "", string(aggregate.StatusActive), "{}",
						at, at, int64(len(out)), next, projection.EmailKey(email)); err != nil {
						return err
					}
				}
				p.Out = out
			}
			return nil
		})
		if err != nil {
			err = fmt.Errorf("C%d commit: %w", level, err)
			fmt.Fprintln(os.Stderr, err) // the bench shows the log when a ceiling answers errors
			return err
		}
		last = next
		return nil
	}
	writer := eventstore.NewGroupCommit(sqlite.MaxBatch, commit, nil)

	store := func(ctx context.Context, userID, email, requestID string) (int64, error) {
		data, err := aggregate.Encode(aggregate.UserRegistered{Email: email})
		if err != nil {
			return 0, err
		}
		id, err := uuid.NewV7()
		if err != nil {
			return 0, err
		}
		stored, err := writer.Append(context.WithValue(ctx, emailKey{}, email), userID, 0, []eventstore.Event{{
			ID: id.String(), StreamType: aggregate.StreamType, Type: aggregate.TypeUserRegistered, Data: data,
			Metadata:   map[string]string{"request_id": requestID, "source": "POST /users"},
			OccurredAt: time.Now().UTC(),
		}})
		if err != nil {
			return 0, err
		}
		return stored[0].Position, nil
	}
	return transport.Ceiling(level, []byte(secret), apiKey, store), func() { writer.Close(); db.Close() }, nil
}
