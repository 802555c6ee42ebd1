-- +goose Up
-- The table of the SQLite store, in PostgreSQL types. Times are unix nanoseconds; revoked_at is NULL until
-- the key is revoked.
CREATE TABLE api_keys (
    id         TEXT   NOT NULL PRIMARY KEY,
    name       TEXT   NOT NULL,
    role       TEXT   NOT NULL,
    hash       TEXT   NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
