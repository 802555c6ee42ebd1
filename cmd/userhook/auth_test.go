package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/userhook/userhook/apikey"
)

// The issuer and audience of servers that check them.
const (
	testIssuer   = "https://issuer.userhook.test/"
	testAudience = "userhook-api"
)

// authSeedBody is the seed 000 body every authentication row posts.
const authSeedBody = `{"detail":{"data":{"user_name":"auth@example.com","user_id":"auth0|auth-row"}}}`

// publicJWK is one public key of a JSON Web Key Set, as Auth0 serves it.
type publicJWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
}

func rawURL64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// rsaJWK is the JWK of an RSA public key.
func rsaJWK(kid string, pub *rsa.PublicKey) publicJWK {
	return publicJWK{Kty: "RSA", Kid: kid, Use: "sig", Alg: "RS256",
		N: rawURL64(pub.N.Bytes()), E: rawURL64(big.NewInt(int64(pub.E)).Bytes())}
}

// ecJWK is the JWK of a P-256 public key; x and y are the fixed-size coordinates of the uncompressed point.
func ecJWK(t *testing.T, kid string, pub *ecdsa.PublicKey) publicJWK {
	t.Helper()
	ecdhPub, err := pub.ECDH()
	require.NoError(t, err)
	point := ecdhPub.Bytes() // 0x04 || X || Y
	require.Len(t, point, 65)
	return publicJWK{Kty: "EC", Kid: kid, Use: "sig", Alg: "ES256", Crv: "P-256",
		X: rawURL64(point[1:33]), Y: rawURL64(point[33:65])}
}

// jwkSetJSON is a key set document.
func jwkSetJSON(t *testing.T, keys ...publicJWK) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	require.NoError(t, err)
	return b
}

// fakeJWKS serves a key set that a test can replace, and counts the fetches.
type fakeJWKS struct {
	*httptest.Server
	body    atomic.Pointer[[]byte]
	fetches atomic.Int64
}

func newFakeJWKS(t *testing.T, body []byte) *fakeJWKS {
	t.Helper()
	s := &fakeJWKS{}
	s.set(body)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *fakeJWKS) set(body []byte) { s.body.Store(&body) }

// Keys are generated once per test binary: RSA key generation is the slow part of these tests.
var (
	testRSAKeys = sync.OnceValues(func() ([]*rsa.PrivateKey, error) {
		keys := make([]*rsa.PrivateKey, 4)
		for i := range keys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				return nil, err
			}
			keys[i] = k
		}
		return keys, nil
	})
	testECKey = sync.OnceValues(func() (*ecdsa.PrivateKey, error) {
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	})
)

// testRSAKey returns the i-th shared test RSA key (0 to 3).
func testRSAKey(t *testing.T, i int) *rsa.PrivateKey {
	t.Helper()
	keys, err := testRSAKeys()
	require.NoError(t, err)
	return keys[i]
}

// jwtClaims are valid claims for the next hour, with extra claims set or, when nil, removed. A time.Duration
// in extra is a time that far from now, the moment the claims are made: a parallel subtest may start long
// after its table was built, and a token "expired 5 s ago" must be that old when it is sent.
func jwtClaims(extra map[string]any) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"sub": "auth-test", "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range extra {
		switch v := v.(type) {
		case nil:
			delete(c, k)
		case time.Duration:
			c[k] = now.Add(v).Unix()
		default:
			c[k] = v
		}
	}
	return c
}

