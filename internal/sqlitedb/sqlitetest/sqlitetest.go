// Package sqlitetest gives tests a real SQLite database of their own in t.TempDir(), the one way the tests of
// every SQLite-backed component open theirs. It is a package of its own so that production code, which
// imports sqlitedb, never imports testing.
package sqlitetest

import (
	"path/filepath"
	"testing"

	"github.com/userhook/userhook/internal/sqlitedb"
)

// Open opens a fresh database in tb's temporary directory and closes it when the test ends. Cleanups run last
// registered first, so whatever the test builds on the database and closes in a cleanup of its own is closed
// before the database is.
func Open(tb testing.TB) *sqlitedb.DB {
	tb.Helper()
	db, err := sqlitedb.Open(filepath.Join(tb.TempDir(), "test.db"))
	if err != nil {
		tb.Fatalf("open a SQLite database in the test's temporary directory: %v", err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}
