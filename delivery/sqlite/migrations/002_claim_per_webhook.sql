-- +goose Up
-- Claim takes the soonest due deliveries of each webhook in turn, so that a webhook whose sender has no room
-- is passed over without scanning its backlog.
CREATE INDEX deliveries_claim ON deliveries (webhook_id, next_attempt_at, position) WHERE status = 'pending';
