package postgres_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/internal/postgresdb"
	"github.com/userhook/userhook/internal/postgresdb/pgtest"
	"github.com/userhook/userhook/projection"
	"github.com/userhook/userhook/projection/postgres"
	"github.com/userhook/userhook/projection/readmodeltest"
)

// TestIntegrationReadModel runs the read-model contract against PostgreSQL, each model in a schema of its
// own (pgtest skips it when USERHOOK_TEST_POSTGRES is unset).
func TestIntegrationReadModel(t *testing.T) {
	t.Parallel()
	readmodeltest.Run(t, func(t *testing.T) projection.ReadModel {
		ctx := context.Background()
		db, err := postgresdb.Open(ctx, pgtest.URL(t), 0)
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		m, err := postgres.New(ctx, db)
		require.NoError(t, err)
		return m
	})
}
