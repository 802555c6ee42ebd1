package transport

import (
	"context"
	"errors"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/userhook/userhook"
)

// deadline bounds every store call a request makes: its context ends after d (the manual retry of a
// delivery, which also waits for the receiver, gets the delivery timeout on top). A stalled database then
// fails the request within d, answered 503 with Retry-After, instead of holding it until the client gives
// up. The open routes (health, metrics, the OpenAPI document) are not bounded.
func (s *Server) deadline(d time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			limit := d
			switch c.Path() {
			case "/healthz", "/readyz", "/metrics", "/openapi.yaml":
				return next(c)
			case "/api/webhooks/deliveries/:deliveryId/retry":
				limit = 2*d + retryAllowance
			}
			ctx, cancel := context.WithTimeout(c.Request().Context(), limit)
			defer cancel()
			c.SetRequest(c.Request().WithContext(ctx))
			err := next(c)
			// Past the deadline any failure is the database's slowness, whatever error it surfaced as (a
			// closed connection, a cancelled statement); a store call's own deadline counts too.
			if err != nil && (errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)) {
				c.Response().Header().Set("Retry-After", "5")
				return userhook.Errorf(userhook.ErrUnavailable, "the database did not answer within %s; retry later", limit)
			}
			return err
		}
	}
}

// retryAllowance is what a manual retry may spend waiting for the receiver (the delivery timeout).
const retryAllowance = 10 * time.Second
