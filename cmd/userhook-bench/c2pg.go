package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
	pgstore "github.com/userhook/userhook/eventstore/postgres"
	"github.com/userhook/userhook/internal/postgresdb"
	"github.com/userhook/userhook/transport"
)

// c2Batch bounds the appends of one group commit, as eventstore/postgres bounds its own.
const c2Batch = 512

// ceilingPG is C2-PG, the ceiling userhook on PostgreSQL is measured against: C1's work (an HS256 bearer token
// verified with the pinned algorithm, X-API-Key checked against a stored SHA-256 in constant time, the POST
// /users body decoded), then the event userhook would store for a new user (the same columns, a UUIDv7 id,
// the same metadata) group-committed into the project's events table through eventstore.NewGroupCommit: one
// INSERT ... SELECT FROM unnest per batch, positions from a counter in Go, the 200 after the commit. No lock,
// no reads, no outbox, no pub/sub: what PostgreSQL itself takes for this load.
func ceilingPG(ctx context.Context, url string) (http.Handler, func(), error) {
	db, err := postgresdb.Open(ctx, url, 10*time.Second)
	if err != nil {
		return nil, nil, err
	}
	if err := db.Migrate(ctx, pgstore.Component, pgstore.Migrations); err != nil {
		db.Close()
		return nil, nil, err
	}
	var last int64
	if err := db.Pool.QueryRow(ctx, `SELECT COALESCE(MAX(position), 0) FROM events`).Scan(&last); err != nil {
		db.Close()
		return nil, nil, err
	}
	commit := func(batch []*eventstore.Pending) error {
		// Only the writer's goroutine runs commit: last needs no lock.
		ctx, cancel := context.WithTimeout(context.Background(), db.Timeout)
		defer cancel()
		var rows pgstore.Rows
		now := time.Now().UTC()
		next := last
		for _, p := range batch {
			out := make([]eventstore.Event, len(p.Events))
			for i, e := range p.Events {
				next++
				e.StreamID, e.Version, e.Position, e.RecordedAt = p.Stream, int64(i)+1, next, now
				if err := rows.Add(e); err != nil {
					return err
				}
				out[i] = e
			}
			p.Out = out
		}
		if _, err := db.Pool.Exec(ctx, pgstore.InsertRows, rows.Args()...); err != nil {
			return fmt.Errorf("C2-PG insert: %w", err)
		}
		last = next
		return nil
	}
	writer := eventstore.NewGroupCommit(c2Batch, commit, nil)

	store := func(ctx context.Context, userID, email, requestID string) (int64, error) {
		data, err := aggregate.Encode(aggregate.UserRegistered{Email: email})
		if err != nil {
			return 0, err
		}
		id, err := uuid.NewV7()
		if err != nil {
			return 0, err
		}
		stored, err := writer.Append(ctx, userID, 0, []eventstore.Event{{
			ID: id.String(), StreamType: aggregate.StreamType, Type: aggregate.TypeUserRegistered, Data: data,
			Metadata:   map[string]string{"request_id": requestID, "source": "POST /users"},
			OccurredAt: time.Now().UTC(),
		}})
		if err != nil {
			return 0, err
		}
		return stored[0].Position, nil
	}
	return transport.Ceiling(2, []byte(secret), apiKey, store), func() { writer.Close(); db.Close() }, nil
}
