// Package transport is userhook's HTTP surface on Echo: authentication, decoding, thin handlers that build a
// command and call the service, and one error handler that renders every error in API.md's shape.
package transport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/apikey"
	"github.com/userhook/userhook/delivery"
	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/ingest"
	"github.com/userhook/userhook/metrics"
	"github.com/userhook/userhook/projection"
	"github.com/userhook/userhook/source"
)

// MaxBodyBytes is the largest request body accepted; a larger one is answered 413.
const MaxBodyBytes = 1 << 20

// Deps are what the server needs.
type Deps struct {
	// Users runs the commands; with Receipts and Metrics it makes the ingest service that every write goes
	// through.
	Users *aggregate.Service
	Auth  *Authenticator
	// Reads is the users read model, Tracker its applied position, Events the store for the event feeds.
	Reads   projection.ReadModel
	Tracker *projection.Tracker
	Events  eventstore.Store
	Logger  *slog.Logger
	// Inbound verifies webhook signatures on POST /events (nil: none configured).
	Inbound *WebhookVerifier
	// Receipts remembers provider events that raised nothing, so their copies are duplicates.
	Receipts eventstore.Receipts
	// Webhooks keeps the outbound subscriptions and their deliveries; Sender sends a manual retry.
	Webhooks delivery.Store
	Sender   *delivery.Sender
	// WebhookGuard says which webhook URLs are accepted: https:// unless it allows private addresses, and no
	// host that is a literal address deliveries may not reach (the guard the sender's client dials with).
	WebhookGuard delivery.Guard
	// Ready reports what /readyz shows (nil: always ready).
	Ready func(ctx context.Context) Readiness
	// IngestLimit and ReadLimit, when set, limit each API key (and each signing secret on POST /events) on the
	// ingest routes and on every other authenticated route.
	IngestLimit *RateLimit
	ReadLimit   *RateLimit
	// Metrics records what the server does; GET /metrics serves it (an empty registry when nil).
	Metrics *metrics.Metrics
	// StoreTimeout, when positive, bounds the store calls of every request; past it the request answers 503
	// with Retry-After.
	StoreTimeout time.Duration
	// Sources keeps the identity providers' own webhooks, and Decoders reads each provider's requests; with
	// either nil the /api/sources and /sources routes are not served.
	Sources  source.Store
	Decoders map[source.Provider]source.Decoder
	// Now is the clock the rate limits' buckets fill by (time.Now when nil); tests move it instead of waiting
	// for a bucket to refill.
	Now func() time.Time
}

// Server is the HTTP API.
type Server struct {
	deps Deps
	// ingest applies what POST /users and POST /events decode; it is built here from Users, Receipts and
	// Metrics, which is all it needs, so that the wiring stays one list of dependencies.
	ingest      *ingest.Service
	echo        *echo.Echo
	log         *slog.Logger
	ingestLimit *limiter
	readLimit   *limiter
	// routes are the route templates registered, the only values of the route label besides "unmatched".
	routes map[string]bool
	// sourceCache holds the sources providers post to, briefly.
	sourceCache sourceCache
}

