package sqlite_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/eventstore/sqlite"
	"github.com/userhook/userhook/eventstore/storetest"
	"github.com/userhook/userhook/internal/sqlitedb"
	"github.com/userhook/userhook/internal/sqlitedb/sqlitetest"
)

func newStore(t *testing.T) (*sqlite.Store, *sqlitedb.DB) {
	t.Helper()
	db := sqlitetest.Open(t)
	s, err := sqlite.New(context.Background(), db)
	require.NoError(t, err)
	return s, db
}

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) eventstore.Store {
		s, _ := newStore(t)
		return s
	})
}

func TestGroupCommitSharesTransactions(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	defer s.Close()
	const n = 200
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := s.Append(context.Background(), storetest.Event("t.v1", `{}`).ID, 0, storetest.Event("t.v1", `{}`))
			assert.NoError(t, err)
		}(i)
	}
	wg.Wait()
	st := s.Stats()
	assert.Equal(t, int64(n), st.Appends)
	assert.Less(t, st.Commits, int64(n), "concurrent appends share commits")
}

func TestSurvivesReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "events.db")
	db, err := sqlitedb.Open(path)
	require.NoError(t, err)
	s, err := sqlite.New(context.Background(), db)
	require.NoError(t, err)
	_, err = s.Append(context.Background(), "u1", 0, storetest.Event("t.v1", `{"k":"v"}`))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, db.Close())

	db, err = sqlitedb.Open(path)
	require.NoError(t, err)
	defer db.Close()
	s, err = sqlite.New(context.Background(), db)
	require.NoError(t, err)
	defer s.Close()
	loaded, err := s.Load(context.Background(), "u1")
	require.NoError(t, err)
	require.Len(t, loaded, 1)
	assert.JSONEq(t, `{"k":"v"}`, string(loaded[0].Data))
	_, err = s.Append(context.Background(), "u1", 0, storetest.Event("t.v1", `{}`))
	assert.ErrorIs(t, err, eventstore.ErrVersionConflict)
}

func TestClosedStoreRefusesAppends(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	require.NoError(t, s.Close())
	_, err := s.Append(context.Background(), "u1", 0, storetest.Event("t.v1", `{}`))
	assert.ErrorIs(t, err, eventstore.ErrClosed)
}
