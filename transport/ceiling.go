package transport

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"
)

// CeilingStore stores what a ceiling server of level 2 or 3 stores for one POST /users (the user's event, and
// at level 3 the user's read-model row too), durably, before the 200; it returns the event's position, answered
// as X-Event-Position.
type CeilingStore func(ctx context.Context, userID, email, requestID string) (int64, error)

// Ceiling returns the comparison servers of the load benchmark, on the same Echo as the real server, so
// userhook's figures can be read as shares of what the framework allows on the machine:
//
//   - level 0 (C0) reads the body and answers 200;
//   - level 1 (C1) also verifies an HS256 bearer token with the pinned algorithm, checks X-API-Key against a
//     stored SHA-256 in constant time, and decodes the POST /users body, but stores nothing;
//   - levels 2 and 3 (C2, C3, C2-PG) are C1 that then stores with store (nil below level 2) what that level
//     stores, and answers the user's id and email with the event's position; without a store they are C1.
func Ceiling(level int, secret []byte, apiKey string, store CeilingStore) http.Handler {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	keyHash := sha256.Sum256([]byte(apiKey))
	keyHex := hex.EncodeToString(keyHash[:])
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	ok := []byte(`{"success":true,"userId":"auth0|abc","email":"user@example.com"}`)
	var reqN atomic.Uint64
	e.POST("/*", func(c echo.Context) error {
		body, err := io.ReadAll(io.LimitReader(c.Request().Body, MaxBodyBytes+1))
		if err != nil {
			return c.NoContent(http.StatusBadRequest)
		}
		if level >= 1 {
			raw := c.Request().Header.Get("Authorization")
			if len(raw) < 8 {
				return c.NoContent(http.StatusUnauthorized)
			}
			if _, err := parser.ParseWithClaims(raw[7:], jwt.MapClaims{}, func(*jwt.Token) (any, error) { return secret, nil }); err != nil {
				return c.NoContent(http.StatusUnauthorized)
			}
			sum := sha256.Sum256([]byte(c.Request().Header.Get("X-API-Key")))
			if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(keyHex)) != 1 {
				return c.NoContent(http.StatusUnauthorized)
			}
			in, err := DecodePostUsers(body)
			if err != nil {
				return c.NoContent(http.StatusBadRequest)
			}
			if level >= 2 && store != nil {
				reqID := requestIDs.prefix + "_" + strconv.FormatUint(reqN.Add(1), 36)
				c.Response().Header().Set(echo.HeaderXRequestID, reqID)
				pos, err := store(c.Request().Context(), in.UserID, *in.Attributes.Email, reqID)
				if err != nil {
					return c.NoContent(http.StatusServiceUnavailable)
				}
				c.Response().Header().Set("X-Event-Position", strconv.FormatInt(pos, 10))
				return c.JSON(http.StatusOK, map[string]any{"success": true, "userId": in.UserID, "email": *in.Attributes.Email})
			}
		}
		return c.JSONBlob(http.StatusOK, ok)
	})
	return e
}
