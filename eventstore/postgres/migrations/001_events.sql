-- +goose Up
CREATE TABLE events (
    position    BIGINT PRIMARY KEY,
    event_id    TEXT   NOT NULL UNIQUE,
    stream_id   TEXT   NOT NULL,
    stream_type TEXT   NOT NULL,
    version     BIGINT NOT NULL,
    type        TEXT   NOT NULL,
    data        BYTEA  NOT NULL,
    metadata    TEXT   NOT NULL,
    occurred_at BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL,
    UNIQUE (stream_id, version)
);
CREATE TABLE receipts (
    key         TEXT   PRIMARY KEY,
    outcome     TEXT   NOT NULL,
    received_at BIGINT NOT NULL
);
