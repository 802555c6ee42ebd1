package delivery_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/delivery"
	"github.com/userhook/userhook/delivery/sqlite"
	"github.com/userhook/userhook/internal/sqlitedb/sqlitetest"
)

func newStore(t *testing.T) delivery.Store {
	t.Helper()
	s, err := sqlite.New(context.Background(), sqlitetest.Open(t))
	require.NoError(t, err)
	return s
}

// endpoint is a receiver on 127.0.0.1 that hangs (until the test ends or it is set to answer) or answers 204,
// counting the requests it gets and how many it holds at once, and keeping when each arrived.
type endpoint struct {
	URL                  string
	answer               atomic.Bool
	requests, open, most atomic.Int64
	release              chan struct{}
	letGoOnce            sync.Once

	mu      sync.Mutex
	arrived []time.Time
}

// arrival is when the n-th request (1-based) arrived.
func (e *endpoint) arrival(t *testing.T, n int) time.Time {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	require.GreaterOrEqual(t, len(e.arrived), n, "request %d arrived", n)
	return e.arrived[n-1]
}

// letGo ends the requests the endpoint holds, and makes it answer from now on.
func (e *endpoint) letGo() {
	e.letGoOnce.Do(func() {
		e.answer.Store(true)
		close(e.release)
	})
}

func newEndpoint(t *testing.T, answer bool) *endpoint {
	t.Helper()
	e := &endpoint{release: make(chan struct{})}
	e.answer.Store(answer)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.arrived = append(e.arrived, time.Now())
		e.mu.Unlock()
		e.requests.Add(1)
		n := e.open.Add(1)
		defer e.open.Add(-1)
		for {
			most := e.most.Load()
			if n <= most || e.most.CompareAndSwap(most, n) {
				break
			}
		}
		_, _ = io.Copy(io.Discard, r.Body)
		if !e.answer.Load() {
			select {
			case <-e.release:
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(e.letGo) // runs first: the handlers let go, then the server closes
	e.URL = srv.URL + "/hook"
	return e
}

func createWebhook(t *testing.T, s delivery.Store, id, url string) {
	t.Helper()
	now := time.Now().UTC()
	require.NoError(t, s.CreateWebhook(context.Background(), delivery.Webhook{ID: id, Name: id, URL: url,
		Events: []string{delivery.All}, Enabled: true, ContentType: "application/json",
		Secrets: []string{delivery.NewSecret()}, CreatedAt: now, UpdatedAt: now}))
}

func due(webhookID string, n int, at time.Time) delivery.Delivery {
	return delivery.Delivery{ID: fmt.Sprintf("dlv_%s_%03d", webhookID, n), WebhookID: webhookID,
		EventID: fmt.Sprintf("evt_%03d", n), EventType: "user.created", Position: int64(n), Payload: []byte(`{}`),
		Status: delivery.StatusPending, CreatedAt: at, NextAttemptAt: at}
}

// run runs s until the test ends, when the endpoints first let go of the requests they hold, so that the
// sender need not wait for them to time out.
func run(t *testing.T, s *delivery.Sender, endpoints ...*endpoint) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		assert.NoError(t, s.Run(ctx))
	}()
	t.Cleanup(func() { cancel(); <-done })
	for _, e := range endpoints {
		t.Cleanup(e.letGo)
	}
}

func deliveries(t *testing.T, s delivery.Store, webhookID string) []delivery.Delivery {
	t.Helper()
	list, err := s.Deliveries(context.Background(), delivery.Filter{WebhookID: webhookID, Limit: 1000})
	require.NoError(t, err)
	return list
}

func count(ds []delivery.Delivery, status string) int {
	n := 0
	for _, d := range ds {
		if d.Status == status {
			n++
		}
	}
	return n
}

// TestSenderLanes: a hanging endpoint gets PerEndpoint requests at once, and delays no other webhook's
// deliveries, though it has as many due, and sooner.
func TestSenderLanes(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	hanging, healthy := newEndpoint(t, false), newEndpoint(t, true)
	createWebhook(t, store, "wh_hanging", hanging.URL)
	createWebhook(t, store, "wh_healthy", healthy.URL)
	now := time.Now().UTC()
	var ds []delivery.Delivery
	for i := range 50 {
		// The hanging endpoint's deliveries are all due before the healthy one's.
		ds = append(ds, due("wh_hanging", i, now.Add(-time.Minute)), due("wh_healthy", i, now))
	}
	require.NoError(t, store.Enqueue(context.Background(), delivery.ConsumerName, 50, ds))

	var observed sync.Map
	s := &delivery.Sender{Store: store, Client: delivery.NewClient(5*time.Second, delivery.Guard{AllowPrivate: true}),
		Workers: 4, PerEndpoint: 2, AttemptTimeout: 5 * time.Second, Backoff: []time.Duration{time.Minute},
		Observe: func(o delivery.Outcome, took time.Duration) {
			observed.Store(o, took)
		}}
	start := time.Now()
	run(t, s, hanging)
	require.Eventually(t, func() bool { return count(deliveries(t, store, "wh_healthy"), delivery.StatusSucceeded) == 50 },
		3*time.Second, 10*time.Millisecond, "the healthy endpoint gets every delivery while the other hangs")
	t.Logf("50 deliveries to the healthy endpoint in %v beside a hanging one", time.Since(start))
	assert.EqualValues(t, 50, healthy.requests.Load())
	assert.EqualValues(t, 2, hanging.most.Load(), "the hanging endpoint holds PerEndpoint requests at most")
	assert.EqualValues(t, 2, hanging.requests.Load())
	took, ok := observed.Load(delivery.OutcomeSucceeded)
	require.True(t, ok, "Observe is told of every attempt")
	assert.Positive(t, took.(time.Duration), "with how long it took")
}

