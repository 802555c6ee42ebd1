// Package storetest is the contract suite every eventstore.Store implementation runs:
//
//	func TestContract(t *testing.T) { storetest.Run(t, func(t *testing.T) eventstore.Store { ... }) }
//
// Each subtest gets a fresh, empty store from newStore.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/eventstore"
)

// NewStore returns an empty store for one test; the suite closes it.
type NewStore func(t *testing.T) eventstore.Store

var seq struct {
	sync.Mutex
	n int
}

// Event builds an event with a fresh id.
func Event(typ string, data string) eventstore.Event {
	seq.Lock()
	seq.n++
	n := seq.n
	seq.Unlock()
	return eventstore.Event{
		ID:         fmt.Sprintf("evt-%d-%d", time.Now().UnixNano(), n),
		StreamType: "UserAggregate",
		Type:       typ,
		Data:       json.RawMessage(data),
	}
}

// Run runs the whole contract against stores from newStore.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s eventstore.Store)
	}{
		{"AppendAndLoad", testAppendAndLoad},
		{"LoadUnknownStream", testLoadUnknown},
		{"ExpectedVersion", testExpectedVersion},
		{"ExpectAny", testExpectAny},
		{"DuplicateEventID", testDuplicate},
		{"DuplicateWithinOneAppend", testDuplicateWithinAppend},
		{"ReadAllPages", testReadAllPages},
		{"RoundTrip", testRoundTrip},
		{"ConcurrentAppendsToOneStream", testConcurrentOneStream},
		{"ConcurrentAppendsToManyStreams", testConcurrentManyStreams},
		{"FailingAppendFailsOnlyItsCaller", testFailingAppendIsolated},
		{"ConcurrentDuplicatesStoredOnce", testConcurrentDuplicates},
		{"ReaderNeverSkips", testReaderNeverSkips},
		{"LastPosition", testLastPosition},
		{"InvalidAppend", testInvalidAppend},
		{"Receipts", testReceipts},
		{"ConcurrentReceipts", testConcurrentReceipts},
		{"WritesAndProbe", testWritesAndProbe},
		{"RecentIsWhatReadAllReads", testRecent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
}

func testAppendAndLoad(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	out, err := s.Append(ctx, "u1", 0, Event("user.registered.v1", `{"a":1}`), Event("user.email_changed.v1", `{"b":2}`))
	require.NoError(t, err)
	require.Len(t, out, 2)
	assert.Equal(t, int64(1), out[0].Version)
	assert.Equal(t, int64(2), out[1].Version)
	assert.Less(t, out[0].Position, out[1].Position)
	assert.Equal(t, "u1", out[0].StreamID)
	assert.False(t, out[0].RecordedAt.IsZero())

	more, err := s.Append(ctx, "u1", 2, Event("user.deleted.v1", `{}`))
	require.NoError(t, err)
	assert.Equal(t, int64(3), more[0].Version)

	loaded, err := s.Load(ctx, "u1")
	require.NoError(t, err)
	require.Len(t, loaded, 3)
	for i, e := range loaded {
		assert.Equal(t, int64(i+1), e.Version)
	}
	assert.Equal(t, out[0].ID, loaded[0].ID)
	assert.Equal(t, more[0].Position, loaded[2].Position)
}

func testLoadUnknown(t *testing.T, s eventstore.Store) {
	loaded, err := s.Load(context.Background(), "nobody")
	require.NoError(t, err)
	assert.Empty(t, loaded)
}

func testExpectedVersion(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	_, err := s.Append(ctx, "u1", 0, Event("t.v1", `{}`))
	require.NoError(t, err)

	_, err = s.Append(ctx, "u1", 0, Event("t.v1", `{}`))
	require.ErrorIs(t, err, eventstore.ErrVersionConflict)
	var vc *eventstore.VersionConflictError
	require.ErrorAs(t, err, &vc)
	assert.Equal(t, int64(1), vc.Actual)

	_, err = s.Append(ctx, "u1", 5, Event("t.v1", `{}`))
	require.ErrorIs(t, err, eventstore.ErrVersionConflict)

	_, err = s.Append(ctx, "new", 3, Event("t.v1", `{}`))
	require.ErrorIs(t, err, eventstore.ErrVersionConflict)

	loaded, err := s.Load(ctx, "u1")
	require.NoError(t, err)
	assert.Len(t, loaded, 1, "a refused append stores nothing")
	loaded, err = s.Load(ctx, "new")
	require.NoError(t, err)
	assert.Empty(t, loaded)
}

func testExpectAny(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	_, err := s.Append(ctx, "u1", eventstore.ExpectAny, Event("t.v1", `{}`))
	require.NoError(t, err)
	out, err := s.Append(ctx, "u1", eventstore.ExpectAny, Event("t.v1", `{}`))
	require.NoError(t, err)
	assert.Equal(t, int64(2), out[0].Version)
}

func testDuplicate(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	e := Event("t.v1", `{}`)
	_, err := s.Append(ctx, "u1", 0, e)
	require.NoError(t, err)

	// The same id on another stream, and as the second event of an otherwise fine append.
	_, err = s.Append(ctx, "u2", 0, e)
	require.ErrorIs(t, err, eventstore.ErrDuplicate)
	var de *eventstore.DuplicateError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, e.ID, de.EventID)

	_, err = s.Append(ctx, "u1", 1, Event("t.v1", `{}`), e)
	require.ErrorIs(t, err, eventstore.ErrDuplicate)

	all, err := s.ReadAll(ctx, 0, 100)
	require.NoError(t, err)
	assert.Len(t, all, 1, "nothing of a refused append is stored")
}