// signTestJWT signs claims with method and key; kid is set in the header when not empty.
func signTestJWT(t *testing.T, method jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

// hs256Token signs claims with the test servers' secret.
func hs256Token(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	return signTestJWT(t, jwt.SigningMethodHS256, []byte(testSecret), "", c)
}

// unsignedJWT is an alg "none" token, built by hand since no library should make one.
func unsignedJWT(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	payload, err := json.Marshal(c)
	require.NoError(t, err)
	return rawURL64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + rawURL64(payload) + "."
}

// authFixture is what the rows of the authentication table build their servers and credentials from.
type authFixture struct {
	rsa     *rsa.PrivateKey // in the JWKS as kid "rsa-1"
	ec      *ecdsa.PrivateKey
	unknown *rsa.PrivateKey // in no JWKS
	jwksURL string
}

// authServerKind is one way of configuring a server's bearer token checks, with a token it accepts.
type authServerKind struct {
	name      string
	configure func(cfg *Config, f *authFixture)
	good      func(t *testing.T, f *authFixture) string
}

var (
	authHSServer = authServerKind{
		name:      "HS256 secret",
		configure: func(*Config, *authFixture) {},
		good:      func(t *testing.T, _ *authFixture) string { return token(t) },
	}
	authJWKSServer = authServerKind{
		name:      "JWKS only",
		configure: func(cfg *Config, f *authFixture) { cfg.JWTSecret, cfg.JWKSURL = "", f.jwksURL },
		good: func(t *testing.T, f *authFixture) string {
			return signTestJWT(t, jwt.SigningMethodRS256, f.rsa, "rsa-1", jwtClaims(nil))
		},
	}
	authBothServer = authServerKind{
		name:      "secret and JWKS",
		configure: func(cfg *Config, f *authFixture) { cfg.JWKSURL = f.jwksURL },
		good:      func(t *testing.T, _ *authFixture) string { return token(t) },
	}
	authIssAudServer = authServerKind{
		name:      "issuer and audience",
		configure: func(cfg *Config, _ *authFixture) { cfg.JWTIssuer, cfg.JWTAudience = testIssuer, testAudience },
		good: func(t *testing.T, _ *authFixture) string {
			return hs256Token(t, jwtClaims(map[string]any{"iss": testIssuer, "aud": testAudience}))
		},
	}
)

// storeAPIKey stores a new API key of role through the running server's store and returns the key itself;
// when revoke is set it is revoked with the CLI, before its first use so no cached lookup can hide it.
func storeAPIKey(t *testing.T, ts *testServer, role apikey.Role, revoke bool) string {
	t.Helper()
	plain, hash, err := apikey.Generate()
	require.NoError(t, err)
	k := apikey.Key{ID: apikey.NewID(), Name: "stored", Role: role, Hash: hash, CreatedAt: time.Now().UTC()}
	require.NoError(t, ts.Main.storage.keys.Create(context.Background(), k))
	if revoke {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"apikey", "revoke", "--database", ts.Main.Config.Database, k.ID},
			cliNoEnv, &stdout, &stderr)
		require.NoError(t, err, "stderr: %s", stderr.String())
	}
	return plain
}

// cliNoEnv is an empty environment.
func cliNoEnv(string) string { return "" }

// assertAuthErrorBody checks the documented error shape of API.md.
func assertAuthErrorBody(t *testing.T, r response, code int) {
	t.Helper()
	body := r.JSON(t)
	assert.Equal(t, http.StatusText(code), body["error"], "body: %s", r.Body)
	assert.EqualValues(t, code, body["code"], "body: %s", r.Body)
	msg, _ := body["message"].(string)
	assert.NotEmpty(t, msg, "body: %s", r.Body)
	assert.NotEmpty(t, r.Header.Get("X-Request-Id"))
	assert.Equal(t, r.Header.Get("X-Request-Id"), body["requestId"], "body: %s", r.Body)
	assert.True(t, strings.HasPrefix(r.Header.Get("Content-Type"), "application/json"), "Content-Type %q", r.Header.Get("Content-Type"))
}

