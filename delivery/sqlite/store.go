// Package sqlite keeps webhooks and deliveries in the embedded SQLite database.
package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/delivery"
	"github.com/userhook/userhook/internal/sqlitedb"
	"github.com/userhook/userhook/internal/unixnano"
)

// Component names this package's tables in the database's migration records (goose_webhooks): never rename it.
const Component = "webhooks"

// Migrations are the SQL files that create and change the webhook tables, applied in version order on open.
//
//go:embed migrations/*.sql
var Migrations embed.FS

var _ delivery.Store = (*Store)(nil)

// Store is the SQLite delivery store.
type Store struct{ db *sqlitedb.DB }

// New migrates the webhook tables of db.
func New(ctx context.Context, db *sqlitedb.DB) (*Store, error) {
	if err := db.Migrate(ctx, Component, Migrations); err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

const webhookColumns = `id, name, url, events, enabled, content_type, secrets, disabled_reason, failing_since, from_position, created_at, updated_at`

type scanner interface{ Scan(...any) error }

func scanWebhook(r scanner) (delivery.Webhook, error) {
	var w delivery.Webhook
	var events, secrets string
	var enabled int
	var failing, created, updated int64
	if err := r.Scan(&w.ID, &w.Name, &w.URL, &events, &enabled, &w.ContentType, &secrets, &w.DisabledReason,
		&failing, &w.FromPosition, &created, &updated); err != nil {
		return delivery.Webhook{}, err
	}
	if err := json.Unmarshal([]byte(events), &w.Events); err != nil {
		return delivery.Webhook{}, err
	}
	if err := json.Unmarshal([]byte(secrets), &w.Secrets); err != nil {
		return delivery.Webhook{}, err
	}
	w.Enabled = enabled != 0
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
	return []any{w.ID, w.Name, w.URL, string(events), boolInt(w.Enabled), w.ContentType, string(secrets), w.DisabledReason,
		unixnano.Of(w.FailingSince), w.FromPosition, unixnano.Of(w.CreatedAt), unixnano.Of(w.UpdatedAt)}, nil
}

// CreateWebhook implements delivery.Store.
func (s *Store) CreateWebhook(ctx context.Context, w delivery.Webhook) error {
	vals, err := webhookValues(w)
	if err != nil {
		return err
	}
	_, err = s.db.Exec(ctx, true, `INSERT INTO webhooks (`+webhookColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, vals...)
	if err != nil {
		return fmt.Errorf("delivery/sqlite: create webhook: %w", err)
	}
	return nil
}

// Webhook implements delivery.Store.
func (s *Store) Webhook(ctx context.Context, id string) (delivery.Webhook, error) {
	w, err := scanWebhook(s.db.Read.QueryRowContext(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return delivery.Webhook{}, userhook.Errorf(userhook.ErrNotFound, "no webhook %q", id)
	}
	if err != nil {
		return delivery.Webhook{}, fmt.Errorf("delivery/sqlite: webhook: %w", err)
	}
	return w, nil
}

// Webhooks implements delivery.Store.
func (s *Store) Webhooks(ctx context.Context) ([]delivery.Webhook, error) {
	rows, err := s.db.Read.QueryContext(ctx, `SELECT `+webhookColumns+` FROM webhooks ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("delivery/sqlite: webhooks: %w", err)
	}
	defer rows.Close()
	out := []delivery.Webhook{}
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, fmt.Errorf("delivery/sqlite: webhooks: %w", err)
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// UpdateWebhook implements delivery.Store.
func (s *Store) UpdateWebhook(ctx context.Context, w delivery.Webhook) error {
	return s.db.Tx(ctx, true, func(tx *sql.Tx) error { return updateWebhook(ctx, tx, w) })
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func updateWebhook(ctx context.Context, db execer, w delivery.Webhook) error {
	vals, err := webhookValues(w)
	if err != nil {
		return err
	}
	res, err := db.ExecContext(ctx, `UPDATE webhooks SET name = ?, url = ?, events = ?, enabled = ?, content_type = ?,
		secrets = ?, disabled_reason = ?, failing_since = ?, from_position = ?, created_at = ?, updated_at = ? WHERE id = ?`,
		append(vals[1:], w.ID)...)
	if err != nil {
		return fmt.Errorf("delivery/sqlite: update webhook: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return userhook.Errorf(userhook.ErrNotFound, "no webhook %q", w.ID)
	}
	return nil
}

// DeleteWebhook implements delivery.Store.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	res, err := s.db.Exec(ctx, true, `DELETE FROM webhooks WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delivery/sqlite: delete webhook: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return userhook.Errorf(userhook.ErrNotFound, "no webhook %q", id)
	}
	return nil
}

const deliveryColumns = `id, webhook_id, event_id, event_type, position, payload, status, attempts, response_status,
	response_body, error, created_at, last_attempt_at, next_attempt_at`

func scanDelivery(r scanner) (delivery.Delivery, error) {
	var d delivery.Delivery
	var created, last, next int64
	if err := r.Scan(&d.ID, &d.WebhookID, &d.EventID, &d.EventType, &d.Position, &d.Payload, &d.Status, &d.Attempts,
		&d.ResponseStatus, &d.ResponseBody, &d.Error, &created, &last, &next); err != nil {
		return delivery.Delivery{}, err
	}
	d.CreatedAt, d.LastAttemptAt, d.NextAttemptAt = unixnano.Time(created), unixnano.Time(last), unixnano.Time(next)
	return d, nil
}

// Enqueue implements delivery.Store.
func (s *Store) Enqueue(ctx context.Context, name string, position int64, deliveries []delivery.Delivery) error {
	return s.db.Tx(ctx, false, func(tx *sql.Tx) error {
		for _, d := range deliveries {
			if _, err := tx.ExecContext(ctx, `INSERT INTO deliveries (id, webhook_id, event_id, event_type, position, payload,
				status, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (webhook_id, event_id) DO NOTHING`,
				d.ID, d.WebhookID, d.EventID, d.EventType, d.Position, d.Payload, d.Status, unixnano.Of(d.CreatedAt), unixnano.Of(d.NextAttemptAt)); err != nil {
				if strings.Contains(err.Error(), "FOREIGN KEY") {
					continue // the webhook was deleted meanwhile
				}
				return fmt.Errorf("delivery/sqlite: enqueue: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (name, position) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET position = MAX(position, excluded.position)`, name, position); err != nil {
			return fmt.Errorf("delivery/sqlite: checkpoint: %w", err)
		}
		return nil
	})
}

// Checkpoint implements delivery.Store.
func (s *Store) Checkpoint(ctx context.Context, name string) (int64, error) {
	var pos int64
	err := s.db.Read.QueryRowContext(ctx, `SELECT position FROM checkpoints WHERE name = ?`, name).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return pos, err
}

// claim leases the soonest due deliveries of each webhook not skipped (by the deliveries_claim index, so a
// skipped webhook's backlog is never scanned), then the soonest of those. SQLite has one writer, so the
// UPDATE ... RETURNING is atomic. LIMIT -1 is no limit.
const claim = `UPDATE deliveries SET locked_until = ?1
	WHERE id IN (
		SELECT d.id FROM webhooks w JOIN deliveries d ON d.id IN (
			SELECT x.id FROM deliveries x
			WHERE x.webhook_id = w.id AND x.status = 'pending' AND x.next_attempt_at <= ?2 AND x.locked_until <= ?2
			ORDER BY x.next_attempt_at, x.position LIMIT ?3)
		WHERE w.id NOT IN (SELECT value FROM json_each(?4))
		ORDER BY d.next_attempt_at, d.position LIMIT ?5)
	RETURNING ` + deliveryColumns

// Claim implements delivery.Store. RETURNING gives rows in no particular order, so they are sorted soonest
// first here.
func (s *Store) Claim(ctx context.Context, now time.Time, lease time.Duration, limits delivery.ClaimLimits) ([]delivery.Delivery, error) {
	if limits.Total <= 0 {
		return nil, nil
	}
	perWebhook := -1
	if limits.PerWebhook > 0 {
		perWebhook = limits.PerWebhook
	}
	skip, err := jsonList(limits.Skip)
	if err != nil {
		return nil, err
	}
	var out []delivery.Delivery
	err = s.db.Tx(ctx, false, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, claim, unixnano.Of(now.Add(lease)), unixnano.Of(now), perWebhook, skip, limits.Total)
		if err != nil {
			return fmt.Errorf("delivery/sqlite: claim: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			d, err := scanDelivery(rows)
			if err != nil {
				return err
			}
			out = append(out, d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b delivery.Delivery) int {
		return cmp.Or(a.NextAttemptAt.Compare(b.NextAttemptAt), cmp.Compare(a.Position, b.Position))
	})
	return out, nil
}

// jsonList is ids as a JSON array, for json_each; never null.
func jsonList(ids []string) (string, error) {
	if ids == nil {
		ids = []string{}
	}
	b, err := json.Marshal(ids)
	return string(b), err
}

// ClaimOne implements delivery.Store.
func (s *Store) ClaimOne(ctx context.Context, id string, now time.Time, lease time.Duration) (delivery.Delivery, bool, error) {
	var d delivery.Delivery
	var found bool
	err := s.db.Tx(ctx, false, func(tx *sql.Tx) error {
		var err error
		d, err = scanDelivery(tx.QueryRowContext(ctx, `UPDATE deliveries SET locked_until = ?
			WHERE id = ? AND locked_until <= ? RETURNING `+deliveryColumns, unixnano.Of(now.Add(lease)), id, unixnano.Of(now)))
		if errors.Is(err, sql.ErrNoRows) {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM deliveries WHERE id = ?`, id).Scan(&n); err != nil {
				return err
			}
			found = n > 0
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return delivery.Delivery{}, false, fmt.Errorf("delivery/sqlite: claim one: %w", err)
	}
	if !found {
		return delivery.Delivery{}, false, userhook.Errorf(userhook.ErrNotFound, "no delivery %q", id)
	}
	return d, d.ID != "", nil
}

// Record implements delivery.Store.
func (s *Store) Record(ctx context.Context, d delivery.Delivery, w *delivery.Webhook) error {
	return s.db.Tx(ctx, false, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET status = ?, attempts = ?, response_status = ?, response_body = ?,
			error = ?, last_attempt_at = ?, next_attempt_at = ?, locked_until = 0 WHERE id = ?`,
			d.Status, d.Attempts, d.ResponseStatus, d.ResponseBody, d.Error, unixnano.Of(d.LastAttemptAt), unixnano.Of(d.NextAttemptAt), d.ID); err != nil {
			return fmt.Errorf("delivery/sqlite: record: %w", err)
		}
		if w != nil {
			// Only what the sender decides: a concurrent PATCH of the other settings stands, and an admin's
			// disabling stands too (the sender can only ever disable).
			if _, err := tx.ExecContext(ctx, `UPDATE webhooks SET failing_since = ?,
				disabled_reason = CASE WHEN enabled = 1 AND ? = 0 THEN ? ELSE disabled_reason END,
				enabled = enabled AND ?, updated_at = ? WHERE id = ?`,
				unixnano.Of(w.FailingSince), boolInt(w.Enabled), w.DisabledReason, boolInt(w.Enabled), unixnano.Of(w.UpdatedAt), w.ID); err != nil {
				return fmt.Errorf("delivery/sqlite: record webhook: %w", err)
			}
		}
		return nil
	})
}

// Delivery implements delivery.Store.
func (s *Store) Delivery(ctx context.Context, id string) (delivery.Delivery, error) {
	d, err := scanDelivery(s.db.Read.QueryRowContext(ctx, `SELECT `+deliveryColumns+` FROM deliveries WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return delivery.Delivery{}, userhook.Errorf(userhook.ErrNotFound, "no delivery %q", id)
	}
	if err != nil {
		return delivery.Delivery{}, fmt.Errorf("delivery/sqlite: delivery: %w", err)
	}
	return d, nil
}

// Deliveries implements delivery.Store.
func (s *Store) Deliveries(ctx context.Context, f delivery.Filter) ([]delivery.Delivery, error) {
	q := `SELECT ` + deliveryColumns + ` FROM deliveries WHERE webhook_id = ?`
	args := []any{f.WebhookID}
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, f.Status)
	}
	if f.Before > 0 {
		q += ` AND position < ?`
		args = append(args, f.Before)
	}
	q += ` ORDER BY position DESC LIMIT ?`
	args = append(args, f.Limit)
	rows, err := s.db.Read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("delivery/sqlite: deliveries: %w", err)
	}
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

// NextDue implements delivery.Store.
func (s *Store) NextDue(ctx context.Context, skip []string) (time.Time, error) {
	list, err := jsonList(skip)
	if err != nil {
		return time.Time{}, err
	}
	var next sql.NullInt64
	err = s.db.Read.QueryRowContext(ctx, `SELECT MIN(MAX(next_attempt_at, locked_until)) FROM deliveries
		WHERE status = 'pending' AND webhook_id NOT IN (SELECT value FROM json_each(?))`, list).Scan(&next)
	if err != nil || !next.Valid {
		return time.Time{}, err
	}
	return unixnano.Time(next.Int64), nil
}

// OldestDue implements delivery.Store.
func (s *Store) OldestDue(ctx context.Context, now time.Time) (time.Time, error) {
	var oldest sql.NullInt64
	err := s.db.Read.QueryRowContext(ctx, `SELECT MIN(next_attempt_at) FROM deliveries
		WHERE status = 'pending' AND next_attempt_at <= ?`, unixnano.Of(now)).Scan(&oldest)
	if err != nil {
		return time.Time{}, fmt.Errorf("delivery/sqlite: oldest due: %w", err)
	}
	if !oldest.Valid {
		return time.Time{}, nil
	}
	return unixnano.Time(oldest.Int64), nil
}

// Pending implements delivery.Store.
func (s *Store) Pending(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.Read.QueryRowContext(ctx, `SELECT COUNT(*) FROM deliveries WHERE status = 'pending'`).Scan(&n)
	return n, err
}
