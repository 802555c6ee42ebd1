// Package metrics is what userhook tells Prometheus: requests, ingest latency, events appended, duplicates and
// ignored events, the positions of the store, the relay and the projection with the projection's lag, and
// delivery attempts with the queue of pending deliveries.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the collectors of one process. A nil *Metrics records nothing.
type Metrics struct {
	registry   *prometheus.Registry
	requests   *prometheus.CounterVec
	ingest     *prometheus.HistogramVec
	appended   *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	ignored    *prometheus.CounterVec
	limited    *prometheus.CounterVec
	attempts   *prometheus.CounterVec
}

// Sources are what the scrape-time gauges read.
type Sources struct {
	// Positions returns the positions of "store", "relay" and "users-projection".
	Positions func(ctx context.Context) (map[string]int64, error)
	// Pending counts the deliveries waiting to be sent.
	Pending func(ctx context.Context) (int64, error)
}

// New registers every collector, the Go runtime's and the process's among them.
func New(src Sources) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "userhook_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		ingest: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "userhook_ingest_duration_seconds", Help: "Time to answer an ingest request (POST /users, POST /events), by route and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "status"}),
		appended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "userhook_events_appended_total", Help: "Events appended to the store, by stored type.",
		}, []string{"type"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "userhook_events_duplicate_total", Help: "Provider events received again (answered duplicate), by route.",
		}, []string{"route"}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "userhook_events_ignored_total", Help: "Provider events acknowledged without a change, by reason.",
		}, []string{"reason"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "userhook_rate_limited_total", Help: "Requests refused with 429, by route.",
		}, []string{"route"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "userhook_delivery_attempts_total", Help: "Webhook delivery attempts, by outcome (succeeded, retrying, failed, refused).",
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.requests, m.ingest, m.appended, m.duplicates, m.ignored, m.limited, m.attempts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if src.Positions != nil {
		position := func(name string) func() float64 {
			return func() float64 {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				pos, err := src.Positions(ctx)
				if err != nil {
					return -1
				}
				return float64(pos[name])
			}
		}
		for _, c := range []string{"store", "relay", "users-projection"} {
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "userhook_position", Help: "Global position reached: the store's last event, the relay's last publish, the projection's last applied event (-1: unknown).",
				ConstLabels: prometheus.Labels{"component": c},
			}, position(c)))
		}
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "userhook_projection_lag_events", Help: "Events stored but not yet applied to the users read model.",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			pos, err := src.Positions(ctx)
			if err != nil {
				return -1
			}
			return float64(pos["store"] - pos["users-projection"])
		}))
	}
	if src.Pending != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "userhook_deliveries_pending", Help: "Webhook deliveries waiting to be sent (the delivery queue).",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := src.Pending(ctx)
			if err != nil {
				return -1
			}
			return float64(n)
		}))
	}
	return m
}

// Handler serves the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// Request records one answered HTTP request; ingest routes also feed the latency histogram.
func (m *Metrics) Request(route, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	code := strconv.Itoa(status)
	m.requests.WithLabelValues(route, method, code).Inc()
	if method == http.MethodPost && (route == "/users" || route == "/events") {
		m.ingest.WithLabelValues(route, code).Observe(d.Seconds())
	}
}

// Appended records events stored, by type.
func (m *Metrics) Appended(types ...string) {
	if m == nil {
		return
	}
	for _, t := range types {
		m.appended.WithLabelValues(t).Inc()
	}
}

// Duplicate records a provider event received again.
func (m *Metrics) Duplicate(route string) {
	if m != nil {
		m.duplicates.WithLabelValues(route).Inc()
	}
}

// Ignored records a provider event acknowledged without a change.
func (m *Metrics) Ignored(reason string) {
	if m != nil {
		m.ignored.WithLabelValues(reason).Inc()
	}
}

// Limited records a request refused by the rate limit.
func (m *Metrics) Limited(route string) {
	if m != nil {
		m.limited.WithLabelValues(route).Inc()
	}
}

// Attempt records a delivery attempt's outcome.
func (m *Metrics) Attempt(outcome string) {
	if m != nil {
		m.attempts.WithLabelValues(outcome).Inc()
	}
}
