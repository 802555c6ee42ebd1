// Package postgres keeps webhooks and deliveries in PostgreSQL, for a deployment of several instances that
// share one database. Their senders claim deliveries with row locks (FOR UPDATE SKIP LOCKED), so one delivery
// is never sent by two instances at once.
package postgres

import (
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/delivery"
	"github.com/userhook/userhook/internal/postgresdb"
	"github.com/userhook/userhook/internal/unixnano"
)

// Component names this package's tables in the database's migration records (goose_webhooks): never rename it.
const Component = "webhooks"

// Migrations are the SQL files that create and change the webhook tables, applied in version order on open.
//
//go:embed migrations/*.sql
var Migrations embed.FS

var _ delivery.Store = (*Store)(nil)

// Store is the PostgreSQL delivery store.
type Store struct{ db *postgresdb.DB }

// New migrates the webhook tables of db and returns the store.
func New(ctx context.Context, db *postgresdb.DB) (*Store, error) {
	if err := db.Migrate(ctx, Component, Migrations); err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// bytes never returns nil, which pgx would send as NULL.
func bytes[T ~string | ~[]byte](v T) []byte {
	return append([]byte{}, v...)
}

// execer is a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

const webhookColumns = `id, name, url, events, enabled, content_type, secrets, disabled_reason, failing_since, from_position, created_at, updated_at`

func scanWebhook(r pgx.Row) (delivery.Webhook, error) {
	var w delivery.Webhook
	var events, secrets []byte
	var failing, created, updated int64
	if err := r.Scan(&w.ID, &w.Name, &w.URL, &events, &w.Enabled, &w.ContentType, &secrets, &w.DisabledReason,
		&failing, &w.FromPosition, &created, &updated); err != nil {
		return delivery.Webhook{}, err
	}
	if err := json.Unmarshal(events, &w.Events); err != nil {
		return delivery.Webhook{}, err
	}
	if err := json.Unmarshal(secrets, &w.Secrets); err != nil {
		return delivery.Webhook{}, err
	}
	w.FailingSince, w.CreatedAt, w.UpdatedAt = unixnano.Time(failing), unixnano.Time(created), unixnano.Time(updated)
	return w, nil
}

func webhookValues(w delivery.Webhook) ([]any, error) {
	events, err := json.Marshal(w.Events)
	if err != nil {
		return nil, err
	}
	secrets, err := json.Marshal(w.Secrets)
	if err != nil {
		return nil, err
	}
	// JSON goes as text: pgx passes a string to a JSONB parameter as it is.
	return []any{w.ID, w.Name, w.URL, string(events), w.Enabled, w.ContentType, string(secrets), w.DisabledReason,
		unixnano.Of(w.FailingSince), w.FromPosition, unixnano.Of(w.CreatedAt), unixnano.Of(w.UpdatedAt)}, nil
}

// CreateWebhook implements delivery.Store.
func (s *Store) CreateWebhook(ctx context.Context, w delivery.Webhook) error {
	vals, err := webhookValues(w)
	if err != nil {
		return err
	}
	if _, err := s.db.Pool.Exec(ctx, `INSERT INTO webhooks (`+webhookColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`, vals...); err != nil {
		return fmt.Errorf("delivery/postgres: create webhook: %w", err)
	}
	return nil
}

// Webhook implements delivery.Store.
func (s *Store) Webhook(ctx context.Context, id string) (delivery.Webhook, error) {
	w, err := scanWebhook(s.db.Pool.QueryRow(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return delivery.Webhook{}, userhook.Errorf(userhook.ErrNotFound, "no webhook %q", id)
	}
	if err != nil {
		return delivery.Webhook{}, fmt.Errorf("delivery/postgres: webhook: %w", err)
	}
	return w, nil
}

// Webhooks implements delivery.Store.
func (s *Store) Webhooks(ctx context.Context) ([]delivery.Webhook, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT `+webhookColumns+` FROM webhooks ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("delivery/postgres: webhooks: %w", err)
	}
	defer rows.Close()
	out := []delivery.Webhook{}
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, fmt.Errorf("delivery/postgres: webhooks: %w", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("delivery/postgres: webhooks: %w", err)
	}
	return out, nil
}

// UpdateWebhook implements delivery.Store.
func (s *Store) UpdateWebhook(ctx context.Context, w delivery.Webhook) error {
	return updateWebhook(ctx, s.db.Pool, w)
}

func updateWebhook(ctx context.Context, db execer, w delivery.Webhook) error {
	vals, err := webhookValues(w)
	if err != nil {
		return err
	}
	tag, err := db.Exec(ctx, `UPDATE webhooks SET name = $2, url = $3, events = $4, enabled = $5, content_type = $6,
		secrets = $7, disabled_reason = $8, failing_since = $9, from_position = $10, created_at = $11, updated_at = $12
		WHERE id = $1`, vals...)
	if err != nil {
		return fmt.Errorf("delivery/postgres: update webhook: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return userhook.Errorf(userhook.ErrNotFound, "no webhook %q", w.ID)
	}
	return nil
}

// DeleteWebhook implements delivery.Store; its deliveries go with it (ON DELETE CASCADE).
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	tag, err := s.db.Pool.Exec(ctx, `DELETE FROM webhooks WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delivery/postgres: delete webhook: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return userhook.Errorf(userhook.ErrNotFound, "no webhook %q", id)
	}
	return nil
}

const deliveryColumns = `id, webhook_id, event_id, event_type, position, payload, status, attempts, response_status,
	response_body, error, created_at, last_attempt_at, next_attempt_at`

func scanDelivery(r pgx.Row) (delivery.Delivery, error) {
	var d delivery.Delivery
	var body []byte
	var created, last, next int64
	if err := r.Scan(&d.ID, &d.WebhookID, &d.EventID, &d.EventType, &d.Position, &d.Payload, &d.Status, &d.Attempts,
		&d.ResponseStatus, &body, &d.Error, &created, &last, &next); err != nil {
		return delivery.Delivery{}, err
	}
	d.ResponseBody = string(body)
	d.CreatedAt, d.LastAttemptAt, d.NextAttemptAt = unixnano.Time(created), unixnano.Time(last), unixnano.Time(next)
	return d, nil
}

func collectDeliveries(rows pgx.Rows) ([]delivery.Delivery, error) {
	defer rows.Close()
	out := []delivery.Delivery{}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// enqueueOne skips a delivery whose webhook is gone. FOR KEY SHARE holds the webhook until the transaction
// ends, so a concurrent delete either commits first (and the row is skipped) or waits and cascades to it.
const enqueueOne = `INSERT INTO deliveries (id, webhook_id, event_id, event_type, position, payload, status, created_at, next_attempt_at)
	SELECT $1::text, $2::text, $3::text, $4::text, $5::bigint, $6::bytea, $7::text, $8::bigint, $9::bigint
	WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = $2::text FOR KEY SHARE)
	ON CONFLICT (webhook_id, event_id) DO NOTHING`

const advanceCheckpoint = `INSERT INTO checkpoints (name, position) VALUES ($1, $2)
	ON CONFLICT (name) DO UPDATE SET position = GREATEST(checkpoints.position, EXCLUDED.position)`

// Enqueue implements delivery.Store. The rows go in one round trip, in (webhook, event) order: two
// consumers enqueueing the same deliveries then wait on each other rather than deadlock.
func (s *Store) Enqueue(ctx context.Context, name string, position int64, deliveries []delivery.Delivery) error {
	sorted := slices.Clone(deliveries)
	slices.SortStableFunc(sorted, func(a, b delivery.Delivery) int {
		return cmp.Or(strings.Compare(a.WebhookID, b.WebhookID), strings.Compare(a.EventID, b.EventID))
	})
	// The deliveries and the checkpoint in one transaction and one round trip.
	var batch pgx.Batch
	batch.Queue(`BEGIN`)
	for _, d := range sorted {
		batch.Queue(enqueueOne, d.ID, d.WebhookID, d.EventID, d.EventType, d.Position, bytes(d.Payload), d.Status,
			unixnano.Of(d.CreatedAt), unixnano.Of(d.NextAttemptAt))
	}
	batch.Queue(advanceCheckpoint, name, position)
	batch.Queue(`COMMIT`)
	tx, err := s.db.RoundTrips(ctx)
	if err != nil {
		return fmt.Errorf("delivery/postgres: enqueue: %w", err)
	}
	defer tx.Release(ctx)
	err = tx.Send(ctx, &batch, func(res pgx.BatchResults) error {
		for range batch.Len() {
			if _, err := res.Exec(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delivery/postgres: enqueue: %w", err)
	}
	tx.Committed()
	return nil
}

// Checkpoint implements delivery.Store.
func (s *Store) Checkpoint(ctx context.Context, name string) (int64, error) {
	var pos int64
	err := s.db.Pool.QueryRow(ctx, `SELECT position FROM checkpoints WHERE name = $1`, name).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("delivery/postgres: checkpoint: %w", err)
	}
	return pos, nil
}

// claim leases the soonest due deliveries of each webhook not skipped (by the deliveries_claim index, so a
// skipped webhook's backlog is never scanned), then the soonest of those. SKIP LOCKED passes over rows
// another instance's claim is leasing right now, and a row it has leased and committed meanwhile is rechecked
// and fails locked_until <= now, so every row goes to one claimer; rows the outer LIMIT leaves out are only
// locked until this statement commits. The locking select is a MATERIALIZED CTE rather than an IN
// (sub-select): that way it runs exactly once, where a sub-select the planner chose to rescan could lock more
// rows than the limit. LIMIT NULL is no limit.
const claim = `WITH due AS MATERIALIZED (
		SELECT d.id FROM webhooks w
		CROSS JOIN LATERAL (
			SELECT id, next_attempt_at, position FROM deliveries
			WHERE webhook_id = w.id AND status = 'pending' AND next_attempt_at <= $2 AND locked_until <= $2
			ORDER BY next_attempt_at, position
			LIMIT $3
			FOR UPDATE SKIP LOCKED) d
		WHERE w.id <> ALL($4::text[])
		ORDER BY d.next_attempt_at, d.position
		LIMIT $5)
	UPDATE deliveries SET locked_until = $1 WHERE id IN (SELECT id FROM due)
	RETURNING ` + deliveryColumns

// Claim implements delivery.Store.
func (s *Store) Claim(ctx context.Context, now time.Time, lease time.Duration, limits delivery.ClaimLimits) ([]delivery.Delivery, error) {
	if limits.Total <= 0 {
		return nil, nil
	}
	var perWebhook *int64
	if limits.PerWebhook > 0 {
		n := int64(limits.PerWebhook)
		perWebhook = &n
	}
	rows, err := s.db.Pool.Query(ctx, claim, unixnano.Of(now.Add(lease)), unixnano.Of(now), perWebhook, list(limits.Skip),
		int64(limits.Total))
	if err != nil {
		return nil, fmt.Errorf("delivery/postgres: claim: %w", err)
	}
	out, err := collectDeliveries(rows)
	if err != nil {
		return nil, fmt.Errorf("delivery/postgres: claim: %w", err)
	}
	// RETURNING gives rows in no particular order.
	slices.SortFunc(out, func(a, b delivery.Delivery) int {
		return cmp.Or(a.NextAttemptAt.Compare(b.NextAttemptAt), cmp.Compare(a.Position, b.Position))
	})
	return out, nil
}

// list never returns nil, which pgx would send as NULL (and x <> ALL(NULL) is never true).
func list(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}

// ClaimOne implements delivery.Store.
func (s *Store) ClaimOne(ctx context.Context, id string, now time.Time, lease time.Duration) (delivery.Delivery, bool, error) {
	d, err := scanDelivery(s.db.Pool.QueryRow(ctx, `UPDATE deliveries SET locked_until = $1
		WHERE id = $2 AND locked_until <= $3 RETURNING `+deliveryColumns, unixnano.Of(now.Add(lease)), id, unixnano.Of(now)))
	if err == nil {
		return d, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return delivery.Delivery{}, false, fmt.Errorf("delivery/postgres: claim one: %w", err)
	}
	var exists bool
	if err := s.db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM deliveries WHERE id = $1)`, id).Scan(&exists); err != nil {
		return delivery.Delivery{}, false, fmt.Errorf("delivery/postgres: claim one: %w", err)
	}
	if !exists {
		return delivery.Delivery{}, false, userhook.Errorf(userhook.ErrNotFound, "no delivery %q", id)
	}
	return delivery.Delivery{}, false, nil
}

// Record implements delivery.Store. A delivery or webhook deleted meanwhile is no error: there is nothing left
// to record.
func (s *Store) Record(ctx context.Context, d delivery.Delivery, w *delivery.Webhook) error {
	return pgx.BeginFunc(ctx, s.db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE deliveries SET status = $2, attempts = $3, response_status = $4,
			response_body = $5, error = $6, last_attempt_at = $7, next_attempt_at = $8, locked_until = 0 WHERE id = $1`,
			d.ID, d.Status, d.Attempts, d.ResponseStatus, bytes(d.ResponseBody), d.Error, unixnano.Of(d.LastAttemptAt),
			unixnano.Of(d.NextAttemptAt)); err != nil {
			return fmt.Errorf("delivery/postgres: record: %w", err)
		}
		if w != nil {
			// Only what the sender decides: a concurrent PATCH of the other settings stands, and an admin's
			// disabling stands too (the sender can only ever disable).
			if _, err := tx.Exec(ctx, `UPDATE webhooks SET failing_since = $2, enabled = enabled AND $3,
				disabled_reason = CASE WHEN enabled AND NOT $3 THEN $4 ELSE disabled_reason END, updated_at = $5 WHERE id = $1`,
				w.ID, unixnano.Of(w.FailingSince), w.Enabled, w.DisabledReason, unixnano.Of(w.UpdatedAt)); err != nil {
				return fmt.Errorf("delivery/postgres: record webhook: %w", err)
			}
		}
		return nil
	})
}

