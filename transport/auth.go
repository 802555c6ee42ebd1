package transport

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/apikey"
)

// JWTConfig says which bearer tokens are accepted.
type JWTConfig struct {
	// Secret verifies HS256 tokens; HS256 is refused when it is empty.
	Secret []byte
	// JWKSURL serves the keys for RS256 and ES256 tokens; those are refused when it is empty.
	JWKSURL string
	// JWKSClient fetches the JWKS (http.DefaultClient when nil).
	JWKSClient *http.Client
	Issuer     string
	Audience   string
	// Leeway tolerates clock skew on exp and nbf.
	Leeway time.Duration
	// Now is the clock exp and nbf are checked against (time.Now when nil), on every use of a token, the
	// remembered ones too; tests move it instead of waiting for a token to expire.
	Now func() time.Time
}

// JWTVerifier checks bearer tokens. Only the configured algorithms are accepted, so "none" and
// HS256-signed-with-the-public-key confusion are refused before any key is looked at.
type JWTVerifier struct {
	parser *jwt.Parser
	secret []byte
	jwks   keyfunc.Keyfunc
	leeway time.Duration
	now    func() time.Time

	mu       sync.RWMutex
	verified map[[sha256.Size]byte]verifiedToken
}

// NewJWTVerifier builds a verifier; with a JWKS URL it fetches the key set in the background, refreshes it
// hourly and at once (rate limited) when a token names an unknown kid.
func NewJWTVerifier(ctx context.Context, cfg JWTConfig) (*JWTVerifier, error) {
	v := &JWTVerifier{secret: cfg.Secret, leeway: cfg.Leeway, now: cfg.Now, verified: map[[sha256.Size]byte]verifiedToken{}}
	if v.now == nil {
		v.now = time.Now
	}
	var algs []string
	if len(cfg.Secret) > 0 {
		algs = append(algs, "HS256")
	}
	if cfg.JWKSURL != "" {
		noErr := true
		kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
			Client:                    cfg.JWKSClient,
			HTTPTimeout:               10 * time.Second,
			NoErrorReturnFirstHTTPReq: &noErr,
			RefreshInterval:           time.Hour,
		})
		if err != nil {
			return nil, fmt.Errorf("jwks: %w", err)
		}
		v.jwks = kf
		algs = append(algs, "RS256", "ES256")
	}
	if len(algs) == 0 {
		return nil, errors.New("no JWT secret and no JWKS URL: nothing can verify a bearer token")
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(v.now),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

func (v *JWTVerifier) key(t *jwt.Token) (any, error) {
	switch t.Method.Alg() {
	case "HS256":
		if len(v.secret) > 0 {
			return v.secret, nil
		}
	case "RS256", "ES256":
		if v.jwks != nil {
			return v.jwks.Keyfunc(t)
		}
	}
	return nil, fmt.Errorf("algorithm %s is not accepted", t.Method.Alg())
}

// Claims are what a request's handlers learn from its bearer token.
type Claims struct {
	Subject string
}

// verifiedToken is a token whose signature and claims were checked; only its time window is checked again.
type verifiedToken struct {
	claims   Claims
	notAfter time.Time // exp plus leeway
	notFrom  time.Time // nbf minus leeway
}

// maxVerified bounds the cache of verified tokens.
const maxVerified = 10000

// Verify checks a raw token and returns its claims, or an error matching userhook.ErrUnauthorized whose
// message says what was wrong without echoing the token. Providers send the same token with many requests
// (an Action caches its token), so an HS256 token that verified is remembered, in memory, until it expires:
// later requests with it check only its time window. (The secret cannot change while the process runs.)
func (v *JWTVerifier) Verify(raw string) (Claims, error) {
	now := v.now()
	// Cached by the token's hash: a fixed 32 bytes a token, whatever its length.
	id := sha256.Sum256([]byte(raw))
	v.mu.RLock()
	t, hit := v.verified[id]
	v.mu.RUnlock()
	if hit {
		switch {
		case now.After(t.notAfter):
			return Claims{}, userhook.Errorf(userhook.ErrUnauthorized, "bearer token is expired")
		case now.Before(t.notFrom):
			return Claims{}, userhook.Errorf(userhook.ErrUnauthorized, "bearer token is not valid yet")
		}
		return t.claims, nil
	}
	claims := jwt.MapClaims{}
	tok, err := v.parser.ParseWithClaims(raw, claims, v.key)
	if err == nil && tok.Method.Alg() != "HS256" {
		// A JWKS key can leave the set at the next refresh; its tokens must stop working then, so they are
		// verified every time.
		sub, _ := claims.GetSubject()
		return Claims{Subject: sub}, nil
	}
	if err == nil {
		sub, _ := claims.GetSubject()
		t := verifiedToken{claims: Claims{Subject: sub}, notFrom: time.Time{}}
		if exp, _ := claims.GetExpirationTime(); exp != nil {
			t.notAfter = exp.Add(v.leeway)
		}
		if nbf, _ := claims.GetNotBefore(); nbf != nil {
			t.notFrom = nbf.Add(-v.leeway)
		}
		v.mu.Lock()
		if len(v.verified) >= maxVerified {
			for k, old := range v.verified {
				if now.After(old.notAfter) || len(v.verified) >= maxVerified {
					delete(v.verified, k)
				}
				if len(v.verified) < maxVerified/2 {
					break
				}
			}
		}
		v.verified[id] = t
		v.mu.Unlock()
		return t.claims, nil
	}
	reason := "invalid bearer token"
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		reason = "bearer token is expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		reason = "bearer token is not valid yet"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		reason = "bearer token lacks a required claim"
		for _, claim := range []string{"exp", "iss", "aud"} {
			if strings.Contains(err.Error(), claim+" claim is required") {
				reason += " (" + claim + ")"
			}
		}
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		reason = "bearer token has the wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		reason = "bearer token has the wrong audience"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		reason = "bearer token signature is invalid"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		reason = "bearer token cannot be verified (algorithm or key not accepted)"
	case errors.Is(err, jwt.ErrTokenMalformed):
		reason = "bearer token is malformed"
	}
	return Claims{}, &userhook.Error{Code: userhook.ErrUnauthorized, Message: reason}
}