func TestAuthenticationPostUsers(t *testing.T) {
	t.Parallel()
	f := &authFixture{rsa: testRSAKey(t, 0), unknown: testRSAKey(t, 1)}
	var err error
	f.ec, err = testECKey()
	require.NoError(t, err)
	jwks := newFakeJWKS(t, jwkSetJSON(t, rsaJWK("rsa-1", &f.rsa.PublicKey), ecJWK(t, "ec-1", &f.ec.PublicKey)))
	f.jwksURL = jwks.URL

	pkix, err := x509.MarshalPKIXPublicKey(&f.rsa.PublicKey)
	require.NoError(t, err)
	publicPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})
	pkcs1PEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&f.rsa.PublicKey)})

	bearer := func(tok func(t *testing.T, f *authFixture) string) func(t *testing.T, f *authFixture) string {
		return func(t *testing.T, f *authFixture) string { return "Bearer " + tok(t, f) }
	}
	literal := func(s string) func(*testing.T, *authFixture) string {
		return func(*testing.T, *authFixture) string { return s }
	}
	key := func(s string) func(*testing.T, *testServer) string {
		return func(*testing.T, *testServer) string { return s }
	}
	hsToken := func(extra map[string]any) func(t *testing.T, f *authFixture) string {
		return func(t *testing.T, _ *authFixture) string { return hs256Token(t, jwtClaims(extra)) }
	}
	goodHS := bearer(authHSServer.good)

	rows := []struct {
		name   string
		server authServerKind
		authz  func(t *testing.T, f *authFixture) string // the Authorization header; none when empty
		key    func(t *testing.T, ts *testServer) string // the X-API-Key header; none when empty
		want   int
		// reason is a word the error message has, lower-cased; any message will do when empty.
		reason string
	}{
		// Bearer token faults.
		{"no Authorization", authHSServer, literal(""), key(ingestKey), 401, "authorization"},
		{"Basic scheme", authHSServer, literal("Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+testSecret))), key(ingestKey), 401, "bearer"},
		{"Bearer with an empty token", authHSServer, literal("Bearer "), key(ingestKey), 401, "bearer"},
		{"Bearer alone", authHSServer, literal("Bearer"), key(ingestKey), 401, "bearer"},
		{"malformed token", authHSServer, literal("Bearer not-a-jwt"), key(ingestKey), 401, "malformed"},
		{"three garbage segments", authHSServer, literal("Bearer abc.def.ghi"), key(ingestKey), 401, "malformed"},
		{"token without the scheme", authHSServer, func(t *testing.T, _ *authFixture) string { return token(t) }, key(ingestKey), 401, "bearer"},
		{"alg none", authHSServer, bearer(func(t *testing.T, _ *authFixture) string { return unsignedJWT(t, jwtClaims(nil)) }), key(ingestKey), 401, ""},
		{"alg none on a JWKS server", authJWKSServer, bearer(func(t *testing.T, _ *authFixture) string { return unsignedJWT(t, jwtClaims(nil)) }), key(ingestKey), 401, ""},
		{"wrong HS256 secret", authHSServer, bearer(func(t *testing.T, _ *authFixture) string {
			return signTestJWT(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef0123"), "", jwtClaims(nil))
		}), key(ingestKey), 401, ""},
		{"HS384 with the right secret", authHSServer, bearer(func(t *testing.T, _ *authFixture) string {
			return signTestJWT(t, jwt.SigningMethodHS384, []byte(testSecret), "", jwtClaims(nil))
		}), key(ingestKey), 401, ""},
		{"expired beyond the leeway", authHSServer, bearer(hsToken(map[string]any{"exp": -2 * time.Minute, "iat": -2*time.Minute - time.Hour, "nbf": -2*time.Minute - time.Hour})), key(ingestKey), 401, "expired"},
		{"not valid for two minutes", authHSServer, bearer(hsToken(map[string]any{"nbf": 2 * time.Minute})), key(ingestKey), 401, "not valid yet"},
		{"no exp claim", authHSServer, bearer(hsToken(map[string]any{"exp": nil})), key(ingestKey), 401, "exp"},
		{"expired within the leeway", authHSServer, bearer(hsToken(map[string]any{"exp": -5 * time.Second})), key(ingestKey), 200, ""},
		{"lower-case bearer scheme", authHSServer, func(t *testing.T, _ *authFixture) string { return "bearer " + token(t) }, key(ingestKey), 200, ""},
		{"HS256 on a JWKS-only server", authJWKSServer, goodHS, key(ingestKey), 401, ""},
		{"RS256 with an unknown kid", authJWKSServer, bearer(func(t *testing.T, f *authFixture) string {
			return signTestJWT(t, jwt.SigningMethodRS256, f.unknown, "rsa-unknown", jwtClaims(nil))
		}), key(ingestKey), 401, ""},
		{"RS256 with a known kid and another key", authJWKSServer, bearer(func(t *testing.T, f *authFixture) string {
			return signTestJWT(t, jwt.SigningMethodRS256, f.unknown, "rsa-1", jwtClaims(nil))
		}), key(ingestKey), 401, ""},
		{"ES256 naming the RSA kid", authJWKSServer, bearer(func(t *testing.T, f *authFixture) string {
			return signTestJWT(t, jwt.SigningMethodES256, f.ec, "rsa-1", jwtClaims(nil))
		}), key(ingestKey), 401, ""},
		{"HS256 keyed with the RSA public key PEM", authBothServer, bearer(func(t *testing.T, _ *authFixture) string {
			return signTestJWT(t, jwt.SigningMethodHS256, publicPEM, "rsa-1", jwtClaims(nil))
		}), key(ingestKey), 401, ""},
		{"HS256 keyed with the RSA PKCS1 PEM, no kid", authBothServer, bearer(func(t *testing.T, _ *authFixture) string {
			return signTestJWT(t, jwt.SigningMethodHS256, pkcs1PEM, "", jwtClaims(nil))
		}), key(ingestKey), 401, ""},
		{"HS256 keyed with the RSA PEM on a JWKS-only server", authJWKSServer, bearer(func(t *testing.T, _ *authFixture) string {
			return signTestJWT(t, jwt.SigningMethodHS256, publicPEM, "rsa-1", jwtClaims(nil))
		}), key(ingestKey), 401, ""},
		{"wrong issuer", authIssAudServer, bearer(hsToken(map[string]any{"iss": "https://evil.example/", "aud": testAudience})), key(ingestKey), 401, "issuer"},
		{"no issuer", authIssAudServer, bearer(hsToken(map[string]any{"aud": testAudience})), key(ingestKey), 401, "iss"},
		{"wrong audience", authIssAudServer, bearer(hsToken(map[string]any{"iss": testIssuer, "aud": "another-api"})), key(ingestKey), 401, "audience"},
		{"no audience", authIssAudServer, bearer(hsToken(map[string]any{"iss": testIssuer})), key(ingestKey), 401, "aud"},
		{"right issuer and audience", authIssAudServer, bearer(authIssAudServer.good), key(ingestKey), 200, ""},
		{"right issuer and one of the audiences", authIssAudServer, bearer(hsToken(map[string]any{"iss": testIssuer, "aud": []string{"another-api", testAudience}})), key(ingestKey), 200, ""},
		{"valid RS256 from the JWKS", authJWKSServer, bearer(authJWKSServer.good), key(ingestKey), 200, ""},
		{"valid ES256 from the JWKS", authJWKSServer, bearer(func(t *testing.T, f *authFixture) string {
			return signTestJWT(t, jwt.SigningMethodES256, f.ec, "ec-1", jwtClaims(nil))
		}), key(ingestKey), 200, ""},
		{"valid RS256 on a server with both", authBothServer, bearer(authJWKSServer.good), key(ingestKey), 200, ""},
		{"valid HS256 on a server with both", authBothServer, goodHS, key(ingestKey), 200, ""},
		{"expired RS256", authJWKSServer, bearer(func(t *testing.T, f *authFixture) string {
			return signTestJWT(t, jwt.SigningMethodRS256, f.rsa, "rsa-1", jwtClaims(map[string]any{"exp": -2 * time.Minute}))
		}), key(ingestKey), 401, "expired"},

		// API key faults, with a valid token.
		{"no X-API-Key", authHSServer, goodHS, key(""), 401, "x-api-key"},
		{"unknown API key", authHSServer, goodHS, key("uhk_unknown-key-0123456789abcdefghijklmnop"), 401, "api key"},
		{"revoked stored key", authHSServer, goodHS, func(t *testing.T, ts *testServer) string { return storeAPIKey(t, ts, apikey.RoleIngest, true) }, 401, "api key"},
		{"stored ingest key", authHSServer, goodHS, func(t *testing.T, ts *testServer) string { return storeAPIKey(t, ts, apikey.RoleIngest, false) }, 200, ""},
		{"stored read key", authHSServer, goodHS, func(t *testing.T, ts *testServer) string { return storeAPIKey(t, ts, apikey.RoleRead, false) }, 403, "role"},
		{"read key", authHSServer, goodHS, key(readKey), 403, "role"},
		{"ingest key", authHSServer, goodHS, key(ingestKey), 200, ""},
		{"admin key", authHSServer, goodHS, key(adminKey), 200, ""},
		{"bootstrap key with a suffix", authHSServer, goodHS, key(ingestKey + "x"), 401, "api key"},

		// A bad token is refused (401) before the key is considered; a good token with a read key is 403.
		{"no Authorization and a read key", authHSServer, literal(""), key(readKey), 401, "authorization"},
		{"no Authorization and no key", authHSServer, literal(""), key(""), 401, "authorization"},
		{"valid token for the read key on a JWKS server", authJWKSServer, bearer(authJWKSServer.good), key(readKey), 403, "role"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			row.server.configure(&cfg, f)
			ts := startServer(t, cfg)

			authz, apiKey := row.authz(t, f), row.key(t, ts)
			headers := []string{"Content-Type", "application/json"}
			if authz != "" {
				headers = append(headers, "Authorization", authz)
			}
			if apiKey != "" {
				headers = append(headers, "X-API-Key", apiKey)
			}
			r := ts.do(http.MethodPost, "/users", authSeedBody, headers...)
			require.Equal(t, row.want, r.Status, "body: %s", r.Body)
			var message string
			if row.want == http.StatusOK {
				assert.Equal(t, "1", r.Header.Get("X-Event-Position"))
				assert.Equal(t, true, r.JSON(t)["success"])
			} else {
				assertAuthErrorBody(t, r, row.want)
				message, _ = r.JSON(t)["message"].(string)
				assert.Empty(t, r.Header.Get("X-Event-Position"))
				assertNoCredential(t, string(r.Body), authz, apiKey)
			}

			// Another user's registration, with good credentials, is the store's first event when the request was
			// refused (it stored nothing) and its second when it was accepted (it stored one).
			good := row.server.good(t, f)
			after := ts.do(http.MethodPost, "/users", `{"detail":{"data":{"user_name":"after@example.com","user_id":"auth0|after"}}}`,
				"Content-Type", "application/json", "Authorization", "Bearer "+good, "X-API-Key", ingestKey)
			require.Equal(t, http.StatusOK, after.Status, "body: %s", after.Body)
			wantPosition := "1"
			if row.want == http.StatusOK {
				wantPosition = "2"
			}
			assert.Equal(t, wantPosition, after.Header.Get("X-Event-Position"))

			logs := ts.logs.String()
			assert.Contains(t, logs, r.Header.Get("X-Request-Id"), "one log line per request, with its request id")
			assertNoCredential(t, logs, authz, apiKey, good, ingestKey, readKey, adminKey, testSecret)

			if row.reason != "" {
				assert.Contains(t, strings.ToLower(message), row.reason, "the message says what is wrong")
			}
		})
	}
}

// assertNoCredential checks that none of the credentials (a header value, or its part after the scheme) is in text.
func assertNoCredential(t *testing.T, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if _, cred, ok := strings.Cut(s, " "); ok {
			s = cred
		}
		if len(strings.TrimSpace(s)) < 8 {
			continue
		}
		assert.NotContains(t, text, s)
	}
}

