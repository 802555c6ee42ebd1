-- +goose Up
-- One row per configured sender (source.Source). secrets holds source.Seal's bytes and nothing else reads or
-- writes it. Times are unix nanoseconds; last_event_at is 0 until the source delivers an event.
CREATE TABLE sources (
    id            TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    secrets       BLOB    NOT NULL,
    enabled       INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    last_event_at INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