// Authenticator checks the JWT and API key pair.
type Authenticator struct {
	JWT  *JWTVerifier
	Keys *apikey.Keyring
}

// Principal is who made a request.
type Principal struct {
	Subject string
	Key     apikey.Key
}

const principalKey = "userhook.principal"

// PrincipalOf returns the authenticated caller of a request, if any.
func PrincipalOf(c echo.Context) (Principal, bool) {
	p, ok := c.Get(principalKey).(Principal)
	return p, ok
}

// check verifies both credentials of a request.
func (a *Authenticator) check(c echo.Context) (Principal, error) {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	scheme, token, found := strings.Cut(h, " ")
	if h == "" || !found || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return Principal{}, userhook.Errorf(userhook.ErrUnauthorized, "missing Authorization: Bearer token")
	}
	claims, err := a.JWT.Verify(strings.TrimSpace(token))
	if err != nil {
		return Principal{}, err
	}
	key, err := a.Keys.Authenticate(c.Request().Context(), c.Request().Header.Get("X-API-Key"))
	if err != nil {
		return Principal{}, err
	}
	return Principal{Subject: claims.Subject, Key: key}, nil
}

// Require is middleware that lets a request through only with a valid JWT and API key pair whose key role
// allows need: 401 for missing or bad credentials, 403 for a role that does not reach.
func (a *Authenticator) Require(need apikey.Role) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p, err := a.check(c)
			if err != nil {
				return err
			}
			if !p.Key.Role.Allows(need) {
				return errForbidden(p.Key.Role, need)
			}
			c.Set(principalKey, p)
			return next(c)
		}
	}
}

func errForbidden(have, need apikey.Role) error {
	return userhook.Errorf(userhook.ErrForbidden, "an API key with role %s may not do what role %s does", have, need)
}
