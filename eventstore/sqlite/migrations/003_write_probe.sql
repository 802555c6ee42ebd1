-- +goose Up
-- One row that readiness checks rewrite when no append happened lately, to learn whether the store still takes writes.
CREATE TABLE write_probe (
    id INTEGER NOT NULL PRIMARY KEY,
    at INTEGER NOT NULL
);