func testDuplicateWithinAppend(t *testing.T, s eventstore.Store) {
	e := Event("t.v1", `{}`)
	_, err := s.Append(context.Background(), "u1", 0, e, e)
	require.ErrorIs(t, err, eventstore.ErrDuplicate)
	all, err := s.ReadAll(context.Background(), 0, 100)
	require.NoError(t, err)
	assert.Empty(t, all)
}

func testReadAllPages(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	for i := 0; i < 25; i++ {
		_, err := s.Append(ctx, fmt.Sprintf("u%d", i%4), eventstore.ExpectAny, Event("t.v1", fmt.Sprintf(`{"i":%d}`, i)))
		require.NoError(t, err)
	}
	var got []eventstore.Event
	after := int64(0)
	for {
		page, err := s.ReadAll(ctx, after, 7)
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		assert.LessOrEqual(t, len(page), 7)
		got = append(got, page...)
		after = page[len(page)-1].Position
	}
	require.Len(t, got, 25)
	for i := 1; i < len(got); i++ {
		assert.Less(t, got[i-1].Position, got[i].Position)
	}
	for i, e := range got {
		assert.JSONEq(t, fmt.Sprintf(`{"i":%d}`, i), string(e.Data), "events come back in append order")
	}
	none, err := s.ReadAll(ctx, after, 10)
	require.NoError(t, err)
	assert.Empty(t, none)
}

func testRoundTrip(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	occurred := time.Date(2024, 1, 1, 3, 21, 36, 123456000, time.UTC)
	e := Event("user.registered.v1", `{"email":"a@example.com","profile":{"x":[1,2]}}`)
	e.OccurredAt = occurred
	e.Metadata = map[string]string{"source": "com.authpi/v1", "trace": "abc123"}
	before := time.Now().Add(-time.Second)
	_, err := s.Append(ctx, "auth0|abc", 0, e)
	require.NoError(t, err)

	loaded, err := s.Load(ctx, "auth0|abc")
	require.NoError(t, err)
	require.Len(t, loaded, 1)
	got := loaded[0]
	assert.Equal(t, e.ID, got.ID)
	assert.Equal(t, "UserAggregate", got.StreamType)
	assert.Equal(t, "user.registered.v1", got.Type)
	assert.JSONEq(t, string(e.Data), string(got.Data))
	assert.Equal(t, e.Metadata, got.Metadata)
	assert.True(t, occurred.Equal(got.OccurredAt), "occurred %v, got %v", occurred, got.OccurredAt)
	assert.True(t, got.RecordedAt.After(before))
}

