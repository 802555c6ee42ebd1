package transport

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/ingest"
	"github.com/userhook/userhook/metrics"
	"github.com/userhook/userhook/source"
)

// sourceRoute is the route template of a provider's requests, its duplicate and rate-limit label.
const sourceRoute = "/sources/:id"

// sourceBody is a source as the API shows it; secrets are masked except in the answer that set them.
type sourceBody struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Provider    source.Provider `json:"provider"`
	IngestPath  string          `json:"ingestPath"`
	Secrets     []string        `json:"secrets"`
	Enabled     bool            `json:"enabled"`
	CreatedAt   time.Time       `json:"createdAt"`
	UpdatedAt   time.Time       `json:"updatedAt"`
	LastEventAt *time.Time      `json:"lastEventAt"`
}

func toSourceBody(src source.Source, showSecrets bool) sourceBody {
	secrets := make([]string, len(src.Secrets))
	for i, s := range src.Secrets {
		secrets[i] = s
		if !showSecrets {
			secrets[i] = maskSecret(s)
		}
	}
	b := sourceBody{ID: src.ID, Name: src.Name, Provider: src.Provider, IngestPath: "/sources/" + src.ID, Secrets: secrets,
		Enabled: src.Enabled, CreatedAt: src.CreatedAt, UpdatedAt: src.UpdatedAt}
	if !src.LastEventAt.IsZero() {
		t := src.LastEventAt
		b.LastEventAt = &t
	}
	return b
}

// maskSecret shows the last four characters of a long secret, so that an operator can tell two apart.
func maskSecret(s string) string {
	if len(s) < 16 {
		return "…"
	}
	return "…" + s[len(s)-4:]
}

// sourceRequest is the body of POST and PATCH /api/sources; a nil field was not sent.
type sourceRequest struct {
	Name     *string   `json:"name"`
	Provider *string   `json:"provider"`
	Enabled  *bool     `json:"enabled"`
	Secrets  *[]string `json:"secrets"`
}

// decodeSourceRequest reads the body field by field, so that unknown fields and fields of the wrong type are
// all reported at once; provider only when creating.
func decodeSourceRequest(body []byte, creating bool) (sourceRequest, userhook.FieldErrors, error) {
	var req sourceRequest
	targets := map[string]fieldTarget{
		"name": {&req.Name, "a string"}, "enabled": {&req.Enabled, "a boolean"}, "secrets": {&req.Secrets, "an array of strings"},
	}
	if creating {
		targets["provider"] = fieldTarget{&req.Provider, "a string"}
	}
	fe, err := decodeFields(body, targets)
	return req, fe, err
}

// fieldTarget is where decodeFields puts a member of a request body, and what it must be.
type fieldTarget struct {
	dst  any
	kind string
}

// decodeFields decodes a JSON object into the targets named by its members, reporting unknown members and
// members of the wrong type, all at once.
func decodeFields(body []byte, targets map[string]fieldTarget) (userhook.FieldErrors, error) {
	var fields map[string]json.RawMessage
	if err := decodeJSON(body, &fields); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	var fe userhook.FieldErrors
	for _, name := range names {
		t, ok := targets[name]
		if !ok {
			fe.Add(name, "unknown field")
			continue
		}
		if err := json.Unmarshal(fields[name], t.dst); err != nil {
			fe.Add(name, "must be "+t.kind)
		}
	}
	return fe, nil
}

