// Package source holds the identity providers' own webhooks as userhook receives them: a Source is one
// configured sender (a Clerk instance, a WorkOS directory, an Okta org...) with its secrets; its Store keeps
// them; and a Decoder per provider (in the subpackage named after it) authenticates a provider's request the
// provider's way and reads it into ingest.Events, which the ingest Service applies like any other. A source
// is one more decoder into the same ingest path: there is no second way to write a user.
package source

import (
	"context"
	"net/http"
	"time"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/ingest"
)

// Provider names the format a source speaks (API.md, Sources).
type Provider string

// The providers.
const (
	Clerk     Provider = "clerk"
	WorkOS    Provider = "workos"
	Okta      Provider = "okta"
	Auth0Logs Provider = "auth0-logs"
	Keycloak  Provider = "keycloak"
	Zitadel   Provider = "zitadel"
)

// Providers lists every provider, in the order of API.md's table.
func Providers() []Provider { return []Provider{Clerk, WorkOS, Okta, Auth0Logs, Keycloak, Zitadel} }

// ParseProvider checks a provider name.
func ParseProvider(s string) (Provider, error) {
	for _, p := range Providers() {
		if string(p) == s {
			return p, nil
		}
	}
	return "", userhook.Errorf(userhook.ErrInvalid, "provider %q is not one of clerk, workos, okta, auth0-logs, keycloak, zitadel", s)
}

// IssuesSecret says whether the provider issues the signing secret (it must be given when the source is
// created); for the others userhook generates one when none is given.
func (p Provider) IssuesSecret() bool { return p == Clerk || p == WorkOS || p == Zitadel }

// MaxSecrets is how many secrets a source holds at once: the current one and, during a rotation, the next.
const MaxSecrets = 2

// Source is one configured sender.
type Source struct {
	ID       string
	Name     string
	Provider Provider
	// Secrets are the source's secrets in the clear, as the provider uses them; at rest they are sealed
	// (Seal and Open are the one place that reads and writes them).
	Secrets   []string
	Enabled   bool
	CreatedAt time.Time
	UpdatedAt time.Time
	// LastEventAt is when the source last delivered an event that authenticated; zero if never.
	LastEventAt time.Time
}

// Store keeps the sources. Every implementation runs sourcetest.Run.
type Store interface {
	// Create stores a new source (its ID set by the caller).
	Create(ctx context.Context, s Source) error
	// Get returns the source with id, or an error wrapping userhook.ErrNotFound.
	Get(ctx context.Context, id string) (Source, error)
	// List returns every source, oldest first.
	List(ctx context.Context) ([]Source, error)
	// Update stores the name, enabled flag and secrets of s (and its UpdatedAt); ErrNotFound if none has its ID.
	Update(ctx context.Context, s Source) error
	// Delete removes the source with id; ErrNotFound if there is none.
	Delete(ctx context.Context, id string) error
	// Touch records that the source delivered an event at at (never moving LastEventAt back).
	Touch(ctx context.Context, id string, at time.Time) error
}

// Request is a provider's request to /sources/{id}, as a Decoder sees it: the body is read whole, at most
// the server's body limit.
type Request struct {
	Method string
	Header http.Header
	Body   []byte
	// Now is the time the request arrived, for timestamp tolerances.
	Now time.Time
}

// Decoder reads one provider's requests.
type Decoder interface {
	// Authenticate checks the request the provider's way against the source's secrets (either of two during
	// a rotation): signatures compared in constant time, signed timestamps within the provider's tolerance.
	// Its error wraps userhook.ErrUnauthorized with a reason fit for the log and the client: never a secret
	// nor a signature.
	Authenticate(r Request, secrets []string) error
	// Decode reads the request's events, one per provider event, in the request's order. ID and
	// ProviderEventID are the provider's idempotency key; Source is left empty (the caller scopes keys to the
	// source). An event that concerns no user state has an empty Kind and is acknowledged as ignored, so
	// that the provider stops retrying it; its UserID may be empty. A body the provider would never send (not
	// JSON, no user id on a user event) is an error wrapping userhook.ErrInvalid, with field faults.
	Decode(r Request) ([]ingest.Event, error)
}

// Challenger is a Decoder whose provider verifies the endpoint with a GET before it sends events (Okta's
// X-Okta-Verification-Challenge). Challenge returns the JSON body to answer an authenticated GET with.
type Challenger interface {
	Challenge(r Request) (any, error)
}
