-- +goose Up
CREATE TABLE users (
    user_id        TEXT    NOT NULL PRIMARY KEY,
    email          TEXT    NOT NULL DEFAULT '',
    email_key      TEXT    NOT NULL DEFAULT '',
    email_verified INTEGER NOT NULL DEFAULT 0,
    name           TEXT    NOT NULL DEFAULT '',
    status         TEXT    NOT NULL,
    profile        TEXT    NOT NULL DEFAULT '{}',
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    version        INTEGER NOT NULL,
    position       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX users_email ON users (email_key);
CREATE INDEX users_status ON users (status, user_id);
CREATE TABLE checkpoints (
    name     TEXT    NOT NULL PRIMARY KEY,
    position INTEGER NOT NULL
) WITHOUT ROWID;
