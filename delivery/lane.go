package delivery

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// laneIdle is how long a lane may go unused before the sender forgets it (and its breaker, unless open).
// Lanes are keyed by webhook ids, which only admins create; forgetting idle ones also drops those of deleted
// webhooks, so the map holds the webhooks active lately and no more.
const laneIdle = 10 * time.Minute

// lane is one webhook's share of a sender: the deliveries being sent to it, those claimed and waiting for
// their turn, and its endpoint's circuit breaker. Its fields but opened are guarded by lanes.mu.
type lane struct {
	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]
	// opened is when (unix nanoseconds, on the breaker's clock: time.Now) the breaker last opened.
	opened   atomic.Int64
	sending  int
	waiting  []claimed
	lastUsed time.Time
}

// claimed is a delivery its sender leased at a time.
type claimed struct {
	d  Delivery
	at time.Time
}

// reopensAt is when the breaker lets a probe through, if it is open.
func (l *lane) reopensAt(openFor time.Duration) time.Time {
	return time.Unix(0, l.opened.Load()).Add(openFor)
}

// lanes are a sender's lanes by webhook id.
type lanes struct {
	mu   sync.Mutex
	byID map[string]*lane
	// held counts the deliveries of every lane, sending or waiting.
	held  int
	swept time.Time
	// ctx is what attempts run in; wg counts them; closed stops new ones.
	ctx    context.Context
	wg     sync.WaitGroup
	closed bool
}

// open readies the lanes for Run.
func (s *Sender) open(ctx context.Context) {
	s.lanes.mu.Lock()
	defer s.lanes.mu.Unlock()
	if s.lanes.byID == nil {
		s.lanes.byID = map[string]*lane{}
	}
	s.lanes.ctx, s.lanes.closed = ctx, false
}

// close lets the deliveries being sent finish and releases those waiting, for the next claim (here or by
// another sender) rather than leaving them leased.
func (s *Sender) close() {
	s.lanes.mu.Lock()
	s.lanes.closed = true
	var waiting []claimed
	for _, l := range s.lanes.byID {
		waiting = append(waiting, l.waiting...)
		s.lanes.held -= len(l.waiting)
		l.waiting = nil
	}
	ctx := s.lanes.ctx
	s.lanes.mu.Unlock()
	for _, c := range waiting {
		// Recording the delivery as it was claimed changes nothing but the lease.
		if err := s.Store.Record(ctx, c.d, nil); err != nil {
			s.log().Error("releasing a delivery failed", "delivery", c.d.ID, "error", err.Error())
		}
	}
	s.lanes.wg.Wait()
}

// room is how many deliveries lane l may send at once: none while its circuit is open, one probe while it is
// half-open, PerEndpoint otherwise.
func (s *Sender) room(l *lane) int {
	switch l.breaker.State() {
	case gobreaker.StateOpen:
		return 0
	case gobreaker.StateHalfOpen:
		return 1
	}
	return s.perEndpoint()
}

// plan says which webhooks the next claim passes over (their lanes are full, or their circuit open), how
// many deliveries the sender has room for, and when the first open circuit lets a probe through (zero when
// none is open). It forgets the lanes idle for long.
func (s *Sender) plan(now time.Time) (skip []string, room int, reopen time.Time) {
	s.lanes.mu.Lock()
	defer s.lanes.mu.Unlock()
	if now.Sub(s.lanes.swept) >= laneIdle/10 {
		s.lanes.swept = now
		for id, l := range s.lanes.byID {
			if l.sending == 0 && len(l.waiting) == 0 && now.Sub(l.lastUsed) >= laneIdle && l.breaker.State() != gobreaker.StateOpen {
				delete(s.lanes.byID, id)
			}
		}
	}
	for id, l := range s.lanes.byID {
		r := s.room(l)
		if r == 0 {
			if at := l.reopensAt(s.breakFor()); reopen.IsZero() || at.Before(reopen) {
				reopen = at
			}
		}
		if l.sending+len(l.waiting) >= r {
			skip = append(skip, id)
		}
	}
	return skip, s.workers() - s.lanes.held, reopen
}

// hand gives claimed deliveries to their lanes.
func (s *Sender) hand(ds []Delivery, at time.Time) {
	s.lanes.mu.Lock()
	defer s.lanes.mu.Unlock()
	for _, d := range ds {
		l := s.lanes.byID[d.WebhookID]
		if l == nil {
			l = s.newLane(d.WebhookID)
			s.lanes.byID[d.WebhookID] = l
		}
		l.lastUsed = at
		l.waiting = append(l.waiting, claimed{d: d, at: at})
		s.lanes.held++
		s.pump(l)
	}
}

// pump starts sending l's waiting deliveries while it has room; while its circuit is open, all of them, as
// each is postponed at once without a request. Called with lanes.mu held.
func (s *Sender) pump(l *lane) {
	for len(l.waiting) > 0 && !s.lanes.closed {
		if room := s.room(l); room > 0 && l.sending >= room {
			return
		}
		c := l.waiting[0]
		l.waiting = l.waiting[1:]
		l.sending++
		s.lanes.wg.Add(1)
		go s.work(l, c)
	}
}

// work attempts one delivery of lane l, then hands its turn on.
func (s *Sender) work(l *lane, c claimed) {
	defer s.lanes.wg.Done()
	ctx := s.lanes.ctx
	// A delivery that waited so long that its lease could end during the attempt is left for the next claim:
	// another sender may take it then, and it must not be sent twice at once. A delivery waits for one attempt
	// ahead of it at most, which leaves its own attempt time to spare.
	if s.now().Sub(c.at) > s.lease()-s.attemptTimeout()*3/2 {
		s.log().Warn("a delivery waited too long for its turn; it is sent when its lease ends", "delivery", c.d.ID)
	} else if _, err := s.attempt(ctx, c.d, false, l); err != nil {
		s.log().Error("recording a delivery attempt failed", "delivery", c.d.ID, "error", err.Error())
	}
	s.lanes.mu.Lock()
	l.sending--
	s.lanes.held--
	l.lastUsed = s.now()
	s.pump(l)
	s.lanes.mu.Unlock()
	// Room was made, and the next attempt's time is known now: look again rather than sleep through it.
	s.Wake()
}

// newLane returns the lane of a webhook, with a closed circuit.
func (s *Sender) newLane(webhookID string) *lane {
	l := &lane{}
	after := uint32(s.breakAfter())
	l.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        webhookID,
		MaxRequests: 1,
		Timeout:     s.breakFor(),
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= after },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				l.opened.Store(time.Now().UnixNano())
			}
			s.log().Warn("webhook circuit "+to.String(), "webhook", webhookID, "from", from.String())
		},
	})
	return l
}
