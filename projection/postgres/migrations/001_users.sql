-- +goose Up
-- The users read model: the same columns as SQLite's. user_id sorts in byte order (COLLATE "C") whatever the
-- database's collation, so List pages (user_id > $after ORDER BY user_id) come in the order of Go's strings
-- and of SQLite. profile is the JSON text json.Marshal wrote, as in SQLite, not JSONB: JSONB refuses the
-- escape \u0000, which a provider's profile may carry, and nothing queries into the profile.
CREATE TABLE users (
    user_id        TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    email          TEXT    NOT NULL DEFAULT '',
    email_key      TEXT    NOT NULL DEFAULT '',
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    name           TEXT    NOT NULL DEFAULT '',
    status         TEXT    NOT NULL,
    profile        TEXT    NOT NULL DEFAULT '{}',
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL,
    version        BIGINT  NOT NULL,
    position       BIGINT  NOT NULL
);
CREATE INDEX users_email ON users (email_key);
CREATE INDEX users_status ON users (status, user_id);
-- Shared with the webhook deliveries, which may create it first.
CREATE TABLE IF NOT EXISTS checkpoints (
    name     TEXT   NOT NULL PRIMARY KEY,
    position BIGINT NOT NULL
);
