package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/eventstore/postgres"
	"github.com/userhook/userhook/eventstore/storetest"
	"github.com/userhook/userhook/internal/postgresdb"
	"github.com/userhook/userhook/internal/postgresdb/pgtest"
)

func newStore(t *testing.T) eventstore.Store {
	t.Helper()
	db, err := postgresdb.Open(context.Background(), pgtest.URL(t), 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	s, err := postgres.New(context.Background(), db)
	require.NoError(t, err)
	return s
}

func TestIntegrationContract(t *testing.T) {
	storetest.Run(t, newStore)
}

// TestIntegrationReaderNeverSkipsAcrossInstances runs two stores (two instances' writers) on one database,
// each with many concurrent writers, and a reader that follows the log: every event is seen exactly once and
// positions only grow, though the two writers' transactions interleave.
func TestIntegrationReaderNeverSkipsAcrossInstances(t *testing.T) {
	url := pgtest.URL(t)
	ctx := context.Background()
	var stores []eventstore.Store
	for i := 0; i < 2; i++ {
		db, err := postgresdb.Open(ctx, url, 0)
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		s, err := postgres.New(ctx, db)
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		stores = append(stores, s)
	}
	const writers, perWriter = 16, 50
	stop := make(chan struct{})
	seen := map[string]int{}
	var lastPos int64
	readerDone := make(chan error, 1)
	go func() {
		after := int64(0)
		final := false
		for {
			page, err := stores[1].ReadAll(ctx, after, 100)
			if err != nil {
				readerDone <- err
				return
			}
			for _, e := range page {
				if e.Position <= lastPos {
					readerDone <- fmt.Errorf("position %d after %d", e.Position, lastPos)
					return
				}
				lastPos = e.Position
				seen[e.ID]++
				after = e.Position
			}
			if len(page) == 0 {
				if final {
					readerDone <- nil
					return
				}
				select {
				case <-stop:
					final = true
				default:
				}
			}
		}
	}()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ids []string
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			s := stores[w%2]
			for i := 0; i < perWriter; i++ {
				e := storetest.Event("t.v1", `{}`)
				if _, err := s.Append(ctx, fmt.Sprintf("w%d-%d", w, i%7), eventstore.ExpectAny, e); err != nil {
					t.Errorf("append: %v", err)
					return
				}
				mu.Lock()
				ids = append(ids, e.ID)
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	close(stop)
	require.NoError(t, <-readerDone)
	assert.Len(t, seen, len(ids), "the follower saw every event")
	for _, id := range ids {
		assert.Equal(t, 1, seen[id], "event %s seen once", id)
	}
	last, err := stores[0].LastPosition(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(writers*perWriter), last, "positions have no gaps")
}
