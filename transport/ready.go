package transport

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// CheckResult is one readiness condition and, when it fails, why, in words of our own (it is shown to anyone
// who asks /readyz, so it never carries an error's raw text).
type CheckResult struct {
	Name   string
	Failed string
}

// Readiness is what /readyz reports: every check, whether this instance runs the relay ("leading" or
// "standby"), how far the store, the relay and each consumer are, and each consumer's lag in events.
type Readiness struct {
	Checks    []CheckResult
	Relay     string
	Positions map[string]int64
	Lag       map[string]int64
}

// readyTimeout bounds the checks of one /readyz.
const readyTimeout = 2 * time.Second

func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), readyTimeout)
	defer cancel()
	var r Readiness
	if s.deps.Ready != nil {
		r = s.deps.Ready(ctx)
	}
	status := http.StatusOK
	checks := map[string]string{}
	reasons := map[string]string{}
	for _, ch := range r.Checks {
		if ch.Failed == "" {
			checks[ch.Name] = "ok"
			continue
		}
		checks[ch.Name] = "failing"
		reasons[ch.Name] = ch.Failed
		status = http.StatusServiceUnavailable
	}
	body := map[string]any{"status": "ready", "checks": checks}
	if status != http.StatusOK {
		body["status"] = "not ready"
		body["reasons"] = reasons
	}
	if r.Relay != "" {
		body["relay"] = r.Relay
	}
	if r.Positions != nil {
		body["positions"] = r.Positions
	}
	if r.Lag != nil {
		body["lag"] = r.Lag
	}
	return c.JSON(status, body)
}