// Delivery implements delivery.Store.
func (s *Store) Delivery(ctx context.Context, id string) (delivery.Delivery, error) {
	d, err := scanDelivery(s.db.Pool.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM deliveries WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return delivery.Delivery{}, userhook.Errorf(userhook.ErrNotFound, "no delivery %q", id)
	}
	if err != nil {
		return delivery.Delivery{}, fmt.Errorf("delivery/postgres: delivery: %w", err)
	}
	return d, nil
}

// Deliveries implements delivery.Store.
func (s *Store) Deliveries(ctx context.Context, f delivery.Filter) ([]delivery.Delivery, error) {
	q := `SELECT ` + deliveryColumns + ` FROM deliveries WHERE webhook_id = $1`
	args := []any{f.WebhookID}
	if f.Status != "" {
		args = append(args, f.Status)
		q += ` AND status = $` + strconv.Itoa(len(args))
	}
	if f.Before > 0 {
		args = append(args, f.Before)
		q += ` AND position < $` + strconv.Itoa(len(args))
	}
	args = append(args, f.Limit)
	q += ` ORDER BY position DESC LIMIT $` + strconv.Itoa(len(args))
	rows, err := s.db.Pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("delivery/postgres: deliveries: %w", err)
	}
	out, err := collectDeliveries(rows)
	if err != nil {
		return nil, fmt.Errorf("delivery/postgres: deliveries: %w", err)
	}
	return out, nil
}

