package apikey_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/apikey"
	"github.com/userhook/userhook/apikey/apikeytest"
	"github.com/userhook/userhook/internal/sqlitedb/sqlitetest"
)

// TestSQLiteContract runs the apikey.Store contract against a fresh SQLite database per subtest.
func TestSQLiteContract(t *testing.T) {
	t.Parallel()
	apikeytest.Run(t, func(t *testing.T) apikey.Store {
		s, err := apikey.NewSQLiteStore(context.Background(), sqlitetest.Open(t))
		require.NoError(t, err)
		return s
	})
}
