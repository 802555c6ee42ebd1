package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/alecthomas/kong"

	"github.com/userhook/userhook/apikey"
	"github.com/userhook/userhook/delivery"
	"github.com/userhook/userhook/standardwebhooks"
	"github.com/userhook/userhook/transport"
)

// Config is every setting of userhook as given: flags, USERHOOK_* variables and defaults, in the text the
// user wrote. Its kong tags are serve's command line (serveCmd): flag names, defaults, help, and envvar for
// the settings a variable may also give. Parse turns it into Settings, once.
type Config struct {
	Database    string `help:"SQLite file path, or a postgres:// URL" default:"./data/userhook.db" placeholder:"PATH|URL" envvar:"USERHOOK_DATABASE"`
	LogLevel    string `help:"debug, info, warn or error" default:"info" placeholder:"LEVEL" envvar:"USERHOOK_LOG_LEVEL"`
	JWTSecret   string `name:"jwt-secret" help:"HS256 secret for bearer tokens, at least 32 bytes" placeholder:"SECRET" envvar:"USERHOOK_JWT_SECRET" group:"auth"`
	JWTIssuer   string `name:"jwt-issuer" help:"required iss claim, when set" placeholder:"ISS" envvar:"USERHOOK_JWT_ISSUER" group:"auth"`
	JWTAudience string `name:"jwt-audience" help:"required aud claim, when set" placeholder:"AUD" envvar:"USERHOOK_JWT_AUDIENCE" group:"auth"`
	Addr        string `help:"listen address" default:":8080" placeholder:"HOST:PORT" envvar:"USERHOOK_ADDR" group:"server"`
	PubSub      string `name:"pubsub" help:"embedded (in process), or a nats:// URL (NATS JetStream)" default:"embedded" placeholder:"embedded|URL" envvar:"USERHOOK_PUBSUB" group:"server"`
	JWKSURL     string `name:"jwks-url" help:"JWKS URL for RS256/ES256 bearer tokens" placeholder:"URL" envvar:"USERHOOK_JWKS_URL" group:"auth"`
	APIKeys     string `name:"api-keys" help:"bootstrap API keys, comma-separated KEY:ROLE" placeholder:"KEY:ROLE,..." envvar:"USERHOOK_API_KEYS" group:"auth"`
	// WebhookSecrets verify inbound webhook signatures: whsec_ secrets, two at once while rotating.
	WebhookSecrets      string `name:"webhook-secrets" help:"inbound signing secrets (whsec_...), comma-separated" placeholder:"SECRET,..." envvar:"USERHOOK_WEBHOOK_SECRETS" group:"auth"`
	WebhookAllowPrivate bool   `name:"webhook-allow-private" help:"let deliveries reach loopback and private addresses" envvar:"USERHOOK_WEBHOOK_ALLOW_PRIVATE" group:"webhooks"`
	WebhookAllowCIDRs   string `name:"webhook-allow-cidrs" help:"CIDRs deliveries may reach besides public addresses, comma-separated" placeholder:"CIDR,..." envvar:"USERHOOK_WEBHOOK_ALLOW_CIDRS" group:"webhooks"`
	DeliveryBackoff     string `name:"delivery-backoff" help:"delays between delivery attempts" default:"5s,30s,2m,10m,1h,6h" placeholder:"DURATION,..." envvar:"USERHOOK_DELIVERY_BACKOFF" group:"webhooks"`
	// WebhookDisableAfter disables a webhook whose deliveries have all failed for this long (0: never).
	WebhookDisableAfter time.Duration `name:"webhook-disable-after" help:"disable a webhook whose deliveries all failed for this long (0: never)" default:"72h" envvar:"USERHOOK_WEBHOOK_DISABLE_AFTER" group:"webhooks"`
	// DeliveryWorkers is how many deliveries are sent at once over all webhooks; one webhook gets
	// delivery.DefaultPerEndpoint of them at most.
	DeliveryWorkers int `name:"delivery-workers" help:"deliveries sent at once" default:"64" envvar:"USERHOOK_DELIVERY_WORKERS" group:"webhooks"`
	// RateLimitIngest and RateLimitRead are "RATE[:BURST]" per API key (and per signing secret on POST
	// /events); empty is no limit, the default for ingest.
	RateLimitIngest string `name:"rate-limit-ingest" help:"RATE[:BURST] requests/s per key or signing secret on POST /users and /events (off when empty)" placeholder:"RATE[:BURST]" envvar:"USERHOOK_RATE_LIMIT_INGEST" group:"auth"`
	RateLimitRead   string `name:"rate-limit-read" help:"RATE[:BURST] requests/s per key on the other authenticated routes (off when empty)" placeholder:"RATE[:BURST]" envvar:"USERHOOK_RATE_LIMIT_READ" group:"auth"`
	// NATSNamespace prefixes the JetStream stream and consumer names, so deployments can share a server.
	NATSNamespace string `name:"nats-namespace" help:"prefix of the JetStream stream and consumer names" placeholder:"PREFIX" envvar:"USERHOOK_NATS_NAMESPACE" group:"server"`
	// DebugAddr, when set, serves Go's profiler (/debug/pprof/) on its own listener.
	DebugAddr string `name:"debug-addr" help:"serve /debug/pprof/ on this address (off when empty)" placeholder:"HOST:PORT" envvar:"USERHOOK_DEBUG_ADDR" group:"server"`
	// StateCache is how many users' states the command service keeps in memory (0: none).
	StateCache int `name:"state-cache" help:"users whose state is kept in memory (0: none)" default:"100000" envvar:"USERHOOK_STATE_CACHE" group:"server"`
	// ShutdownTimeout bounds how long requests in flight may take to finish on SIGTERM.
	ShutdownTimeout time.Duration `name:"shutdown-timeout" help:"how long requests in flight may take on shutdown" default:"15s" envvar:"USERHOOK_SHUTDOWN_TIMEOUT" group:"server"`
	// DatabaseTimeout bounds every PostgreSQL call of a request or of the event store's writer; past it the
	// request answers 503 with Retry-After and nothing is half-written (0: no bound).
	DatabaseTimeout time.Duration `name:"database-timeout" help:"deadline of every PostgreSQL call of a request (503 past it; 0: none)" default:"10s" envvar:"USERHOOK_DATABASE_TIMEOUT" group:"server"`
	// ReadyMaxLag is how many events a consumer may be behind the store before /readyz fails (0: no bound);
	// ReadyStall how long a consumer that is behind may go without advancing (0: no bound).
	ReadyMaxLag int64         `name:"ready-max-lag" help:"events a consumer may be behind the store before /readyz fails (0: no bound)" default:"10000" envvar:"USERHOOK_READY_MAX_LAG" group:"server"`
	ReadyStall  time.Duration `name:"ready-stall" help:"how long a consumer that is behind may go without advancing before /readyz fails (0: no bound)" default:"30s" envvar:"USERHOOK_READY_STALL" group:"server"`
	// Dev generates ephemeral credentials at start and prints them with a ready-to-paste curl. A flag only:
	// no variable left in an environment turns a production serve into a development one.
	Dev bool `help:"generate and print ephemeral development credentials"`
}

