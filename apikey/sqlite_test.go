package apikey_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/apikey"
	"github.com/userhook/userhook/apikey/apikeytest"
	"github.com/userhook/userhook/internal/sqlitedb"
)

// TestSQLiteContract runs the apikey.Store contract against a fresh SQLite database per subtest.
func TestSQLiteContract(t *testing.T) {
	t.Parallel()
	apikeytest.Run(t, func(t *testing.T) apikey.Store {
		db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "keys.db"))
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		s, err := apikey.NewSQLiteStore(context.Background(), db)
		require.NoError(t, err)
		return s
	})
}
