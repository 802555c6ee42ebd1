package transport

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/projection"
)

// MaxWait bounds how long a read with minPosition waits for the projection.
const MaxWait = 5 * time.Second

// MaxPageSize is the largest page of users or events.
const MaxPageSize = 1000

// DefaultPageSize is the page size when limit is not given.
const DefaultPageSize = 100

// EventBody is a stored event as the API and `userhook events` show it.
type EventBody struct {
	Position   int64           `json:"position"`
	UserID     string          `json:"userId,omitempty"`
	Version    int64           `json:"version"`
	Type       string          `json:"type"`
	EventID    string          `json:"eventId"`
	OccurredAt time.Time       `json:"occurredAt"`
	RecordedAt time.Time       `json:"recordedAt"`
	Data       json.RawMessage `json:"data"`
}

// ToEventBody renders a stored event; withUser adds its user id (for feeds across users).
func ToEventBody(e eventstore.Event, withUser bool) EventBody {
	b := EventBody{Position: e.Position, Version: e.Version, Type: e.Type, EventID: e.ID,
		OccurredAt: e.OccurredAt, RecordedAt: e.RecordedAt, Data: e.Data}
	if withUser {
		b.UserID = e.StreamID
	}
	return b
}

const faultsKey = "userhook.query_faults"

// queryFaults is the list of query faults of a read; consistent starts it and each handler adds its own, so
// every fault is reported at once.
func queryFaults(c echo.Context) *userhook.FieldErrors {
	if fe, ok := c.Get(faultsKey).(*userhook.FieldErrors); ok {
		return fe
	}
	fe := &userhook.FieldErrors{}
	c.Set(faultsKey, fe)
	return fe
}

// maxQueryFaults bounds the faults one query string can report: a query of thousands of bad parameters gets
// the first few named, not an answer as large as itself.
const maxQueryFaults = 10

// queryName is a parameter name as a fault names it: cut, since it is the client's.
func queryName(name string) string { return truncate(name, 64) }

// strictQuery is middleware for every route: a query string that url.ParseQuery cannot parse is a 400 naming
// each malformed parameter. Echo's QueryParams would drop such a parameter silently, so "?status=%%" would
// list every user, and "?stauts=%%" would slip past the unknown-parameter check.
func strictQuery(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := checkQuery(c.Request().URL.RawQuery); err != nil {
			return err
		}
		return next(c)
	}
}

// checkQuery reports the pairs of a raw query that url.ParseQuery refuses: a percent-escape that is not % and
// two hex digits, or a semicolon (no longer a separator).
func checkQuery(raw string) error {
	var fe userhook.FieldErrors
	for raw != "" && len(fe) < maxQueryFaults {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key, keyErr := url.QueryUnescape(rawKey)
		if keyErr != nil {
			key = rawKey
		}
		_, valueErr := url.QueryUnescape(rawValue)
		switch {
		case keyErr != nil || valueErr != nil:
			fe.Add(queryName(key), "is not valid URL encoding: a % must be followed by two hexadecimal digits")
		case strings.Contains(pair, ";"):
			fe.Add(queryName(key), "contains a semicolon: separate query parameters with &, and encode a ; in a value as %3B")
		}
	}
	return fe.Err()
}