func testConcurrentOneStream(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	const writers = 16
	const rounds = 5
	for round := 0; round < rounds; round++ {
		expected := int64(round)
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, conflicts := 0, 0
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.Append(ctx, "contended", expected, Event("t.v1", `{}`))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, eventstore.ErrVersionConflict):
					conflicts++
				default:
					t.Errorf("unexpected error: %v", err)
				}
			}()
		}
		wg.Wait()
		assert.Equal(t, 1, wins, "exactly one writer wins version %d", expected+1)
		assert.Equal(t, writers-1, conflicts)
	}
	loaded, err := s.Load(ctx, "contended")
	require.NoError(t, err)
	assert.Len(t, loaded, rounds)
}

func testConcurrentManyStreams(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	const streams = 50
	const perStream = 4
	var wg sync.WaitGroup
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for v := 0; v < perStream; v++ {
				_, err := s.Append(ctx, fmt.Sprintf("s%d", i), int64(v), Event("t.v1", `{}`))
				assert.NoError(t, err)
			}
		}(i)
	}
	wg.Wait()
	all, err := s.ReadAll(ctx, 0, 10000)
	require.NoError(t, err)
	require.Len(t, all, streams*perStream)
	seen := map[int64]bool{}
	for i, e := range all {
		assert.False(t, seen[e.Position], "position %d is unique", e.Position)
		seen[e.Position] = true
		if i > 0 {
			assert.Less(t, all[i-1].Position, e.Position)
		}
	}
}

func testFailingAppendIsolated(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	dup := Event("t.v1", `{}`)
	_, err := s.Append(ctx, "seed", 0, dup)
	require.NoError(t, err)

	const n = 40
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			switch i % 4 {
			case 0: // a duplicate id
				_, errs[i] = s.Append(ctx, fmt.Sprintf("iso%d", i), 0, Event("t.v1", `{}`), dup)
			case 1: // a stale expected version
				_, errs[i] = s.Append(ctx, "seed", 0, Event("t.v1", `{}`))
			default:
				_, errs[i] = s.Append(ctx, fmt.Sprintf("iso%d", i), 0, Event("t.v1", `{}`))
			}
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		switch i % 4 {
		case 0:
			assert.ErrorIs(t, err, eventstore.ErrDuplicate, "append %d", i)
			loaded, lerr := s.Load(ctx, fmt.Sprintf("iso%d", i))
			require.NoError(t, lerr)
			assert.Empty(t, loaded, "the refused append %d left nothing", i)
		case 1:
			assert.ErrorIs(t, err, eventstore.ErrVersionConflict, "append %d", i)
		default:
			assert.NoError(t, err, "append %d is unaffected by its neighbours", i)
			loaded, lerr := s.Load(ctx, fmt.Sprintf("iso%d", i))
			require.NoError(t, lerr)
			assert.Len(t, loaded, 1)
		}
	}
}

func testConcurrentDuplicates(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	const copies = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, dups := 0, 0
	e := Event("user.registered.v1", `{}`)
	for i := 0; i < copies; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Append(ctx, "dup-user", eventstore.ExpectAny, e)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, eventstore.ErrDuplicate):
				dups++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 1, ok)
	assert.Equal(t, copies-1, dups)
	loaded, err := s.Load(ctx, "dup-user")
	require.NoError(t, err)
	assert.Len(t, loaded, 1)
}