// NewServer builds the routes.
func NewServer(d Deps) *Server {
	if d.Logger == nil {
		d.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	if d.Metrics == nil {
		d.Metrics = metrics.New(metrics.Sources{})
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Logger.SetOutput(io.Discard)
	s := &Server{deps: d, echo: e, log: d.Logger, ingest: ingest.NewService(d.Users, d.Receipts, d.Metrics),
		ingestLimit: newLimiter(d.IngestLimit, d.Now), readLimit: newLimiter(d.ReadLimit, d.Now), routes: map[string]bool{}}
	e.HTTPErrorHandler = errorHandler(d.Logger)
	e.Use(s.requestID, s.accessLog, s.recover, s.headerLimit, strictQuery)
	if d.StoreTimeout > 0 {
		e.Use(s.deadline(d.StoreTimeout))
	}

	e.GET("/healthz", s.healthz)
	e.HEAD("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.HEAD("/readyz", s.readyz)
	e.GET("/openapi.yaml", s.openapi)
	e.GET("/metrics", echo.WrapHandler(d.Metrics.Handler()))

	e.POST("/users", s.postUsers, d.Auth.Require(apikey.RoleIngest), s.limited(s.ingestLimit))
	e.POST("/events", s.postEvents)

	readAuth := d.Auth.Require(apikey.RoleRead)
	read := func(next echo.HandlerFunc) echo.HandlerFunc { return readAuth(s.limited(s.readLimit)(next)) }
	e.GET("/users", s.listUsers, read, s.consistent("email", "status", "limit", "cursor"))
	e.GET("/users/:id", s.getUser, read, s.consistent())
	e.GET("/users/:id/events", s.userEvents, read, s.consistent())
	e.GET("/api/events", s.allEvents, read, s.consistent("from", "limit"))

	adminAuth := d.Auth.Require(apikey.RoleAdmin)
	admin := func(next echo.HandlerFunc) echo.HandlerFunc { return adminAuth(s.limited(s.readLimit)(next)) }
	e.POST("/api/webhooks", s.createWebhook, admin)
	e.GET("/api/webhooks", s.listWebhooks, admin)
	e.GET("/api/webhooks/:id", s.getWebhook, admin)
	e.PATCH("/api/webhooks/:id", s.patchWebhook, admin)
	e.DELETE("/api/webhooks/:id", s.deleteWebhook, admin)
	e.GET("/api/webhooks/:id/deliveries", s.listDeliveries, admin)
	e.POST("/api/webhooks/deliveries/:deliveryId/retry", s.retryDelivery, admin)
	e.POST("/api/sources", s.createSource, admin, s.needSources)
	e.GET("/api/sources", s.listSources, admin, s.needSources)
	e.GET("/api/sources/:id", s.getSource, admin, s.needSources)
	e.PATCH("/api/sources/:id", s.patchSource, admin, s.needSources)
	e.DELETE("/api/sources/:id", s.deleteSource, admin, s.needSources)
	// A provider authenticates its own way: no API key, so the route's limit is per source, in the handler.
	e.POST(sourceRoute, s.postSource, s.needSources)
	e.GET(sourceRoute, s.challengeSource, s.needSources)

	// The route templates are the only route labels and log values; every rate-limited route (all but the
	// unauthenticated ones) and every reason starts at 0.
	var limited []string
	for _, r := range e.Routes() {
		if !s.routes[r.Path] && !unauthenticated[r.Path] {
			limited = append(limited, r.Path)
		}
		s.routes[r.Path] = true
	}
	d.Metrics.Declare(metrics.Known{
		DuplicateRoutes: []string{"/events", sourceRoute},
		LimitedRoutes:   limited,
		IgnoreReasons:   ingest.Reasons(),
	})
	return s
}

// unauthenticated are the routes that need no credentials, so no rate limit applies to them.
var unauthenticated = map[string]bool{"/healthz": true, "/readyz": true, "/openapi.yaml": true, "/metrics": true}

// Handler is the server's http.Handler.
func (s *Server) Handler() http.Handler { return s.echo }

// Echo exposes the router, for tests that list the routes.
func (s *Server) Echo() *echo.Echo { return s.echo }

const requestIDKey = "userhook.request_id"

func requestID(c echo.Context) string {
	if id, ok := c.Get(requestIDKey).(string); ok {
		return id
	}
	return ""
}

// requestIDs makes request ids: a random prefix drawn once per process and a counter, so ids are unique
// across restarts and instances and cost no system call per request. They correlate; they are not secrets.
var requestIDs = func() struct {
	prefix string
	n      *atomic.Uint64
} {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return struct {
		prefix string
		n      *atomic.Uint64
	}{"req_" + hex.EncodeToString(b), new(atomic.Uint64)}
}()

func newRequestID() string {
	var buf [32]byte
	out := append(buf[:0], requestIDs.prefix...)
	out = strconv.AppendUint(append(out, '_'), requestIDs.n.Add(1), 36)
	return string(out)
}

// requestID gives every request an id, in X-Request-Id and in every error body and log line. A caller's own
// X-Request-Id is not reused: it would let a caller write arbitrary text into the logs.
func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := newRequestID()
		c.Set(requestIDKey, id)
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

// accessLog writes one line per request and counts it. It logs no header, no query and no body, so no
// credential can reach the log; the method is logged truncated and counted as Method's closed set, and the route
// is a template, so neither the log lines nor the metrics grow with what a client makes up.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		route := c.Path()
		if !s.routes[route] || errors.Is(err, echo.ErrNotFound) {
			// The router's own 404: no route matched (Echo may still name the nearest node of its tree).
			route = "unmatched"
		}
		elapsed := time.Since(start)
		s.deps.Metrics.Request(route, c.Request().Method, c.Response().Status, elapsed)
		s.log.LogAttrs(c.Request().Context(), slog.LevelInfo, "request",
			slog.String("request_id", requestID(c)),
			slog.String("method", logMethod(c.Request().Method)),
			slog.String("route", route),
			slog.Int("status", c.Response().Status),
			slog.Int64("bytes", c.Response().Size),
			slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		)
		return nil
	}
}

// logMethod is a method as logs show it: a standard one as it is, any other cut to 32 bytes (a method is a
// token of ASCII characters, so the cut splits no character).
func logMethod(method string) string { return truncate(method, 32) }

// MaxHeaderBytes is the documented limit of a request's line and headers together; past it the answer is 431
// in the documented error shape.
const MaxHeaderBytes = 64 << 10

// ServerMaxHeaderBytes is the http.Server's own limit, well above MaxHeaderBytes so that requests between the
// two reach headerLimit and get a JSON answer; past it Go answers with plain text before any handler runs.
const ServerMaxHeaderBytes = 1 << 20

// headerLimit answers 431 to a request whose line and headers are larger than MaxHeaderBytes, counted as they
// were sent (name, value, separators), so that Go's plain-text 431 is left for the very largest ones.
func (s *Server) headerLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + len("  \r\n") + len("Host: \r\n") + len(r.Host)
		for name, values := range r.Header {
			for _, v := range values {
				n += len(name) + len(v) + len(": \r\n")
			}
		}
		if n > MaxHeaderBytes {
			return echo.NewHTTPError(http.StatusRequestHeaderFieldsTooLarge,
				fmt.Sprintf("The request line and headers are %d bytes; at most 64 KiB (%d bytes) are accepted", n, MaxHeaderBytes))
		}
		return next(c)
	}
}

