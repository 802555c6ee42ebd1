package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/internal/sqlitedb"
)

func openStore(t *testing.T, path string) (*Store, *sqlitedb.DB) {
	t.Helper()
	db, err := sqlitedb.Open(path)
	require.NoError(t, err)
	s, err := New(context.Background(), db)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(); _ = db.Close() })
	return s, db
}

// filterBuilt waits until the store's receipts filter is built.
func filterBuilt(t *testing.T, s *Store) *keyFilter {
	t.Helper()
	r := s.rc()
	require.Eventually(t, func() bool { return r.keys.Load() != nil }, 5*time.Second, time.Millisecond)
	return r.keys.Load()
}

// TestReceipted: Receipted says whether Receive recorded a key, and nothing of stored events (which Received
// counts too); once the filter is built, a key never recorded is answered without a query.
func TestReceipted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, db := openStore(t, filepath.Join(t.TempDir(), "events.db"))
	got, err := s.Receipted(ctx, "ce_1")
	require.NoError(t, err)
	assert.False(t, got)
	require.NoError(t, s.Receive(ctx, "ce_1", "ignored:unsupported_type"))
	got, err = s.Receipted(ctx, "ce_1")
	require.NoError(t, err)
	assert.True(t, got)

	e := eventstore.Event{ID: "ce_stored", StreamType: "t", Type: "t.v1", Data: []byte(`{}`)}
	_, err = s.Append(ctx, "u1", 0, e)
	require.NoError(t, err)
	got, err = s.Receipted(ctx, "ce_stored")
	require.NoError(t, err)
	assert.False(t, got, "a stored event is no receipt")
	got, err = s.Received(ctx, "ce_stored")
	require.NoError(t, err)
	assert.True(t, got)
	assert.ErrorIs(t, s.Receive(ctx, "ce_stored", "ignored:no_change"), eventstore.ErrDuplicate)

	filterBuilt(t, s)
	require.NoError(t, db.Read.Close()) // no query can be answered now
	got, err = s.Receipted(ctx, "ce_never")
	require.NoError(t, err, "answered from memory")
	assert.False(t, got)
	_, err = s.Receipted(ctx, "ce_1")
	assert.Error(t, err, "a key the filter holds is looked up")
}

// TestReceiptedAfterReopen: the receipts recorded before the store opened are in its filter.
func TestReceiptedAfterReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.db")
	s, db := openStore(t, path)
	for i := range 100 {
		require.NoError(t, s.Receive(ctx, fmt.Sprintf("ce_%d", i), "ignored:stale"))
	}
	require.NoError(t, s.Close())
	require.NoError(t, db.Close())

	s, _ = openStore(t, path)
	got, err := s.Receipted(ctx, "ce_7") // starts the build; answered by a query meanwhile
	require.NoError(t, err)
	assert.True(t, got)
	f := filterBuilt(t, s)
	for i := range 100 {
		assert.True(t, f.has(fmt.Sprintf("ce_%d", i)), i)
		got, err := s.Receipted(ctx, fmt.Sprintf("ce_%d", i))
		require.NoError(t, err)
		assert.True(t, got, i)
	}
}

// TestReceiptedWhileTheFilterGrows: a filter that fills up is built again, larger, while receipts keep coming;
// a receipt recorded is Receipted from the moment Receive returns, whatever build is under way.
func TestReceiptedWhileTheFilterGrows(t *testing.T) {
	// Not parallel: it makes every filter tiny.
	defer func(bits uint64) { filterMinBits = bits }(filterMinBits)
	filterMinBits = 64 // 6 keys

	ctx := context.Background()
	s, _ := openStore(t, filepath.Join(t.TempDir(), "events.db"))
	filterBuilt(t, s)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				key := fmt.Sprintf("ce_%d_%d", w, i)
				if !assert.NoError(t, s.Receive(ctx, key, "ignored:stale")) {
					return
				}
				got, err := s.Receipted(ctx, key)
				assert.NoError(t, err)
				assert.True(t, got, key)
			}
		}()
	}
	wg.Wait()
	require.Eventually(t, func() bool { return !s.receipts.building.Load() }, 5*time.Second, time.Millisecond)
	s.receipts.builds.Wait()
	f := s.receipts.keys.Load()
	assert.Greater(t, f.mask+1, uint64(64), "the filter grew")
	for w := range writers {
		for i := range each {
			assert.True(t, f.has(fmt.Sprintf("ce_%d_%d", w, i)))
		}
	}
}

