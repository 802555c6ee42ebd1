-- +goose Up
CREATE TABLE receipts (
    key         TEXT    NOT NULL PRIMARY KEY,
    outcome     TEXT    NOT NULL,
    received_at INTEGER NOT NULL
) WITHOUT ROWID;
