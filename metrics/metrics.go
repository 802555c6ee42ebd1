// Package metrics is what userhook tells Prometheus: requests and their latency, events appended, duplicates
// and ignored events, rate-limited requests, the positions of the store, the relay and every consumer with the
// consumers' lag, delivery attempts and their latency, the delivery queue and its oldest due delivery, the
// group commit's batch sizes, poisoned messages, and the build.
//
// Every label value comes from a closed set: a route template (or "unmatched"), a standard method (or
// "other"), a status code, or a value this program declared (Declare). Nothing a client sends becomes a label,
// so nothing a client sends creates a series.
package metrics

import (
	"context"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the collectors of one process. A nil *Metrics records nothing.
type Metrics struct {
	registry        *prometheus.Registry
	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	appended        *prometheus.CounterVec
	duplicates      *prometheus.CounterVec
	ignored         *prometheus.CounterVec
	limited         *prometheus.CounterVec
	attempts        *prometheus.CounterVec
	attemptDuration *prometheus.HistogramVec
	commitBatch     prometheus.Histogram
	poisoned        *prometheus.CounterVec
	sources         *prometheus.CounterVec
	sourceLabels    sync.Map // source ids labelled so far, at most maxSourceLabels
	sourceCount     atomic.Int64
}

// maxSourceLabels bounds the source label: sources are created by administrators, and past this many the
// rest are counted under "other".
const maxSourceLabels = 1000

// The outcomes of userhook_source_events_total.
const (
	SourceReceived     = "received"
	SourceApplied      = "applied"
	SourceDuplicate    = "duplicate"
	SourceIgnored      = "ignored"
	SourceUnauthorized = "unauthorized"
)

// Sources are what the scrape-time gauges read, once per scrape each. A nil source is not reported.
type Sources struct {
	// Positions returns the global positions reached: "store" (the last event stored), "relay" (the last
	// published) and one per consumer (every other key: "users-projection", "webhook-deliveries", ...).
	Positions func(ctx context.Context) (map[string]int64, error)
	// Pending counts the deliveries waiting to be sent.
	Pending func(ctx context.Context) (int64, error)
	// OldestDue returns when the oldest delivery that is due now became due; the zero time when none is.
	OldestDue func(ctx context.Context) (time.Time, error)
}

// Known are label values that exist before anything happened, so that every series an operator alerts on is
// there, at 0, from the first scrape (a rate or an absent() over a series that appears only with its first
// event misleads). The package that owns a set of values declares it.
type Known struct {
	// DuplicateRoutes are the routes that answer "duplicate".
	DuplicateRoutes []string
	// LimitedRoutes are the routes a rate limit applies to.
	LimitedRoutes []string
	// IgnoreReasons are the reasons an event is acknowledged without a change.
	IgnoreReasons []string
	// Outcomes are the outcomes of a delivery attempt.
	Outcomes []string
	// Handlers are the consumers that can set a message aside as poison.
	Handlers []string
}

// scrapeTimeout bounds one scrape's reads of its sources.
const scrapeTimeout = 2 * time.Second

// New registers every collector, the Go runtime's and the process's among them.
func New(src Sources) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "userhook_http_requests_total", Help: "HTTP requests by route template (or unmatched), method (or other) and status code.",
		}, []string{"route", "method", "code"}),
		// One histogram for every route: ingest latency is its route="/users" and route="/events" series, so
		// the buckets start fine enough for them.
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "userhook_http_request_duration_seconds", Help: "Time to answer an HTTP request, by route template (or unmatched), method (or other) and status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "code"}),
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
			Name: "userhook_delivery_attempts_total", Help: "Webhook delivery attempts, by outcome.",
		}, []string{"outcome"}),
		attemptDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "userhook_delivery_attempt_duration_seconds", Help: "Time a webhook delivery attempt took, by outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"outcome"}),
		commitBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "userhook_store_commit_batch_size", Help: "Appends committed together by the store's group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13), // 1 to 4096
		}),
		poisoned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "userhook_messages_poisoned_total", Help: "Messages a consumer set aside as poison, by consumer.",
		}, []string{"handler"}),
		sources: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "userhook_source_events_total", Help: "Events of identity providers' own webhooks (POST /sources/{id}), by source id and outcome (received, applied, duplicate, ignored; unauthorized counts requests).",
		}, []string{"source", "outcome"}),
	}
	scrapeErrors := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "userhook_scrape_errors_total", Help: "Reads of a scrape-time source that failed (its gauges are then left out of that scrape), by source.",
	}, []string{"source"})
	reg.MustRegister(m.requests, m.duration, m.appended, m.duplicates, m.ignored, m.limited, m.attempts,
		m.attemptDuration, m.commitBatch, m.poisoned, m.sources, scrapeErrors, buildInfo(),
		&scrapeCollector{src: src, errors: scrapeErrors},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for name, f := range map[string]bool{"positions": src.Positions != nil, "pending": src.Pending != nil, "oldest_due": src.OldestDue != nil} {
		if f {
			scrapeErrors.WithLabelValues(name)
		}
	}
	return m
}