// testReaderNeverSkips follows the log with ReadAll while many writers append, and checks the follower saw
// every event exactly once: positions must not become visible out of order.
func testReaderNeverSkips(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	const writers = 8
	const perWriter = 40
	stop := make(chan struct{})
	seen := map[string]int{}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		after := int64(0)
		final := false
		for {
			page, err := s.ReadAll(ctx, after, 50)
			if err != nil {
				t.Errorf("read: %v", err)
				return
			}
			for _, e := range page {
				seen[e.ID]++
				after = e.Position
			}
			if len(page) == 0 {
				if final {
					return
				}
				select {
				case <-stop:
					final = true
				default:
					time.Sleep(time.Millisecond)
				}
			}
		}
	}()
	var wg sync.WaitGroup
	var idsMu sync.Mutex
	var ids []string
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				e := Event("t.v1", `{}`)
				_, err := s.Append(ctx, fmt.Sprintf("w%d-%d", w, i%5), eventstore.ExpectAny, e)
				if assert.NoError(t, err) {
					idsMu.Lock()
					ids = append(ids, e.ID)
					idsMu.Unlock()
				}
			}
		}(w)
	}
	wg.Wait()
	close(stop)
	<-readerDone
	sort.Strings(ids)
	assert.Len(t, seen, len(ids), "the follower saw every event")
	for _, id := range ids {
		assert.Equal(t, 1, seen[id], "event %s seen once", id)
	}
}

func testLastPosition(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	p, err := s.LastPosition(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(0), p)
	out, err := s.Append(ctx, "u1", 0, Event("t.v1", `{}`), Event("t.v1", `{}`))
	require.NoError(t, err)
	p, err = s.LastPosition(ctx)
	require.NoError(t, err)
	assert.Equal(t, out[1].Position, p)
	require.NoError(t, s.Ping(ctx))
}

func testInvalidAppend(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	_, err := s.Append(ctx, "", 0, Event("t.v1", `{}`))
	assert.Error(t, err)
	_, err = s.Append(ctx, "u1", 0)
	assert.Error(t, err)
	noID := Event("t.v1", `{}`)
	noID.ID = ""
	_, err = s.Append(ctx, "u1", 0, noID)
	assert.Error(t, err)
	all, err := s.ReadAll(ctx, 0, 10)
	require.NoError(t, err)
	assert.Empty(t, all)
}

func receipts(t *testing.T, s eventstore.Store) eventstore.Receipts {
	t.Helper()
	r, ok := s.(eventstore.Receipts)
	if !ok {
		t.Skip("this store keeps no receipts")
	}
	return r
}

func testReceipts(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	r := receipts(t, s)
	got, err := r.Received(ctx, "ce_1")
	require.NoError(t, err)
	assert.False(t, got)
	require.NoError(t, r.Receive(ctx, "ce_1", "ignored:unsupported_type"))
	got, err = r.Received(ctx, "ce_1")
	require.NoError(t, err)
	assert.True(t, got)
	assert.ErrorIs(t, r.Receive(ctx, "ce_1", "ignored:stale"), eventstore.ErrDuplicate)

	// A stored event's id counts as received.
	e := Event("t.v1", `{}`)
	_, err = s.Append(ctx, "u1", 0, e)
	require.NoError(t, err)
	got, err = r.Received(ctx, e.ID)
	require.NoError(t, err)
	assert.True(t, got)
	assert.ErrorIs(t, r.Receive(ctx, e.ID, "ignored:no_change"), eventstore.ErrDuplicate)
}

func testConcurrentReceipts(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	r := receipts(t, s)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, dups := 0, 0
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.Receive(ctx, "ce_same", "ignored:unsupported_type")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, eventstore.ErrDuplicate):
				dups++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 1, ok)
	assert.Equal(t, 19, dups)
}

// testWritesAndProbe: a store that reports its writes says when an append committed, a conflict (refused on
// its own) is no failed write, and a probe write succeeds and counts as one.
func testWritesAndProbe(t *testing.T, s eventstore.Store) {
	p, ok := s.(eventstore.Prober)
	if !ok {
		t.Skip("this store does not report its writes")
	}
	ctx := context.Background()
	assert.True(t, p.Writes().LastSuccess.IsZero(), "nothing written yet")
	before := time.Now()
	_, err := s.Append(ctx, "w1", 0, Event("user.registered.v1", `{}`))
	require.NoError(t, err)
	w := p.Writes()
	assert.False(t, w.LastSuccess.Before(before), "the append counts as a write")
	assert.False(t, w.Failing())
	_, err = s.Append(ctx, "w1", 0, Event("user.registered.v1", `{}`))
	require.ErrorIs(t, err, eventstore.ErrVersionConflict)
	assert.False(t, p.Writes().Failing(), "a conflict is the caller's, not the store's")
	probeAt := time.Now()
	require.NoError(t, p.Probe(ctx))
	assert.False(t, p.Writes().LastSuccess.Before(probeAt.Add(-time.Millisecond)), "the probe counts as a write")
	last, err := s.LastPosition(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), last, "a probe stores no event")
}