// TestSenderCircuitBreaker: after BreakAfter timeouts the endpoint is not called; its deliveries stay
// pending (one waiting in the lane is postponed with the reason); after BreakFor one probe goes out; once
// the endpoint answers, everything is delivered. The breaker runs on the real clock (gobreaker reads
// time.Now), with short intervals; that the endpoint was not called for a while is read from when the next
// request arrived, not asserted after a sleep.
func TestSenderCircuitBreaker(t *testing.T) {
	t.Parallel()
	const (
		timeout  = 300 * time.Millisecond
		breakFor = 800 * time.Millisecond
	)
	store := newStore(t)
	e := newEndpoint(t, false)
	createWebhook(t, store, "wh_a", e.URL)
	now := time.Now().UTC()
	// The first is sent alone; the next two come due while it hangs: one is sent, one waits for its turn, and
	// the first's timeout opens the circuit.
	d1, d2, d3 := due("wh_a", 1, now), due("wh_a", 2, now.Add(100*time.Millisecond)), due("wh_a", 3, now.Add(100*time.Millisecond))
	require.NoError(t, store.Enqueue(context.Background(), delivery.ConsumerName, 3, []delivery.Delivery{d1, d2, d3}))

	var deferred atomic.Int64
	s := &delivery.Sender{Store: store, Client: delivery.NewClient(time.Minute, delivery.Guard{AllowPrivate: true}),
		Workers: 8, PerEndpoint: 2, AttemptTimeout: timeout, BreakAfter: 1, BreakFor: breakFor,
		Backoff: []time.Duration{50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond,
			50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond},
		Observe: func(o delivery.Outcome, _ time.Duration) {
			if o == delivery.OutcomeDeferred {
				deferred.Add(1)
			}
		}, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
	run(t, s, e)

	var postponed delivery.Delivery
	require.Eventually(t, func() bool {
		var err error
		postponed, err = store.Delivery(context.Background(), d3.ID)
		return err == nil && postponed.Error != ""
	}, 3*time.Second, 5*time.Millisecond, "the delivery waiting in the lane is postponed when the circuit opens")
	tripped := time.Now()
	assert.Contains(t, postponed.Error, "not sent: circuit open after 1 timeout in a row")
	assert.Equal(t, delivery.StatusPending, postponed.Status)
	assert.Zero(t, postponed.Attempts, "nothing was sent, so the schedule is not used up")
	assert.WithinDuration(t, tripped.Add(breakFor), postponed.NextAttemptAt, 300*time.Millisecond,
		"due when the circuit lets a probe through")
	assert.EqualValues(t, 1, deferred.Load(), "Observe is told")
	assert.EqualValues(t, 2, e.requests.Load(), "one timeout opened the circuit; the other was under way")

	// Open: nothing reaches the endpoint until the circuit half-opens and lets one probe through, and nothing
	// is lost meanwhile.
	require.Eventually(t, func() bool { return e.requests.Load() == 3 }, breakFor+2*time.Second, 5*time.Millisecond, "one probe")
	assert.GreaterOrEqual(t, e.arrival(t, 3).Sub(tripped), breakFor/2, "the endpoint is not called while the circuit is open")
	ds := deliveries(t, store, "wh_a")
	assert.Equal(t, 3, count(ds, delivery.StatusPending), "every delivery stays pending: %+v", ds)

	// Half-open: the probe hangs too; once its timeout is recorded (the circuit is open again by then), no other
	// request went out while it was under way.
	require.Eventually(t, func() bool {
		ds, err := store.Deliveries(context.Background(), delivery.Filter{WebhookID: "wh_a", Limit: 10})
		attempts := 0
		for _, d := range ds {
			attempts += d.Attempts
		}
		return err == nil && attempts == 3
	}, timeout+2*time.Second, 5*time.Millisecond, "the probe's timeout is recorded")
	probed := time.Now()
	assert.EqualValues(t, 3, e.requests.Load(), "one probe at a time")
	assert.Equal(t, 3, count(deliveries(t, store, "wh_a"), delivery.StatusPending))

	// The endpoint recovers: the next probe succeeds, the circuit closes and every delivery goes out.
	e.answer.Store(true)
	require.Eventually(t, func() bool { return count(deliveries(t, store, "wh_a"), delivery.StatusSucceeded) == 3 },
		breakFor+2*time.Second, 10*time.Millisecond, "every delivery is delivered once the endpoint answers")
	assert.EqualValues(t, 6, e.requests.Load(), "three timeouts and three deliveries")
	assert.GreaterOrEqual(t, e.arrival(t, 4).Sub(probed), breakFor/2, "the probe timed out: open again")
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