// defaultConfig is Config with the defaults of its tags, read once.
var defaultConfig = sync.OnceValue(func() Config {
	var c serveCmd
	if err := kong.ApplyDefaults(&c); err != nil {
		panic(fmt.Sprintf("userhook: the configuration's defaults: %v", err))
	}
	return Config(c)
})

// DefaultConfig is the embedded default: a SQLite file and in-process pub/sub.
func DefaultConfig() Config { return defaultConfig() }

// IsPostgres says whether the database setting is a PostgreSQL URL.
func (c Config) IsPostgres() bool {
	return strings.HasPrefix(c.Database, "postgres://") || strings.HasPrefix(c.Database, "postgresql://")
}

// ValidateStorage reports every fault of the storage settings.
func (c Config) ValidateStorage() error {
	var errs []error
	if strings.TrimSpace(c.Database) == "" {
		errs = append(errs, errors.New("database: must be a SQLite file path or a postgres:// URL"))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log-level: %q is not one of debug, info, warn, error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// Settings is a serve Config parsed: its lists and limits as values. Config.Parse makes it once, so nothing
// after it parses a setting again or passes over a fault.
type Settings struct {
	// APIKeys are the bootstrap keys.
	APIKeys []apikey.Bootstrap
	// WebhookSecrets verify inbound webhook signatures.
	WebhookSecrets [][]byte
	// DeliveryBackoff is the delays between delivery attempts.
	DeliveryBackoff []time.Duration
	// WebhookGuard is which addresses deliveries may reach, and which webhook URLs are accepted.
	WebhookGuard delivery.Guard
	// IngestLimit and ReadLimit are the per-key rate limits (nil: none).
	IngestLimit *transport.RateLimit
	ReadLimit   *transport.RateLimit
	// NATS is the NATS JetStream URL of the pub/sub, empty for the embedded one.
	NATS string
}

// Validate reports every fault of a serve configuration at once. Secrets are never quoted back.
func (c Config) Validate() error {
	_, err := c.Parse()
	return err
}

// Parse checks a serve configuration and parses its settings, reporting every fault at once. Secrets are
// never quoted back.
func (c Config) Parse() (Settings, error) {
	var s Settings
	errs := []error{c.ValidateStorage()}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr: %q is not host:port", c.Addr))
	}
	switch {
	case c.PubSub == "" || c.PubSub == "embedded":
	case strings.HasPrefix(c.PubSub, "nats://"):
		s.NATS = c.PubSub
	default:
		errs = append(errs, fmt.Errorf("pubsub: %q is neither embedded nor a nats:// URL", c.PubSub))
	}
	if !c.Dev && c.JWTSecret == "" && c.JWKSURL == "" {
		errs = append(errs, errors.New("jwt: set USERHOOK_JWT_SECRET (HS256) or USERHOOK_JWKS_URL (RS256/ES256), or run with --dev"))
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		errs = append(errs, errors.New("jwt-secret: must be at least 32 bytes for HS256"))
	}
	if c.JWKSURL != "" && !strings.HasPrefix(c.JWKSURL, "https://") && !strings.HasPrefix(c.JWKSURL, "http://") {
		errs = append(errs, errors.New("jwks-url: must be an http(s) URL"))
	}
	var err error
	if s.APIKeys, err = apikey.ParseBootstrap(c.APIKeys); err != nil {
		errs = append(errs, err)
	}
	if s.WebhookSecrets, err = parseWebhookSecrets(c.WebhookSecrets); err != nil {
		errs = append(errs, err)
	}
	if s.DeliveryBackoff, err = parseBackoff(c.DeliveryBackoff); err != nil {
		errs = append(errs, err)
	}
	if s.WebhookGuard, err = c.webhookGuard(); err != nil {
		errs = append(errs, err)
	}
	if c.WebhookDisableAfter < 0 {
		errs = append(errs, errors.New("webhook-disable-after: must not be negative"))
	}
	if c.DeliveryWorkers < 1 || c.DeliveryWorkers > 256 {
		errs = append(errs, errors.New("delivery-workers: must be from 1 to 256"))
	}
	if s.IngestLimit, err = transport.ParseRateLimit(c.RateLimitIngest); err != nil {
		errs = append(errs, fmt.Errorf("rate-limit-ingest: %v", err))
	}
	if s.ReadLimit, err = transport.ParseRateLimit(c.RateLimitRead); err != nil {
		errs = append(errs, fmt.Errorf("rate-limit-read: %v", err))
	}
	if c.StateCache < 0 {
		errs = append(errs, errors.New("state-cache: must not be negative"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("shutdown-timeout: must be positive"))
	}
	if c.ReadyMaxLag < 0 || c.ReadyStall < 0 {
		errs = append(errs, errors.New("ready-max-lag, ready-stall: must not be negative"))
	}
	if c.DatabaseTimeout < 0 {
		errs = append(errs, errors.New("database-timeout: must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// webhookGuard is which addresses deliveries may reach, and which webhook URLs are accepted.
func (c Config) webhookGuard() (delivery.Guard, error) {
	allow, err := parseAllowCIDRs(c.WebhookAllowCIDRs)
	return delivery.Guard{AllowPrivate: c.WebhookAllowPrivate, Allow: allow}, err
}

func parseWebhookSecrets(s string) ([][]byte, error) {
	var out [][]byte
	var errs []error
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		b, err := standardwebhooks.ParseSecret(part)
		if err != nil {
			errs = append(errs, fmt.Errorf("webhook-secrets: entry %d: %v", i+1, err))
			continue
		}
		out = append(out, b)
	}
	if len(out) > 2 {
		errs = append(errs, errors.New("webhook-secrets: at most two secrets (current and next, for rotation)"))
	}
	return out, errors.Join(errs...)
}

// parseAllowCIDRs reads a comma-separated list of CIDRs, reporting every entry that is not one.
func parseAllowCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			errs = append(errs, fmt.Errorf("webhook-allow-cidrs: entry %d, %q, is not a CIDR like 10.20.0.0/16 or fd00:1234::/32", i+1, part))
			continue
		}
		out = append(out, p.Masked())
	}
	return out, errors.Join(errs...)
}

func parseBackoff(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, part := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil || d < 0 {
			return nil, fmt.Errorf("delivery-backoff: %q is not a list of durations like 5s,30s,2m", s)
		}
		out = append(out, d)
	}
	return out, nil
}