// testRecent: what a store keeps of its newest commits is exactly what ReadAll reads back, from any position
// it holds; it says when that is all there is, and a position pushed out is not claimed.
func testRecent(t *testing.T, s eventstore.Store) {
	recent, ok := s.(eventstore.Recent)
	if !ok {
		t.Skip("the store keeps no recent events")
	}
	ctx := context.Background()
	require.Eventually(t, func() bool {
		events, all := recent.Recent(0, 10)
		return len(events) == 0 && all
	}, 5*time.Second, 10*time.Millisecond, "an empty store holds nothing, and knows it is all")
	occurred := time.Date(2024, 1, 1, 3, 21, 36, 123456789, time.FixedZone("x", 7200))
	e := Event("user.registered.v1", `{"email":"a@example.com"}`)
	e.OccurredAt, e.Metadata = occurred, map[string]string{"source": "s"}
	_, err := s.Append(ctx, "r0", 0, e)
	require.NoError(t, err)
	// Appends that are refused (a duplicate, a stale version) among ones that are stored, in one commit.
	var wg sync.WaitGroup
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch i % 3 {
			case 0:
				_, _ = s.Append(ctx, fmt.Sprintf("r%d", i), 0, Event("t.v1", `{}`), e)
			case 1:
				_, _ = s.Append(ctx, "r0", 0, Event("t.v1", `{}`))
			default:
				_, _ = s.Append(ctx, fmt.Sprintf("r%d", i), 0, Event("t.v1", fmt.Sprintf(`{"n":%d}`, i)))
			}
		}()
	}
	wg.Wait()
	last, err := s.LastPosition(ctx)
	require.NoError(t, err)
	same := func(after int64, limit int) {
		t.Helper()
		want, err := s.ReadAll(ctx, after, limit)
		require.NoError(t, err)
		got, all := recent.Recent(after, limit)
		require.Len(t, got, len(want), "after %d", after)
		assert.Equal(t, after+int64(len(want)) >= last, all, "after %d, limit %d: all", after, limit)
		for i := range want {
			w, g := want[i], got[i]
			assert.True(t, w.OccurredAt.Equal(g.OccurredAt) && w.RecordedAt.Equal(g.RecordedAt), "times of %d", w.Position)
			assert.Equal(t, w.OccurredAt.Location(), g.OccurredAt.Location())
			w.OccurredAt, w.RecordedAt, g.OccurredAt, g.RecordedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
			if len(w.Metadata) == 0 && len(g.Metadata) == 0 {
				w.Metadata, g.Metadata = nil, nil
			}
			assert.Equal(t, w, g, "event at %d", w.Position)
		}
	}
	for after := int64(0); after <= last; after++ {
		same(after, 1000)
		same(after, 3)
	}

	// Push the first events out: more than the store keeps, in a few large appends.
	for i := 0; i < eventstore.TailSize/500+1; i++ {
		events := make([]eventstore.Event, 500)
		for j := range events {
			events[j] = Event("t.v1", `{}`)
		}
		_, err := s.Append(ctx, fmt.Sprintf("bulk%d", i), 0, events...)
		require.NoError(t, err)
	}
	newest, err := s.LastPosition(ctx)
	require.NoError(t, err)
	events, all := recent.Recent(0, 10)
	assert.Empty(t, events, "position 1 is no longer held")
	assert.False(t, all, "the reader must read the store")
	last = newest
	same(newest-5, 10)
}
