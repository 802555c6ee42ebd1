package transport

import (
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TokenRequest describes a development token.
type TokenRequest struct {
	Secret   []byte
	Subject  string
	TTL      time.Duration
	Issuer   string
	Audience string
	Now      time.Time
}

// SignToken returns an HS256 JWT for development and tests, with sub, iat, nbf, exp and, when set, iss and aud.
func SignToken(r TokenRequest) (string, error) {
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	claims := jwt.RegisteredClaims{
		Subject:   r.Subject,
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(r.TTL)),
		Issuer:    r.Issuer,
	}
	if r.Audience != "" {
		claims.Audience = jwt.ClaimStrings{r.Audience}
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(r.Secret)
}