// Declare creates the series of known label values at 0.
func (m *Metrics) Declare(k Known) {
	if m == nil {
		return
	}
	for _, r := range k.DuplicateRoutes {
		m.duplicates.WithLabelValues(r)
	}
	for _, r := range k.LimitedRoutes {
		m.limited.WithLabelValues(r)
	}
	for _, r := range k.IgnoreReasons {
		m.ignored.WithLabelValues(r)
	}
	for _, o := range k.Outcomes {
		m.attempts.WithLabelValues(o)
		m.attemptDuration.WithLabelValues(o)
	}
	for _, h := range k.Handlers {
		m.poisoned.WithLabelValues(h)
	}
}

// buildInfo is userhook_build_info{version,revision,goversion} = 1, from what the Go toolchain stamped into
// the binary.
func buildInfo() prometheus.Collector {
	version, revision, goVersion := "unknown", "unknown", runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				revision = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "userhook_build_info", Help: "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion},
	})
	g.Set(1)
	return g
}

// scrapeCollector reads each source once per scrape and reports what it read. A source that fails counts in
// userhook_scrape_errors_total and its gauges are left out of that scrape, rather than reported with a made-up
// value: an alert on the gauge then sees no data, not a wrong number.
type scrapeCollector struct {
	src    Sources
	errors *prometheus.CounterVec
}

var (
	positionDesc = prometheus.NewDesc("userhook_position",
		"Global position reached: the store's last event, the relay's last publish, each consumer's last applied event.",
		[]string{"component"}, nil)
	consumerLagDesc = prometheus.NewDesc("userhook_consumer_lag_events",
		"Events stored but not yet applied by a consumer.", []string{"consumer"}, nil)
	projectionLagDesc = prometheus.NewDesc("userhook_projection_lag_events",
		"Events stored but not yet applied to the users read model (the same as userhook_consumer_lag_events{consumer=\"users-projection\"}, kept for existing alerts).",
		nil, nil)
	pendingDesc = prometheus.NewDesc("userhook_deliveries_pending",
		"Webhook deliveries waiting to be sent (the delivery queue).", nil, nil)
	oldestDueDesc = prometheus.NewDesc("userhook_delivery_oldest_due_age_seconds",
		"How long the oldest delivery that is due has been waiting to be sent; 0 when none is due.", nil, nil)
)

