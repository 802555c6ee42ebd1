package eventstore

import (
	"context"
	"sync"
	"time"
)

// Pending is one append waiting in a GroupCommit: what was asked, and what the commit made of it.
type Pending struct {
	Ctx      context.Context
	Stream   string
	Expected int64
	Events   []Event
	// Out and Err are set by the commit function: the stored events, or why this append was refused.
	Out  []Event
	Err  error
	done chan struct{}
}

// GroupCommit is the single writer both stores use: appends that arrive while a commit is in flight queue
// up and are handed to commit together, in arrival order, so that they share one transaction and one
// durable flush. Each caller is answered only after the commit that holds its append returned.
type GroupCommit struct {
	commit func(batch []*Pending) error
	after  func(batch []*Pending, err error)
	max    int

	// Health records every commit's outcome (a batch refused whole counts as a failure; an append refused on
	// its own, a conflict or a duplicate, does not).
	Health WriteHealth

	observeMu sync.Mutex
	observe   func(appends int)

	// tail keeps the newest committed events for Recent.
	tail Tail

	mu     sync.RWMutex // guards closed against sends on reqs
	closed bool
	reqs   chan *Pending
	done   chan struct{}
}

// NewGroupCommit starts a writer that calls commit with batches of at most max appends. commit sets each
// append's Out or Err; when it returns an error, every append of the batch fails with it. after, when set,
// runs once a batch is answered.
func NewGroupCommit(max int, commit func(batch []*Pending) error, after func(batch []*Pending, err error)) *GroupCommit {
	g := &GroupCommit{commit: commit, after: after, max: max, reqs: make(chan *Pending, max), done: make(chan struct{})}
	go g.run()
	return g
}

// Append validates and queues an append and waits for the commit that carries it out or refuses it. Once
// queued, the append is decided even if ctx ends meanwhile, so the answer is always the truth.
func (g *GroupCommit) Append(ctx context.Context, stream string, expectedVersion int64, events []Event) ([]Event, error) {
	if err := Validate(stream, expectedVersion, events); err != nil {
		return nil, err
	}
	p := &Pending{Ctx: ctx, Stream: stream, Expected: expectedVersion, Events: events, done: make(chan struct{})}
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return nil, ErrClosed
	}
	select {
	case g.reqs <- p:
	case <-ctx.Done():
		g.mu.RUnlock()
		return nil, ctx.Err()
	}
	g.mu.RUnlock()
	<-p.done
	return p.Out, p.Err
}

func (g *GroupCommit) run() {
	defer close(g.done)
	batch := make([]*Pending, 0, g.max)
	for p := range g.reqs {
		batch = append(batch[:0], p)
	drain:
		for len(batch) < g.max {
			select {
			case p, ok := <-g.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, p)
			default:
				break drain
			}
		}
		err := g.commit(batch)
		g.Health.Record(time.Now(), err)
		g.observeMu.Lock()
		observe := g.observe
		g.observeMu.Unlock()
		if observe != nil {
			observe(len(batch))
		}
		if err == nil {
			g.keep(batch)
		}
		for _, p := range batch {
			if err != nil {
				p.Out, p.Err = nil, err
			}
			close(p.done)
		}
		if g.after != nil {
			g.after(batch, err)
		}
	}
}

// keep puts the events a commit stored into the tail, before any caller is answered: a reader woken by the
// commit finds them there.
func (g *GroupCommit) keep(batch []*Pending) {
	var stored []Event
	for _, p := range batch {
		if p.Err == nil {
			stored = append(stored, p.Out...)
		}
	}
	g.tail.add(stored)
}

// Recent implements eventstore.Recent for the store that commits through g.
func (g *GroupCommit) Recent(after int64, limit int) ([]Event, bool) {
	return g.tail.Since(after, limit)
}

// Heard tells the writer that position is committed, by another process or before this one started: Recent
// does not claim to be complete below it. A store calls it once it knows its newest position on opening.
func (g *GroupCommit) Heard(position int64) { g.tail.Heard(position) }

// ObserveCommits has fn told the number of appends of every commit from now on.
func (g *GroupCommit) ObserveCommits(fn func(appends int)) {
	g.observeMu.Lock()
	defer g.observeMu.Unlock()
	g.observe = fn
}

// Close refuses new appends, commits the queued ones, and stops the writer.
func (g *GroupCommit) Close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.reqs)
	}
	g.mu.Unlock()
	<-g.done
}
