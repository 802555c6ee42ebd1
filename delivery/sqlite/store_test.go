package sqlite_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/delivery"
	"github.com/userhook/userhook/delivery/deliverytest"
	"github.com/userhook/userhook/delivery/sqlite"
	"github.com/userhook/userhook/internal/sqlitedb/sqlitetest"
)

// TestContract runs the delivery.Store contract against a fresh SQLite database per subtest.
func TestContract(t *testing.T) {
	t.Parallel()
	deliverytest.Run(t, func(t *testing.T) delivery.Store {
		s, err := sqlite.New(context.Background(), sqlitetest.Open(t))
		require.NoError(t, err)
		return s
	})
}
