package sqlite_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/internal/sqlitedb/sqlitetest"
	"github.com/userhook/userhook/source"
	"github.com/userhook/userhook/source/sourcetest"
	"github.com/userhook/userhook/source/sqlite"
)

// TestContract runs the source.Store contract against a fresh SQLite database per subtest.
func TestContract(t *testing.T) {
	t.Parallel()
	sourcetest.Run(t, func(t *testing.T) source.Store {
		s, err := sqlite.New(context.Background(), sqlitetest.Open(t))
		require.NoError(t, err)
		return s
	})
}

// TestMigrateTwice opens the store twice on one database, as every start after the first does.
func TestMigrateTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := sqlitetest.Open(t)
	for range 2 {
		_, err := sqlite.New(ctx, db)
		require.NoError(t, err)
	}
}

// TestSecretsAreSealed reads the secrets column as stored: the bytes of source.Seal, nothing else.
func TestSecretsAreSealed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := sqlitetest.Open(t)
	s, err := sqlite.New(ctx, db)
	require.NoError(t, err)
	secrets := []string{"whsec_one", "whsec_two"}
	require.NoError(t, s.Create(ctx, source.Source{ID: "src_a", Name: "a", Provider: source.Clerk, Secrets: secrets, Enabled: true}))
	var raw []byte
	require.NoError(t, db.Read.QueryRowContext(ctx, `SELECT secrets FROM sources WHERE id = 'src_a'`).Scan(&raw))
	sealed, err := source.Seal(secrets)
	require.NoError(t, err)
	require.Equal(t, sealed, raw)
}
