package postgres_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/internal/postgresdb"
	"github.com/userhook/userhook/internal/postgresdb/pgtest"
	"github.com/userhook/userhook/source"
	"github.com/userhook/userhook/source/postgres"
	"github.com/userhook/userhook/source/sourcetest"
)

func open(t *testing.T) *postgresdb.DB {
	t.Helper()
	db, err := postgresdb.Open(context.Background(), pgtest.URL(t), 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// TestIntegrationStore runs the source.Store contract against PostgreSQL, a schema of its own per subtest.
func TestIntegrationStore(t *testing.T) {
	t.Run("Contract", func(t *testing.T) {
		sourcetest.Run(t, func(t *testing.T) source.Store {
			s, err := postgres.New(context.Background(), open(t))
			require.NoError(t, err)
			return s
		})
	})
	t.Run("MigrateTwice", func(t *testing.T) {
		db := open(t)
		for range 2 {
			_, err := postgres.New(context.Background(), db)
			require.NoError(t, err, "a second instance starting on a migrated database")
		}
	})
	t.Run("SecretsAreSealed", func(t *testing.T) {
		ctx := context.Background()
		db := open(t)
		s, err := postgres.New(ctx, db)
		require.NoError(t, err)
		secrets := []string{"whsec_one", "whsec_two"}
		require.NoError(t, s.Create(ctx, source.Source{ID: "src_a", Name: "a", Provider: source.Clerk, Secrets: secrets, Enabled: true}))
		var raw []byte
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT secrets FROM sources WHERE id = 'src_a'`).Scan(&raw))
		sealed, err := source.Seal(secrets)
		require.NoError(t, err)
		require.Equal(t, sealed, raw)
	})
}