func (s *Server) recover(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return next(c)
	}
}

// mediaType is the media type of mime.ParseMediaType, without its work (and its map of parameters) for the
// bare types of every request of the ingest routes.
func mediaType(contentType string) (string, error) {
	switch contentType {
	case "application/json", MediaCloudEvent, MediaCloudEventBatch:
		return contentType, nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return mt, err
}

// readJSONBody reads a body of at most MaxBodyBytes whose Content-Type, when given, is JSON.
func readJSONBody(c echo.Context, accepted ...string) ([]byte, error) {
	req := c.Request()
	if ct := req.Header.Get(echo.HeaderContentType); ct != "" {
		mt, err := mediaType(ct)
		ok := err == nil && mt == "application/json"
		for _, a := range accepted {
			ok = ok || err == nil && mt == a
		}
		if !ok {
			return nil, &unsupportedMedia{accepted: append([]string{"application/json"}, accepted...)}
		}
	}
	if req.ContentLength > MaxBodyBytes {
		return nil, userhook.ErrTooLarge
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, MaxBodyBytes+1))
	if err != nil {
		// The reader's error (a reset connection, a malformed chunk) stays the cause, for errors.Is: the client
		// is told only that its body did not arrive whole.
		return nil, &userhook.Error{Code: userhook.ErrInvalid, Message: "the body could not be read", Err: err}
	}
	if len(body) > MaxBodyBytes {
		return nil, userhook.ErrTooLarge
	}
	return body, nil
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}