// NextDue implements delivery.Store; a leased delivery is due when its lease ends.
func (s *Store) NextDue(ctx context.Context, skip []string) (time.Time, error) {
	var next *int64
	if err := s.db.Pool.QueryRow(ctx, `SELECT MIN(GREATEST(next_attempt_at, locked_until)) FROM deliveries
		WHERE status = 'pending' AND webhook_id <> ALL($1::text[])`, list(skip)).Scan(&next); err != nil {
		return time.Time{}, fmt.Errorf("delivery/postgres: next due: %w", err)
	}
	if next == nil {
		return time.Time{}, nil
	}
	return unixnano.Time(*next), nil
}

// OldestDue implements delivery.Store.
func (s *Store) OldestDue(ctx context.Context, now time.Time) (time.Time, error) {
	var oldest *int64
	if err := s.db.Pool.QueryRow(ctx, `SELECT MIN(next_attempt_at) FROM deliveries
		WHERE status = 'pending' AND next_attempt_at <= $1`, unixnano.Of(now)).Scan(&oldest); err != nil {
		return time.Time{}, fmt.Errorf("delivery/postgres: oldest due: %w", err)
	}
	if oldest == nil {
		return time.Time{}, nil
	}
	return unixnano.Time(*oldest), nil
}

// Pending implements delivery.Store.
func (s *Store) Pending(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.Pool.QueryRow(ctx, `SELECT COUNT(*) FROM deliveries WHERE status = 'pending'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("delivery/postgres: pending: %w", err)
	}
	return n, nil
}