// The position keys that are not consumers.
const (
	componentStore = "store"
	componentRelay = "relay"
	usersConsumer  = "users-projection"
)

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- positionDesc
	ch <- consumerLagDesc
	ch <- projectionLagDesc
	ch <- pendingDesc
	ch <- oldestDueDesc
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if c.src.Positions != nil {
		if pos, err := c.src.Positions(ctx); err != nil {
			c.errors.WithLabelValues("positions").Inc()
		} else {
			store, hasStore := pos[componentStore]
			for component, p := range pos {
				ch <- prometheus.MustNewConstMetric(positionDesc, prometheus.GaugeValue, float64(p), component)
				if component == componentStore || component == componentRelay || !hasStore {
					continue
				}
				// The positions are read one after the other; a consumer read after a commit can be ahead.
				lag := float64(max(store-p, 0))
				ch <- prometheus.MustNewConstMetric(consumerLagDesc, prometheus.GaugeValue, lag, component)
				if component == usersConsumer {
					ch <- prometheus.MustNewConstMetric(projectionLagDesc, prometheus.GaugeValue, lag)
				}
			}
		}
	}
	if c.src.Pending != nil {
		if n, err := c.src.Pending(ctx); err != nil {
			c.errors.WithLabelValues("pending").Inc()
		} else {
			ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(n))
		}
	}
	if c.src.OldestDue != nil {
		if due, err := c.src.OldestDue(ctx); err != nil {
			c.errors.WithLabelValues("oldest_due").Inc()
		} else {
			age := 0.0
			if !due.IsZero() {
				age = max(time.Since(due).Seconds(), 0)
			}
			ch <- prometheus.MustNewConstMetric(oldestDueDesc, prometheus.GaugeValue, age)
		}
	}
}

// Handler serves the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// Method is the method label of a request: a standard method as it is, any other "other".
func Method(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
		http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

// Request records one answered HTTP request. route must be a route template or "unmatched", never a path a
// client sent; the method is reduced to Method's closed set here.
func (m *Metrics) Request(route, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	method, code := Method(method), strconv.Itoa(status)
	m.requests.WithLabelValues(route, method, code).Inc()
	m.duration.WithLabelValues(route, method, code).Observe(d.Seconds())
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

// Source records an outcome for a stored source (its id, never one a request made up): every outcome of a
// source's series exists from its first count.
func (m *Metrics) Source(id, outcome string) {
	if m == nil {
		return
	}
	if _, seen := m.sourceLabels.Load(id); !seen {
		if m.sourceCount.Add(1) > maxSourceLabels {
			m.sourceCount.Add(-1)
			id = "other"
		} else if _, dup := m.sourceLabels.LoadOrStore(id, true); dup {
			m.sourceCount.Add(-1)
		} else {
			for _, o := range []string{SourceReceived, SourceApplied, SourceDuplicate, SourceIgnored, SourceUnauthorized} {
				m.sources.WithLabelValues(id, o)
			}
		}
	}
	m.sources.WithLabelValues(id, outcome).Inc()
}

// Limited records a request refused by the rate limit.
func (m *Metrics) Limited(route string) {
	if m != nil {
		m.limited.WithLabelValues(route).Inc()
	}
}

// Attempt records a delivery attempt's outcome when its duration is not known; AttemptDone records both.
func (m *Metrics) Attempt(outcome string) {
	if m != nil {
		m.attempts.WithLabelValues(outcome).Inc()
	}
}

// AttemptDone records a delivery attempt's outcome and how long its request took. An attempt that sent
// nothing (d is zero: a deferred one, say) is counted but not observed, so it does not pull the latencies down.
func (m *Metrics) AttemptDone(outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.attempts.WithLabelValues(outcome).Inc()
	if d > 0 {
		m.attemptDuration.WithLabelValues(outcome).Observe(d.Seconds())
	}
}

// CommitBatch records the number of appends the store committed together.
func (m *Metrics) CommitBatch(n int) {
	if m != nil {
		m.commitBatch.Observe(float64(n))
	}
}

// Poisoned records a message a consumer set aside as poison.
func (m *Metrics) Poisoned(handler string) {
	if m != nil {
		m.poisoned.WithLabelValues(handler).Inc()
	}
}
