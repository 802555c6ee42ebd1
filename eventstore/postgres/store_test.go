package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

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

// instances opens n stores on one database, as n instances of userhook would.
func instances(t *testing.T, n int) []*postgres.Store {
	t.Helper()
	url := pgtest.URL(t)
	var stores []*postgres.Store
	for i := 0; i < n; i++ {
		db, err := postgresdb.Open(context.Background(), url, 0)
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		s, err := postgres.New(context.Background(), db)
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		stores = append(stores, s)
	}
	return stores
}

// appendFromWriters has writers goroutines append perWriter events each, alternating between the stores, to
// streams named by stream(writer, i), and returns the ids of the events stored.
func appendFromWriters(t *testing.T, stores []*postgres.Store, writers, perWriter int, expected int64, stream func(w, i int) string) []string {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ids []string
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				e := storetest.Event("t.v1", `{}`)
				if _, err := stores[w%len(stores)].Append(context.Background(), stream(w, i), expected, e); err != nil {
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
	return ids
}

// TestIntegrationReaderNeverSkipsAcrossInstances runs two stores (two instances' writers) on one database,
// each with many concurrent writers, and a reader that follows the log: every event is seen exactly once and
// positions only grow, though the two writers' transactions interleave.
func TestIntegrationReaderNeverSkipsAcrossInstances(t *testing.T) {
	ctx := context.Background()
	stores := instances(t, 2)
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
	ids := appendFromWriters(t, stores, writers, perWriter, eventstore.ExpectAny, func(w, i int) string { return fmt.Sprintf("w%d-%d", w, i%7) })
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

// TestIntegrationRecentAcrossInstances: a reader of one instance that takes what that instance committed from
// memory (Recent) and reads the database for the rest, as the relay does, sees every event of both instances
// once and in order; once the other instance's commits are announced, it is told it is caught up.
func TestIntegrationRecentAcrossInstances(t *testing.T) {
	ctx := context.Background()
	stores := instances(t, 2)
	reader := stores[1]
	const writers, perWriter = 8, 40
	var next int64 = 1
	seen := map[string]int{}
	fromMemory := 0
	follow := func() error {
		for {
			page, all := reader.Recent(next-1, 100)
			if len(page) > 0 {
				fromMemory += len(page)
			} else if all {
				return nil
			} else {
				var err error
				if page, err = reader.ReadAll(ctx, next-1, 100); err != nil || len(page) == 0 {
					return err
				}
			}
			for _, e := range page {
				if e.Position != next {
					return fmt.Errorf("read position %d, expected %d", e.Position, next)
				}
				seen[e.ID]++
				next++
			}
		}
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for {
			if err := follow(); err != nil {
				done <- err
				return
			}
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
		}
	}()
	ids := appendFromWriters(t, stores, writers, perWriter, 0, func(w, i int) string { return fmt.Sprintf("w%d-%d", w, i) })
	last, err := stores[0].LastPosition(ctx)
	require.NoError(t, err)
	// Every commit is announced: the reader's instance comes to know the newest position.
	require.Eventually(t, func() bool {
		_, all := reader.Recent(last, 10)
		return all
	}, 5*time.Second, 10*time.Millisecond)
	close(stop)
	require.NoError(t, <-done)
	require.NoError(t, follow())
	assert.Equal(t, last, next-1, "the reader reached the newest position")
	assert.Len(t, seen, len(ids))
	for _, id := range ids {
		assert.Equal(t, 1, seen[id], "event %s seen once", id)
	}
	assert.Positive(t, fromMemory, "the reader's own instance's commits came from memory")
	t.Logf("%d of %d events from memory", fromMemory, len(ids))
}

// TestIntegrationRacesAcrossInstances: two instances that append the same event ids, to the same new streams
// and to the same stream with ExpectAny at once get the answers one instance would give: one copy stored and
// the other refused as a duplicate, one creator and the other a version conflict, every ExpectAny append
// stored at its own version. (The checks are read before the append lock: this is the race they lose.)
func TestIntegrationRacesAcrossInstances(t *testing.T) {
	ctx := context.Background()
	stores := instances(t, 2)
	const rounds = 60
	type outcome struct{ stored, dup, conflict, other int }
	count := func(errs []error) (o outcome) {
		for _, err := range errs {
			switch {
			case err == nil:
				o.stored++
			case errors.Is(err, eventstore.ErrDuplicate):
				o.dup++
			case errors.Is(err, eventstore.ErrVersionConflict):
				o.conflict++
			default:
				o.other++
				t.Errorf("unexpected error: %v", err)
			}
		}
		return o
	}
	for i := 0; i < rounds; i++ {
		same := storetest.Event("t.v1", `{}`)
		errs := make([]error, 6)
		var wg sync.WaitGroup
		for j := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := stores[j%2]
				switch j / 2 {
				case 0: // one event id, from both instances, to different streams
					_, errs[j] = s.Append(ctx, fmt.Sprintf("dup%d-%d", i, j), 0, same)
				case 1: // one new stream, created from both instances
					_, errs[j] = s.Append(ctx, fmt.Sprintf("new%d", i), 0, storetest.Event("t.v1", `{}`))
				default: // one stream, appended to from both instances without a version check
					_, errs[j] = s.Append(ctx, "any", eventstore.ExpectAny, storetest.Event("t.v1", `{}`))
				}
			}()
		}
		wg.Wait()
		assert.Equal(t, outcome{stored: 1, dup: 1}, count(errs[0:2]), "round %d: one copy stored", i)
		assert.Equal(t, outcome{stored: 1, conflict: 1}, count(errs[2:4]), "round %d: one creator", i)
		assert.Equal(t, outcome{stored: 2}, count(errs[4:6]), "round %d: ExpectAny appends all stored", i)
	}
	events, err := stores[0].Load(ctx, "any")
	require.NoError(t, err)
	require.Len(t, events, 2*rounds)
	for i, e := range events {
		assert.Equal(t, int64(i+1), e.Version, "versions without gaps")
	}
	all, err := stores[1].ReadAll(ctx, 0, 10*rounds)
	require.NoError(t, err)
	assert.Len(t, all, 4*rounds)
	for i, e := range all {
		assert.Equal(t, int64(i+1), e.Position, "positions without gaps")
	}
}

// TestIntegrationSchemasDoNotHearEachOther: two deployments sharing a database in schemas of their own do not
// hear each other's commits. Before channels were named per schema, the other deployment's newest position
// was taken for this one's, and its reader never learnt that it was caught up.
func TestIntegrationSchemasDoNotHearEachOther(t *testing.T) {
	ctx := context.Background()
	one := instances(t, 2)
	other := instances(t, 1)[0]
	// other is ready once it has read where its own store stands.
	require.Eventually(t, func() bool {
		_, all := other.Recent(0, 10)
		return all
	}, 5*time.Second, 10*time.Millisecond)
	appendFromWriters(t, one[:1], 2, 20, 0, func(w, i int) string { return fmt.Sprintf("w%d-%d", w, i) })
	last, err := one[0].LastPosition(ctx)
	require.NoError(t, err)
	// one's second instance has heard the commits announced...
	require.Eventually(t, func() bool {
		_, all := one[1].Recent(last, 10)
		return all
	}, 5*time.Second, 10*time.Millisecond)
	// ...and the other deployment, with no events of its own, goes on knowing it is caught up.
	assert.Never(t, func() bool {
		_, all := other.Recent(0, 10)
		return !all
	}, 300*time.Millisecond, 10*time.Millisecond)
}