// TestAuthenticationJWKSRotation: a token naming a kid the cached key set lacks makes the server fetch the
// key set again, so a rotated signing key is accepted without a restart; the retired key is then refused.
func TestAuthenticationJWKSRotation(t *testing.T) {
	t.Parallel()
	keyA, keyB := testRSAKey(t, 2), testRSAKey(t, 3)
	jwks := newFakeJWKS(t, jwkSetJSON(t, rsaJWK("key-a", &keyA.PublicKey)))
	cfg := testConfig(t)
	cfg.JWTSecret, cfg.JWKSURL = "", jwks.URL
	ts := startServer(t, cfg)

	post := func(tok string, userID string) response {
		t.Helper()
		body := `{"detail":{"data":{"user_name":"rotation@example.com","user_id":"` + userID + `"}}}`
		return ts.do(http.MethodPost, "/users", body, "Content-Type", "application/json",
			"Authorization", "Bearer "+tok, "X-API-Key", ingestKey)
	}
	tokA := signTestJWT(t, jwt.SigningMethodRS256, keyA, "key-a", jwtClaims(nil))
	r := post(tokA, "auth0|rotation-a")
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.Equal(t, "1", r.Header.Get("X-Event-Position"))
	fetched := jwks.fetches.Load()

	jwks.set(jwkSetJSON(t, rsaJWK("key-b", &keyB.PublicKey)))
	tokB := signTestJWT(t, jwt.SigningMethodRS256, keyB, "key-b", jwtClaims(nil))
	r = post(tokB, "auth0|rotation-b")
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.Equal(t, "2", r.Header.Get("X-Event-Position"))
	assert.Greater(t, jwks.fetches.Load(), fetched, "the key set was fetched again for the unknown kid")

	// Key A left the set at the refresh: its tokens are refused now, and nothing is stored.
	r = post(tokA, "auth0|rotation-c")
	require.Equal(t, http.StatusUnauthorized, r.Status, "body: %s", r.Body)
	assertAuthErrorBody(t, r, http.StatusUnauthorized)
	r = post(tokB, "auth0|rotation-d")
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.Equal(t, "3", r.Header.Get("X-Event-Position"))

	assertNoCredential(t, ts.logs.String(), tokA, tokB, ingestKey)
}