// validateSource reports every fault of a source's settings at once, after the decoding faults.
func validateSource(src source.Source, decoding userhook.FieldErrors) error {
	fe := append(userhook.FieldErrors(nil), decoding...)
	bad := map[string]bool{}
	for _, f := range decoding {
		bad[f.Field] = true
	}
	if !bad["name"] && (src.Name == "" || len(src.Name) > 200) {
		fe.Add("name", "is required, at most 200 characters")
	}
	if !bad["provider"] {
		if _, err := source.ParseProvider(string(src.Provider)); err != nil {
			fe.Add("provider", "must be one of clerk, workos, okta, auth0-logs, keycloak, zitadel")
		}
	}
	if !bad["secrets"] {
		if len(src.Secrets) > source.MaxSecrets {
			fe.Add("secrets", "at most 2 (the current secret and, during a rotation, the next)")
		}
		for i, s := range src.Secrets {
			if strings.TrimSpace(s) == "" || len(s) > 1024 {
				fe.Add("secrets["+strconv.Itoa(i)+"]", "must be a non-empty string of at most 1024 characters")
			} else if src.Provider == source.Clerk && !strings.HasPrefix(s, "whsec_") {
				fe.Add("secrets["+strconv.Itoa(i)+"]", "a Clerk signing secret starts with whsec_")
			}
		}
		if len(src.Secrets) == 0 && src.Provider.IssuesSecret() {
			fe.Add("secrets", "required: "+string(src.Provider)+" issues the signing secret; paste it from its dashboard")
		}
	}
	return fe.Err()
}

func applySourceRequest(src *source.Source, req sourceRequest) {
	if req.Name != nil {
		src.Name = strings.TrimSpace(*req.Name)
	}
	if req.Provider != nil {
		src.Provider = source.Provider(strings.TrimSpace(*req.Provider))
	}
	if req.Enabled != nil {
		src.Enabled = *req.Enabled
	}
	if req.Secrets != nil {
		src.Secrets = *req.Secrets
	}
}

func (s *Server) createSource(c echo.Context) error {
	body, err := readJSONBody(c)
	if err != nil {
		return err
	}
	req, decoding, err := decodeSourceRequest(body, true)
	if err != nil {
		return err
	}
	if req.Provider == nil && !hasField(decoding, "provider") {
		decoding.Add("provider", "is required")
	}
	now := time.Now().UTC()
	src := source.Source{ID: source.NewID(), Enabled: true, CreatedAt: now, UpdatedAt: now}
	applySourceRequest(&src, req)
	if err := validateSource(src, decoding); err != nil {
		return err
	}
	if len(src.Secrets) == 0 {
		src.Secrets = []string{source.GenerateSecret()}
	}
	if err := s.deps.Sources.Create(c.Request().Context(), src); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]any{"data": toSourceBody(src, true)})
}

func hasField(fe userhook.FieldErrors, name string) bool {
	for _, f := range fe {
		if f.Field == name {
			return true
		}
	}
	return false
}

func (s *Server) listSources(c echo.Context) error {
	list, err := s.deps.Sources.List(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]sourceBody, len(list))
	for i, src := range list {
		out[i] = toSourceBody(src, false)
	}
	return c.JSON(http.StatusOK, map[string]any{"data": out})
}

