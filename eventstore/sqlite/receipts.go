package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/userhook/userhook/internal/sqlitedb"
)

// The receipts queries.
const (
	receivedQuery = `SELECT EXISTS (SELECT 1 FROM events WHERE event_id = ?)
		OR EXISTS (SELECT 1 FROM receipts WHERE key = ?)`
	receiptedQuery = `SELECT EXISTS (SELECT 1 FROM receipts WHERE key = ?)`
	receiveQuery   = `INSERT INTO receipts (key, outcome, received_at)
		SELECT ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM events WHERE event_id = ?)
		ON CONFLICT (key) DO NOTHING`
)

// receipts is what the receipts functions of a Store keep: their read statements, prepared once on the read
// pool (preparing one per call cost as much as running it), and keys, an in-memory filter of every receipt
// key, so that asking after a key never recorded (nearly every key: receipts are of the few events that raised
// nothing) needs no query at all.
//
// The filter can be wrong in one direction only: it may hold a key that is no receipt (a false positive,
// and the query then answers), but a receipt committed before a question is asked is always in it. That holds
// because one process writes the file, as everywhere in this store: a receipt another process recorded
// would go unseen.
type receipts struct {
	once sync.Once
	db   *sqlitedb.DB

	// The prepared statements; nil when preparing failed, or once the store is closed: the query text is run
	// instead.
	receivedStmt, receiptedStmt atomic.Pointer[sql.Stmt]

	// keys is the filter questions read, nil until it is first built. gate orders Receive against a build:
	// Receive holds it shared from noting its key until its insert has ended, and a build takes it
	// exclusively to make its filter next, the one Receive notes keys in beside keys. So every receipt is
	// either committed before the build's scan begins, and read by it, or noted in next.
	keys     atomic.Pointer[keyFilter]
	gate     sync.RWMutex
	next     *keyFilter // under gate
	closed   bool       // under gate
	building atomic.Bool
	failedAt atomic.Int64 // Unix nanoseconds of the last failed build; the next one waits filterRetry

	ctx    context.Context // ends with the store, and any build with it
	cancel context.CancelFunc
	builds sync.WaitGroup
}

// filterRetry is how long after a failed build of the filter the next one may start; meanwhile the last
// filter built (or the query, before the first) answers.
const filterRetry = time.Minute

// start prepares the statements and builds the filter in the background; the receipts functions call it
// first (through Store.rc), so a store that keeps no receipts costs nothing.
func (r *receipts) start(db *sqlitedb.DB) {
	r.db = db
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if st, err := db.Read.PrepareContext(r.ctx, receivedQuery); err == nil {
		r.receivedStmt.Store(st)
	}
	if st, err := db.Read.PrepareContext(r.ctx, receiptedQuery); err == nil {
		r.receiptedStmt.Store(st)
	}
	r.startBuild()
}

// rc returns the store's receipts, started.
func (s *Store) rc() *receipts {
	s.receipts.once.Do(func() { s.receipts.start(s.db) })
	return &s.receipts
}

// close stops any build and closes the statements. A receipts function called after it still answers, from
// queries not prepared.
func (r *receipts) close(db *sqlitedb.DB) {
	r.once.Do(func() { r.db = db }) // never started: nothing to stop, and nothing starts now
	r.gate.Lock()
	r.closed = true
	r.gate.Unlock()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.builds.Wait()
	for _, p := range []*atomic.Pointer[sql.Stmt]{&r.receivedStmt, &r.receiptedStmt} {
		if st := p.Swap(nil); st != nil {
			_ = st.Close()
		}
	}
}

// queryBool runs a query of one boolean, prepared when it could be.
func (r *receipts) queryBool(ctx context.Context, prepared *atomic.Pointer[sql.Stmt], query string, args ...any) (bool, error) {
	var found bool
	var row *sql.Row
	if st := prepared.Load(); st != nil {
		row = st.QueryRowContext(ctx, args...)
	} else {
		row = r.db.Read.QueryRowContext(ctx, query, args...)
	}
	err := row.Scan(&found)
	return found, err
}

// receipted says whether key is a receipt: from the filter when it is built and does not hold key, else from
// the receipts table (and a filter not built yet, its first build having failed, is built again).
func (r *receipts) receipted(ctx context.Context, key string) (bool, error) {
	if f := r.keys.Load(); f == nil {
		r.startBuild()
	} else if !f.has(key) {
		return false, nil
	}
	return r.queryBool(ctx, &r.receiptedStmt, receiptedQuery, key)
}

// receive notes key in the filters, then runs insert (the insert of its receipt) while no build can start.
func (r *receipts) receive(key string, insert func() error) error {
	r.gate.RLock()
	defer r.gate.RUnlock()
	full := false
	if f := r.keys.Load(); f != nil {
		full = f.add(key)
	}
	if r.next != nil {
		r.next.add(key)
	}
	if full && !r.closed {
		r.startBuild()
	}
	return insert()
}

