-- +goose Up
-- The table of source/sqlite, in PostgreSQL types. secrets holds source.Seal's bytes and nothing else reads or
-- writes it. Times are unix nanoseconds; last_event_at is 0 until the source delivers an event.
CREATE TABLE sources (
    id            TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    secrets       BYTEA   NOT NULL,
    enabled       BOOLEAN NOT NULL,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    last_event_at BIGINT  NOT NULL DEFAULT 0
);