// TestKeyFilter: a key added is always had; few keys never added are.
func TestKeyFilter(t *testing.T) {
	t.Parallel()
	const n = 100000
	f := newKeyFilter(n)
	for i := range n {
		f.add(fmt.Sprintf("ce_%d", i))
	}
	falsePositives := 0
	for i := range n {
		assert.True(t, f.has(fmt.Sprintf("ce_%d", i)))
		if f.has(fmt.Sprintf("other_%d", i)) {
			falsePositives++
		}
	}
	assert.Less(t, falsePositives, n/100, "false positives")
	assert.False(t, f.add("one more"), "made for twice as many: not full")
}

// TestReceiptsAfterClose: a closed store still answers receipts questions (from queries), and builds nothing.
func TestReceiptsAfterClose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, used := range []bool{false, true} {
		s, _ := openStore(t, filepath.Join(t.TempDir(), "events.db"))
		if used {
			_, err := s.Receipted(ctx, "ce_1")
			require.NoError(t, err)
		}
		require.NoError(t, s.Close())
		require.NoError(t, s.Receive(ctx, "ce_1", "ignored:stale"))
		got, err := s.Receipted(ctx, "ce_1")
		require.NoError(t, err)
		assert.True(t, got)
		got, err = s.Received(ctx, "ce_1")
		require.NoError(t, err)
		assert.True(t, got)
		assert.False(t, s.receipts.building.Load())
	}
}

// TestFilterBuiltAgainAfterAFailure: while no filter is built (its first build failed), a question starts
// another build once filterRetry has passed; before that, queries answer.
func TestFilterBuiltAgainAfterAFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := openStore(t, filepath.Join(t.TempDir(), "events.db"))
	filterBuilt(t, s)
	r := &s.receipts
	r.keys.Store(nil) // as if the build had failed
	r.failedAt.Store(time.Now().UnixNano())
	got, err := s.Receipted(ctx, "ce_1")
	require.NoError(t, err)
	assert.False(t, got)
	assert.Nil(t, r.keys.Load(), "no build within filterRetry of a failure")

	r.failedAt.Store(time.Now().Add(-filterRetry).UnixNano())
	_, err = s.Receipted(ctx, "ce_1")
	require.NoError(t, err)
	filterBuilt(t, s)
}

// TestReceiptFilterStaysBounded: past its largest size the filter grows no more, however many receipts are
// recorded, and every receipt is still Receipted (the query answers its false positives).
func TestReceiptFilterStaysBounded(t *testing.T) {
	// Not parallel: it makes every filter tiny.
	defer func(lo, hi uint64) { filterMinBits, filterMaxBits = lo, hi }(filterMinBits, filterMaxBits)
	filterMinBits, filterMaxBits = 64, 256 // 6 keys, then at most 25 at 1%

	ctx := context.Background()
	s, _ := openStore(t, filepath.Join(t.TempDir(), "events.db"))
	filterBuilt(t, s)
	for i := range 200 {
		key := fmt.Sprintf("ce_%d", i)
		require.NoError(t, s.Receive(ctx, key, "ignored:stale"))
		got, err := s.Receipted(ctx, key)
		require.NoError(t, err)
		require.True(t, got, key)
	}
	require.Eventually(t, func() bool { return !s.receipts.building.Load() }, 5*time.Second, time.Millisecond)
	s.receipts.builds.Wait()
	f := s.receipts.keys.Load()
	assert.Equal(t, uint64(256), f.mask+1, "the filter stopped at its largest size")
	assert.False(t, f.add("one more"), "the largest filter never asks to be rebuilt")
	got, err := s.Receipted(ctx, "never recorded")
	require.NoError(t, err)
	assert.False(t, got)
}