func (s *Server) getSource(c echo.Context) error {
	src, err := s.deps.Sources.Get(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": toSourceBody(src, false)})
}

func (s *Server) patchSource(c echo.Context) error {
	body, err := readJSONBody(c)
	if err != nil {
		return err
	}
	req, decoding, err := decodeSourceRequest(body, false)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	src, err := s.deps.Sources.Get(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	applySourceRequest(&src, req)
	if err := validateSource(src, decoding); err != nil {
		return err
	}
	if len(src.Secrets) == 0 {
		src.Secrets = []string{source.GenerateSecret()}
	}
	src.UpdatedAt = time.Now().UTC()
	if err := s.deps.Sources.Update(ctx, src); err != nil {
		return err
	}
	s.sourceCache.forget(src.ID)
	return c.JSON(http.StatusOK, map[string]any{"data": toSourceBody(src, req.Secrets != nil)})
}

func (s *Server) deleteSource(c echo.Context) error {
	id := c.Param("id")
	if err := s.deps.Sources.Delete(c.Request().Context(), id); err != nil {
		return err
	}
	s.sourceCache.forget(id)
	return c.JSON(http.StatusOK, map[string]any{"data": map[string]any{"id": id, "deleted": true}})
}

// needSources answers 404 on the sources routes of a server built without them (Deps.Sources or Decoders
// nil).
func (s *Server) needSources(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.deps.Sources == nil || s.deps.Decoders == nil {
			return userhook.Errorf(userhook.ErrNotFound, "this server keeps no sources")
		}
		return next(c)
	}
}

// errUnknownSource answers an unknown or disabled source alike: a caller learns nothing about which ids exist.
var errUnknownSource = userhook.Errorf(userhook.ErrNotFound, "no enabled source has this id")

// provider finds the enabled source of the request and its decoder.
func (s *Server) provider(c echo.Context) (source.Source, source.Decoder, error) {
	id := c.Param("id")
	src, ok := s.sourceCache.get(id, time.Now())
	if !ok {
		var err error
		if src, err = s.deps.Sources.Get(c.Request().Context(), id); err != nil {
			if errors.Is(err, userhook.ErrNotFound) {
				return src, nil, errUnknownSource
			}
			return src, nil, err
		}
		s.sourceCache.put(src, time.Now())
	}
	dec := s.deps.Decoders[src.Provider]
	if !src.Enabled || dec == nil {
		return src, nil, errUnknownSource
	}
	return src, dec, nil
}

// authenticateSource checks the request the provider's way; a failure is counted and logged with its reason
// (never a secret) and answered 401.
func (s *Server) authenticateSource(c echo.Context, src source.Source, dec source.Decoder, r source.Request) error {
	if err := dec.Authenticate(r, src.Secrets); err != nil {
		s.deps.Metrics.Source(src.ID, metrics.SourceUnauthorized)
		reason := "authentication failed"
		var ue *userhook.Error
		if errors.As(err, &ue) && ue.Message != "" {
			reason = ue.Message
		}
		s.log.Warn("source request refused", "request_id", requestID(c), "source", src.ID, "provider", string(src.Provider), "reason", reason)
		if errors.Is(err, userhook.ErrUnauthorized) {
			return err
		}
		return unauthorized(reason)
	}
	return nil
}

// postSource receives a provider's own webhook request: authenticated the provider's way, decoded by its
// decoder, and applied event by event through the ingest service, like POST /events.
func (s *Server) postSource(c echo.Context) error {
	src, dec, err := s.provider(c)
	if err != nil {
		return err
	}
	body, err := readRawBody(c)
	if err != nil {
		return err
	}
	req := source.Request{Method: http.MethodPost, Header: c.Request().Header, Body: body, Now: time.Now()}
	if err := s.authenticateSource(c, src, dec, req); err != nil {
		return err
	}
	if ok, wait := s.ingestLimit.take("source:" + src.ID); !ok {
		s.deps.Metrics.Limited(sourceRoute)
		return refuse(c, wait)
	}
	if err := checkSourceBody(body); err != nil {
		return err
	}
	events, err := dec.Decode(req)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	results := make([]ingest.Result, len(events))
	var latest int64
	for i, e := range events {
		s.deps.Metrics.Source(src.ID, metrics.SourceReceived)
		e.Source = "sources/" + src.ID
		if e.Metadata == nil {
			e.Metadata = map[string]string{}
		}
		e.Metadata["request_id"], e.Metadata["caller"], e.Metadata["source"] = requestID(c), "source:"+src.ID, src.ID
		r, err := s.ingest.Apply(ctx, sourceRoute, e)
		if err != nil {
			return err
		}
		switch r.Status {
		case ingest.StatusApplied:
			s.deps.Metrics.Source(src.ID, metrics.SourceApplied)
		case ingest.StatusDuplicate:
			s.deps.Metrics.Source(src.ID, metrics.SourceDuplicate)
		default:
			s.deps.Metrics.Source(src.ID, metrics.SourceIgnored)
		}
		results[i] = r
		latest = max(latest, r.UserPosition)
	}
	s.touchSource(c, src.ID)
	if latest > 0 {
		c.Response().Header().Set("X-Event-Position", strconv.FormatInt(latest, 10))
	}
	return c.JSON(http.StatusOK, postEventsResponse{Success: true, Results: results})
}

// getSource answers a provider's verification GET (Okta's challenge); other providers send none.
func (s *Server) challengeSource(c echo.Context) error {
	src, dec, err := s.provider(c)
	if err != nil {
		return err
	}
	ch, ok := dec.(source.Challenger)
	if !ok {
		return userhook.Errorf(userhook.ErrNotFound, "this source's provider sends no verification request; POST its events here")
	}
	req := source.Request{Method: http.MethodGet, Header: c.Request().Header, Now: time.Now()}
	if err := s.authenticateSource(c, src, dec, req); err != nil {
		return err
	}
	answer, err := ch.Challenge(req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, answer)
}

// touchSource records the source's last event time, at most once a second per source and instance.
func (s *Server) touchSource(c echo.Context, id string) {
	now := time.Now().UTC()
	if !s.sourceCache.touchDue(id, now) {
		return
	}
	if err := s.deps.Sources.Touch(c.Request().Context(), id, now); err != nil {
		s.log.Warn("recording a source's last event time failed", "request_id", requestID(c), "source", id, "error", err.Error())
	}
}

// checkSourceBody applies checkJSON to a provider's body: to the whole when it is one JSON value, else to each
// line that is one (Auth0's JSON lines). What is not JSON at all is left to the decoder, which says so.
func checkSourceBody(body []byte) error {
	if json.Valid(body) || !utf8.Valid(body) {
		return checkJSON(body)
	}
	for n, line := range bytes.Split(body, []byte("\n")) {
		if json.Valid(line) {
			if err := checkJSON(line); err != nil {
				var fe userhook.FieldErrors
				if errors.As(err, &fe) {
					for i, f := range fe {
						prefix := "[" + strconv.Itoa(n) + "]"
						switch {
						case f.Field == "" || strings.HasPrefix(f.Field, "["):
							fe[i].Field = prefix + f.Field
						default:
							fe[i].Field = prefix + "." + f.Field
						}
					}
					return fe
				}
				return err
			}
		}
	}
	return nil
}

// readRawBody reads a body of at most MaxBodyBytes whatever its Content-Type: providers label JSON, JSON
// lines and arrays differently, and each decoder judges its own body.
func readRawBody(c echo.Context) ([]byte, error) {
	req := c.Request()
	if req.ContentLength > MaxBodyBytes {
		return nil, userhook.ErrTooLarge
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, MaxBodyBytes+1))
	if err != nil {
		return nil, &userhook.Error{Code: userhook.ErrInvalid, Message: "the body could not be read", Err: err}
	}
	if len(body) > MaxBodyBytes {
		return nil, userhook.ErrTooLarge
	}
	return body, nil
}

