package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/delivery"
	"github.com/userhook/userhook/delivery/deliverytest"
	"github.com/userhook/userhook/delivery/sqlite"
	"github.com/userhook/userhook/internal/sqlitedb"
)

// TestContract runs the delivery.Store contract against a fresh SQLite database per subtest.
func TestContract(t *testing.T) {
	t.Parallel()
	deliverytest.Run(t, func(t *testing.T) delivery.Store {
		db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "webhooks.db"))
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		s, err := sqlite.New(context.Background(), db)
		require.NoError(t, err)
		return s
	})
}
