package transport

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/userhook/userhook/apikey"
	"github.com/userhook/userhook/ingest"
)

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
	if ok, wait := s.ingestLimit.take(caller); !ok {
		s.deps.Metrics.Limited("/events")
		return refuse(c, wait)
	}
	events, err := DecodeCloudEvents(c.Request().Header, body)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	results := make([]ingest.Result, len(events))
	var latest int64
	for i, e := range events {
		e.Metadata["request_id"], e.Metadata["caller"] = requestID(c), caller
		r, err := s.ingest.Apply(ctx, "/events", e)
		if err != nil {
			return err
		}
		results[i] = r
		latest = max(latest, r.UserPosition)
	}
	if latest > 0 {
		c.Response().Header().Set("X-Event-Position", strconv.FormatInt(latest, 10))
	}
	return c.JSON(http.StatusOK, postEventsResponse{Success: true, Results: results})
}

// postEventsResponse is the answer of POST /events; its members in the order a map of them was written in,
// as it once was.
type postEventsResponse struct {
	Results []ingest.Result `json:"results"`
	Success bool            `json:"success"`
}
