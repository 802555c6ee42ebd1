-- +goose Up
-- The tables of delivery/sqlite, in PostgreSQL types. Times are unix nanoseconds, 0 for none.
-- response_body is BYTEA: a response body is outside data, and TEXT cannot hold the NUL bytes it may carry.
CREATE TABLE webhooks (
    id              TEXT    NOT NULL PRIMARY KEY,
    name            TEXT    NOT NULL,
    url             TEXT    NOT NULL,
    events          JSONB   NOT NULL,
    enabled         BOOLEAN NOT NULL,
    content_type    TEXT    NOT NULL,
    secrets         JSONB   NOT NULL,
    disabled_reason TEXT    NOT NULL DEFAULT '',
    failing_since   BIGINT  NOT NULL DEFAULT 0,
    from_position   BIGINT  NOT NULL DEFAULT 0,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);
CREATE TABLE deliveries (
    id              TEXT    NOT NULL PRIMARY KEY,
    webhook_id      TEXT    NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    position        BIGINT  NOT NULL,
    payload         BYTEA   NOT NULL,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    response_status INTEGER NOT NULL DEFAULT 0,
    response_body   BYTEA   NOT NULL DEFAULT '',
    error           TEXT    NOT NULL DEFAULT '',
    created_at      BIGINT  NOT NULL,
    last_attempt_at BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL DEFAULT 0,
    locked_until    BIGINT  NOT NULL DEFAULT 0,
    UNIQUE (webhook_id, event_id)
);
-- Claim's scan, in its order; only pending rows are ever claimed.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, position) WHERE status = 'pending';
CREATE INDEX deliveries_log ON deliveries (webhook_id, position DESC);
-- The read model keeps its checkpoint in the same table, and may have created it first.
CREATE TABLE IF NOT EXISTS checkpoints (
    name     TEXT   NOT NULL PRIMARY KEY,
    position BIGINT NOT NULL
);