// TestAuthenticationRevokedWhileServing: a stored key revoked with the CLI while the server runs, before the
// server ever looked it up, is refused at once; another key stored by the CLI meanwhile works.
func TestAuthenticationRevokedWhileServing(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	ts := startServer(t, cfg)

	create := func(role string) (id, key string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"apikey", "create", "--name", "while-serving", "--role", role, "--database", cfg.Database},
			cliNoEnv, &stdout, &stderr)
		require.NoError(t, err, "stderr: %s", stderr.String())
		key = strings.TrimSpace(stdout.String())
		for _, k := range cliListKeys(t, cfg.Database) {
			if k.Name == "while-serving" && string(k.Role) == role && k.RevokedAt == nil {
				id = k.ID
			}
		}
		require.NotEmpty(t, id)
		return id, key
	}
	revokedID, revokedKey := create("ingest")
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"apikey", "revoke", "--database", cfg.Database, revokedID}, cliNoEnv, &stdout, &stderr),
		"stderr: %s", stderr.String())

	r := ts.authed(http.MethodPost, "/users", authSeedBody, revokedKey)
	require.Equal(t, http.StatusUnauthorized, r.Status, "body: %s", r.Body)
	assertAuthErrorBody(t, r, http.StatusUnauthorized)

	_, adminStored := create("admin")
	r = ts.authed(http.MethodPost, "/users", `{"detail":{"data":{"user_name":"other@example.com","user_id":"auth0|other"}}}`, adminStored)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.Equal(t, "1", r.Header.Get("X-Event-Position"), "the refused request stored nothing")

	assertNoCredential(t, ts.logs.String(), revokedKey, adminStored)
}

// cliListKeys reads the keys of a database with `apikey list --json`.
func cliListKeys(t *testing.T, database string) []apikey.Key {
	t.Helper()
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"apikey", "list", "--json", "--database", database}, cliNoEnv, &stdout, &stderr),
		"stderr: %s", stderr.String())
	var keys []apikey.Key
	dec := json.NewDecoder(&stdout)
	for dec.More() {
		var k apikey.Key
		require.NoError(t, dec.Decode(&k))
		keys = append(keys, k)
	}
	return keys
}