// unknownParams adds a fault for each query parameter not in allowed: at most maxQueryFaults of them, in a
// stable order, each name cut to a bounded length, so that a query of many long made-up names is not echoed.
func unknownParams(c echo.Context, allowed map[string]bool, fe *userhook.FieldErrors) {
	var unknown []string
	for name := range c.QueryParams() {
		if !allowed[name] {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	for _, name := range unknown[:min(len(unknown), maxQueryFaults)] {
		fe.Add(queryName(name), "unknown query parameter")
	}
}

// consistent is middleware for every read: it answers X-Projection-Position, refuses unknown query
// parameters and, when the caller asks for minPosition (query) or X-Min-Position (header), first waits up to
// MaxWait for the projection to reach it.
func (s *Server) consistent(allowed ...string) echo.MiddlewareFunc {
	allowedSet := map[string]bool{"minPosition": true}
	for _, a := range allowed {
		allowedSet[a] = true
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			tracker := s.deps.Tracker
			c.Response().Header().Set("X-Projection-Position", strconv.FormatInt(tracker.Position(), 10))
			fe := queryFaults(c)
			unknownParams(c, allowedSet, fe)
			raw := c.QueryParam("minPosition")
			if raw == "" {
				raw = c.Request().Header.Get("X-Min-Position")
			}
			want, err := strconv.ParseInt(raw, 10, 64)
			if raw != "" && (err != nil || want < 0) {
				fe.Add("minPosition", "must be a non-negative integer")
			}
			if raw != "" && len(*fe) == 0 {
				ctx, cancel := context.WithTimeout(c.Request().Context(), MaxWait)
				pos, err := tracker.WaitFor(ctx, want)
				cancel()
				c.Response().Header().Set("X-Projection-Position", strconv.FormatInt(pos, 10))
				if err != nil && c.Request().Context().Err() != nil {
					return c.Request().Context().Err() // the client left
				}
				if err != nil {
					c.Response().Header().Set("Retry-After", "1")
					return userhook.Errorf(userhook.ErrUnavailable, "the read model has applied position %d, not yet %d", pos, want)
				}
			}
			return next(c)
		}
	}
}

func userIDParam(c echo.Context) (string, error) {
	fe := queryFaults(c)
	id, err := url.PathUnescape(c.Param("id"))
	if err != nil {
		fe.Add("id", "is not a valid path segment")
	} else if msg := aggregate.CheckUserID(id); msg != "" {
		fe.Add("id", msg)
	}
	return id, fe.Err()
}

func (s *Server) getUser(c echo.Context) error {
	id, err := userIDParam(c)
	if err != nil {
		return err
	}
	u, err := s.deps.Reads.Get(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, projection.View(u))
}

func limitParam(c echo.Context, fe *userhook.FieldErrors) int {
	raw := c.QueryParam("limit")
	if raw == "" {
		return DefaultPageSize
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > MaxPageSize {
		fe.Add("limit", fmt.Sprintf("must be an integer from 1 to %d", MaxPageSize))
	}
	return n
}

func (s *Server) listUsers(c echo.Context) error {
	fe := queryFaults(c)
	f := projection.ListFilter{Email: c.QueryParam("email"), Status: c.QueryParam("status")}
	f.Limit = limitParam(c, fe)
	switch aggregate.Status(f.Status) {
	case "", aggregate.StatusActive, aggregate.StatusInactive, aggregate.StatusDeleted:
	default:
		fe.Add("status", "must be active, inactive or deleted")
	}
	if cur := c.QueryParam("cursor"); cur != "" {
		b, err := base64.RawURLEncoding.DecodeString(cur)
		if err != nil || len(b) == 0 {
			fe.Add("cursor", "is not a cursor this API returned")
		}
		f.After = string(b)
	}
	if err := fe.Err(); err != nil {
		return err
	}
	// One more row than asked tells whether another page follows.
	want := f.Limit
	f.Limit++
	users, err := s.deps.Reads.List(c.Request().Context(), f)
	if err != nil {
		return err
	}
	var next *string
	if len(users) > want {
		users = users[:want]
		cur := base64.RawURLEncoding.EncodeToString([]byte(users[want-1].ID))
		next = &cur
	}
	out := make([]projection.UserView, len(users))
	for i, u := range users {
		out[i] = projection.View(u)
	}
	return c.JSON(http.StatusOK, map[string]any{"users": out, "nextCursor": next})
}

func (s *Server) userEvents(c echo.Context) error {
	id, err := userIDParam(c)
	if err != nil {
		return err
	}
	events, err := s.deps.Events.Load(c.Request().Context(), id)
	if err != nil {
		return err
	}
	if len(events) == 0 {
		return userhook.Errorf(userhook.ErrNotFound, "no user %q", id)
	}
	out := make([]EventBody, len(events))
	for i, e := range events {
		out[i] = ToEventBody(e, false)
	}
	return c.JSON(http.StatusOK, map[string]any{"userId": id, "events": out})
}

func (s *Server) allEvents(c echo.Context) error {
	fe := queryFaults(c)
	limit := limitParam(c, fe)
	from := int64(1)
	if raw := c.QueryParam("from"); raw != "" {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 0 {
			fe.Add("from", "must be a non-negative integer")
		}
		from = max(n, 1)
	}
	if err := fe.Err(); err != nil {
		return err
	}
	events, err := s.deps.Events.ReadAll(c.Request().Context(), from-1, limit)
	if err != nil {
		return err
	}
	out := make([]EventBody, len(events))
	next := from
	for i, e := range events {
		out[i] = ToEventBody(e, true)
		next = e.Position + 1
	}
	return c.JSON(http.StatusOK, map[string]any{"events": out, "nextFrom": next})
}