// sourceCache keeps the sources providers posted to for a second, so that a burst of deliveries reads the
// store once; an admin change on this instance is seen at once, on another within the second. It holds
// only sources that exist, at most maxCachedSources.
type sourceCache struct {
	mu      sync.Mutex
	entries map[string]cachedSource
}

type cachedSource struct {
	src     source.Source
	at      time.Time
	touched time.Time
}

const (
	sourceCacheTTL   = time.Second
	maxCachedSources = 1000
)

func (sc *sourceCache) get(id string, now time.Time) (source.Source, bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	e, ok := sc.entries[id]
	if !ok || now.Sub(e.at) > sourceCacheTTL {
		return source.Source{}, false
	}
	return e.src, true
}

func (sc *sourceCache) put(src source.Source, now time.Time) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.entries == nil || len(sc.entries) >= maxCachedSources {
		sc.entries = map[string]cachedSource{}
	}
	e := sc.entries[src.ID]
	sc.entries[src.ID] = cachedSource{src: src, at: now, touched: e.touched}
}

func (sc *sourceCache) forget(id string) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	delete(sc.entries, id)
}

// touchDue says whether the source's last event time was last recorded a second or more ago, and notes now.
func (sc *sourceCache) touchDue(id string, now time.Time) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	e, ok := sc.entries[id]
	if !ok || now.Sub(e.touched) < time.Second {
		return !ok
	}
	e.touched = now
	sc.entries[id] = e
	return true
}