// startBuild builds a new filter in the background unless one is being built, the last build failed lately,
// or the store is closed.
func (r *receipts) startBuild() {
	if r.ctx == nil || r.ctx.Err() != nil {
		return
	}
	if failed := r.failedAt.Load(); failed != 0 && time.Since(time.Unix(0, failed)) < filterRetry {
		return
	}
	if !r.building.CompareAndSwap(false, true) {
		return
	}
	r.builds.Add(1)
	go func() {
		defer r.builds.Done()
		defer r.building.Store(false)
		if err := r.build(r.ctx); err != nil {
			r.failedAt.Store(time.Now().UnixNano())
			return
		}
		r.failedAt.Store(0)
	}()
}

// build reads every receipt key into a new filter, sized for twice as many, and makes it the one questions
// read.
func (r *receipts) build(ctx context.Context) error {
	var n int64
	if err := r.db.Read.QueryRowContext(ctx, `SELECT COUNT(*) FROM receipts`).Scan(&n); err != nil {
		return fmt.Errorf("eventstore/sqlite: count receipts: %w", err)
	}
	if f := r.keys.Load(); f != nil {
		n = max(n, f.added.Load())
	}
	f := newKeyFilter(2 * n)

	r.gate.Lock()
	if r.closed {
		r.gate.Unlock()
		return context.Canceled
	}
	r.next = f // from here on, Receive notes its key in f; every receipt before is committed
	r.gate.Unlock()

	err := r.scan(ctx, f)
	r.gate.Lock()
	defer r.gate.Unlock()
	r.next = nil
	if err != nil {
		return err
	}
	r.keys.Store(f)
	return nil
}

func (r *receipts) scan(ctx context.Context, f *keyFilter) error {
	rows, err := r.db.Read.QueryContext(ctx, `SELECT key FROM receipts`)
	if err != nil {
		return fmt.Errorf("eventstore/sqlite: read receipts: %w", err)
	}
	defer rows.Close()
	var key sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&key); err != nil {
			return fmt.Errorf("eventstore/sqlite: read receipts: %w", err)
		}
		f.addBytes(key)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("eventstore/sqlite: read receipts: %w", err)
	}
	return nil
}

// keyFilter is a Bloom filter of strings, safe for concurrent use: has never says no for a key added.
type keyFilter struct {
	words []atomic.Uint64
	mask  uint64 // the number of bits, a power of two, minus one
	limit int64  // how many keys it holds at about 1% false positives
	added atomic.Int64
}

const (
	filterBitsPerKey = 10 // about 1% false positives with filterProbes probes
	filterProbes     = 7
)

// filterMinBits is the size of the smallest filter, 128 KiB, and filterMaxBits of the largest, 8 MiB (about
// 6.7 million keys at 1%): past it the filter keeps its size, so the memory the receipts take stays bounded
// however many are recorded, and its false positives, which the query answers, grow instead. (Variables for
// tests.)
var filterMinBits, filterMaxBits uint64 = 1 << 20, 1 << 26

var filterSeed = maphash.MakeSeed()

// newKeyFilter returns a filter for n keys at least.
func newKeyFilter(n int64) *keyFilter {
	size := filterMinBits
	if want := uint64(max(n, 0)) * filterBitsPerKey; want > size {
		size = 1 << bits.Len64(want-1)
	}
	limit := int64(size / filterBitsPerKey)
	if size >= filterMaxBits {
		size, limit = filterMaxBits, math.MaxInt64 // the largest: never asks to be rebuilt larger
	}
	return &keyFilter{words: make([]atomic.Uint64, size/64), mask: size - 1, limit: limit}
}

// add adds key and says whether the filter now holds more keys than it was made for.
func (f *keyFilter) add(key string) bool {
	f.set(maphash.String(filterSeed, key))
	return f.added.Add(1) > f.limit
}

func (f *keyFilter) addBytes(key []byte) {
	f.set(maphash.Bytes(filterSeed, key))
	f.added.Add(1)
}

func (f *keyFilter) set(h uint64) {
	step := h>>32 | h<<32 | 1
	for range filterProbes {
		i := h & f.mask
		f.words[i/64].Or(1 << (i % 64))
		h += step
	}
}

// has says whether key may have been added: surely not when false.
func (f *keyFilter) has(key string) bool {
	h := maphash.String(filterSeed, key)
	step := h>>32 | h<<32 | 1
	for range filterProbes {
		i := h & f.mask
		if f.words[i/64].Load()&(1<<(i%64)) == 0 {
			return false
		}
		h += step
	}
	return true
}
