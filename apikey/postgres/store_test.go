package postgres_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/apikey"
	"github.com/userhook/userhook/apikey/apikeytest"
	"github.com/userhook/userhook/apikey/postgres"
	"github.com/userhook/userhook/internal/postgresdb"
	"github.com/userhook/userhook/internal/postgresdb/pgtest"
)

// TestIntegrationStore runs the apikey.Store contract against PostgreSQL, a schema of its own per subtest.
func TestIntegrationStore(t *testing.T) {
	t.Run("Contract", func(t *testing.T) {
		apikeytest.Run(t, func(t *testing.T) apikey.Store {
			ctx := context.Background()
			db, err := postgresdb.Open(ctx, pgtest.URL(t), 0)
			require.NoError(t, err)
			t.Cleanup(func() { _ = db.Close() })
			s, err := postgres.New(ctx, db)
			require.NoError(t, err)
			return s
		})
	})
	t.Run("MigrateTwice", func(t *testing.T) {
		ctx := context.Background()
		db, err := postgresdb.Open(ctx, pgtest.URL(t), 0)
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		for range 2 {
			_, err := postgres.New(ctx, db)
			require.NoError(t, err, "a second instance starting on a migrated database")
		}
	})
}
