package transport

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/userhook/userhook/aggregate"
	"github.com/userhook/userhook/apikey"
	"github.com/userhook/userhook/eventstore"
)

// The statuses and reasons of a result of POST /events.
const (
	StatusApplied   = "applied"
	StatusDuplicate = "duplicate"
	StatusIgnored   = "ignored"

	ReasonUnsupportedType = "unsupported_type"
	ReasonStale           = "stale"
	ReasonNoChange        = "no_change"
	ReasonDeleted         = "deleted"
)

// EventResult is what became of one event of POST /events.
type EventResult struct {
	EventID  string `json:"eventId"`
	UserID   string `json:"userId,omitempty"`
	Status   string `json:"status"`
	Reason   string `json:"reason,omitempty"`
	Position int64  `json:"position,omitempty"`
}

// authenticateEvents lets POST /events through with a valid webhook signature, or else with the JWT and API
// key pair of an ingest (or admin) key. Without either it fails closed with 401.
func (s *Server) authenticateEvents(c echo.Context, body []byte) (string, error) {
	h := c.Request().Header
	sigErr := ErrNoSignature
	if s.deps.Inbound != nil {
		scheme, secret, err := s.deps.Inbound.Signer(h, body)
		if err == nil {
			return "signature:" + string(scheme) + ":" + strconv.Itoa(secret), nil
		}
		sigErr = err
	}
	if h.Get("Authorization") == "" && h.Get("X-API-Key") == "" {
		if errors.Is(sigErr, ErrNoSignature) {
			return "", unauthorized("send a webhook signature, or Authorization: Bearer and X-API-Key")
		}
		return "", sigErr
	}
	p, err := s.deps.Auth.check(c)
	if err != nil {
		return "", err
	}
	if !p.Key.Role.Allows(apikey.RoleIngest) {
		return "", errForbidden(p.Key.Role, apikey.RoleIngest)
	}
	return "apikey:" + p.Key.ID, nil
}

func (s *Server) postEvents(c echo.Context) error {
	body, err := readJSONBody(c, MediaCloudEvent, MediaCloudEventBatch)
	if err != nil {
		return err
	}
	caller, err := s.authenticateEvents(c, body)
	if err != nil {
		return err
	}
	if ok, wait := s.ingestLimit.allow(caller, time.Now()); !ok {
		s.deps.Metrics.Limited("/events")
		return refuse(c, wait)
	}
	events, err := DecodeCloudEvents(c.Request().Header, body)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	results := make([]EventResult, len(events))
	var latest int64
	for i, in := range events {
		r, pos, err := s.ingest(ctx, in, caller, requestID(c))
		if err != nil {
			return err
		}
		switch r.Status {
		case StatusDuplicate:
			s.deps.Metrics.Duplicate("/events")
		case StatusIgnored:
			s.deps.Metrics.Ignored(r.Reason)
		}
		results[i] = r
		latest = max(latest, pos)
	}
	if latest > 0 {
		c.Response().Header().Set("X-Event-Position", strconv.FormatInt(latest, 10))
	}
	return c.JSON(http.StatusOK, map[string]any{"success": true, "results": results})
}

// ingest applies one incoming event and says what became of it, with the user's latest position.
func (s *Server) ingest(ctx context.Context, in Incoming, caller, reqID string) (EventResult, int64, error) {
	r := EventResult{EventID: in.EnvelopeID, UserID: in.UserID}
	key := in.Key()
	seen, err := s.deps.Receipts.Received(ctx, key)
	if err != nil {
		return r, 0, err
	}
	if seen {
		r.Status = StatusDuplicate
		return r, 0, nil
	}
	if !in.Supported() {
		return s.ignore(ctx, r, key, ReasonUnsupportedType, 0)
	}
	meta := in.Metadata()
	meta["request_id"], meta["caller"] = reqID, caller
	res, err := s.deps.Users.Execute(ctx, in.Command(), aggregate.Options{EventID: key, Metadata: meta})
	switch {
	case errors.Is(err, eventstore.ErrDuplicate):
		r.Status = StatusDuplicate
		return r, res.Position(), nil
	case errors.Is(err, aggregate.ErrStale):
		return s.ignore(ctx, r, key, ReasonStale, res.Position())
	case errors.Is(err, aggregate.ErrUserDeleted):
		return s.ignore(ctx, r, key, ReasonDeleted, res.Position())
	case err != nil:
		return r, 0, err
	case len(res.Events) == 0:
		return s.ignore(ctx, r, key, ReasonNoChange, res.Position())
	}
	for _, e := range res.Events {
		s.deps.Metrics.Appended(e.Type)
	}
	r.Status, r.Position = StatusApplied, res.Position()
	return r, res.Position(), nil
}

// ignore records that an event raised nothing, so its next copy is a duplicate; a copy that recorded it
// first makes this one the duplicate.
func (s *Server) ignore(ctx context.Context, r EventResult, key, reason string, pos int64) (EventResult, int64, error) {
	err := s.deps.Receipts.Receive(ctx, key, StatusIgnored+":"+reason)
	if errors.Is(err, eventstore.ErrDuplicate) {
		r.Status = StatusDuplicate
		return r, pos, nil
	}
	if err != nil {
		return r, 0, err
	}
	r.Status, r.Reason = StatusIgnored, reason
	return r, pos, nil
}
