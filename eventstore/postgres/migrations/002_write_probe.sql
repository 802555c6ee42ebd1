-- +goose Up
-- One row that readiness checks rewrite when no append happened lately, to learn whether the store still takes writes.
CREATE TABLE write_probe (
    id INTEGER PRIMARY KEY,
    at BIGINT  NOT NULL
);
