package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/userhook/userhook/apikey"
	"github.com/userhook/userhook/delivery"
	"github.com/userhook/userhook/standardwebhooks"
	"github.com/userhook/userhook/transport"
)

// Config is every setting of userhook, filled from flags and USERHOOK_* variables (a flag wins).
type Config struct {
	Addr                string
	Database            string
	PubSub              string
	JWTSecret           string
	JWKSURL             string
	JWTIssuer           string
	JWTAudience         string
	APIKeys             string
	WebhookSecrets      string
	WebhookAllowPrivate bool
	WebhookAllowCIDRs   string
	DeliveryBackoff     string
	// WebhookDisableAfter disables a webhook whose deliveries have all failed for this long (0: never).
	WebhookDisableAfter time.Duration
	// DeliveryWorkers is how many deliveries are sent at once over all webhooks; one webhook gets
	// delivery.DefaultPerEndpoint of them at most.
	DeliveryWorkers int
	// RateLimitIngest and RateLimitRead are "RATE[:BURST]" per API key (and per signing secret on POST
	// /events); empty is no limit, the default for ingest.
	RateLimitIngest string
	RateLimitRead   string
	// NATSNamespace prefixes the JetStream stream and consumer names, so deployments can share a server.
	NATSNamespace string
	// DebugAddr, when set, serves Go's profiler (/debug/pprof/) on its own listener.
	DebugAddr string
	// StateCache is how many users' states the command service keeps in memory (0: none).
	StateCache int
	LogLevel   string
	// Dev generates ephemeral credentials at start and prints them with a ready-to-paste curl.
	Dev bool
	// ShutdownTimeout bounds how long requests in flight may take to finish on SIGTERM.
	ShutdownTimeout time.Duration
	// DatabaseTimeout bounds every PostgreSQL call of a request or of the event store's writer; past it the
	// request answers 503 with Retry-After and nothing is half-written (0: no bound).
	DatabaseTimeout time.Duration
	// ReadyMaxLag is how many events a consumer may be behind the store before /readyz fails (0: no bound);
	// ReadyStall how long a consumer that is behind may go without advancing (0: no bound).
	ReadyMaxLag int64
	ReadyStall  time.Duration
}

// DefaultConfig is the embedded default: a SQLite file and in-process pub/sub.
func DefaultConfig() Config {
	return Config{
		Addr:                ":8080",
		Database:            "./data/userhook.db",
		PubSub:              "embedded",
		DeliveryBackoff:     "5s,30s,2m,10m,1h,6h",
		WebhookDisableAfter: 72 * time.Hour,
		DeliveryWorkers:     64,
		StateCache:          200000,
		LogLevel:            "info",
		ShutdownTimeout:     15 * time.Second,
		DatabaseTimeout:     10 * time.Second,
		ReadyMaxLag:         10000,
		ReadyStall:          30 * time.Second,
	}
}

// databaseFlags are the settings every subcommand that opens the database takes.
func (c *Config) databaseFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Database, "database", c.Database, "SQLite file path, or a postgres:// URL")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
}

// authFlags are the settings that verify or issue bearer tokens.
func (c *Config) authFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.JWTSecret, "jwt-secret", c.JWTSecret, "HS256 secret for bearer tokens")
	fs.StringVar(&c.JWTIssuer, "jwt-issuer", c.JWTIssuer, "required iss claim, when set")
	fs.StringVar(&c.JWTAudience, "jwt-audience", c.JWTAudience, "required aud claim, when set")
}

// serveFlags are the settings of serve.
func (c *Config) serveFlags(fs *flag.FlagSet) {
	c.databaseFlags(fs)
	c.authFlags(fs)
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address")
	fs.StringVar(&c.PubSub, "pubsub", c.PubSub, "embedded, or a nats:// URL (NATS JetStream)")
	fs.StringVar(&c.JWKSURL, "jwks-url", c.JWKSURL, "JWKS URL for RS256/ES256 bearer tokens")
	fs.StringVar(&c.APIKeys, "api-keys", c.APIKeys, "bootstrap API keys, comma-separated KEY:ROLE")
	fs.StringVar(&c.WebhookSecrets, "webhook-secrets", c.WebhookSecrets, "inbound signing secrets (whsec_...), comma-separated")
	fs.BoolVar(&c.WebhookAllowPrivate, "webhook-allow-private", c.WebhookAllowPrivate, "let deliveries reach loopback and private addresses")
	fs.StringVar(&c.WebhookAllowCIDRs, "webhook-allow-cidrs", c.WebhookAllowCIDRs, "CIDRs deliveries may reach besides public addresses, comma-separated")
	fs.StringVar(&c.DeliveryBackoff, "delivery-backoff", c.DeliveryBackoff, "delays between delivery attempts")
	fs.DurationVar(&c.WebhookDisableAfter, "webhook-disable-after", c.WebhookDisableAfter, "disable a webhook whose deliveries all failed for this long (0: never)")
	fs.IntVar(&c.DeliveryWorkers, "delivery-workers", c.DeliveryWorkers, "deliveries sent at once")
	fs.StringVar(&c.RateLimitIngest, "rate-limit-ingest", c.RateLimitIngest, "RATE[:BURST] requests/s per key or signing secret on POST /users and /events (off when empty)")
	fs.StringVar(&c.RateLimitRead, "rate-limit-read", c.RateLimitRead, "RATE[:BURST] requests/s per key on the other authenticated routes (off when empty)")
	fs.StringVar(&c.NATSNamespace, "nats-namespace", c.NATSNamespace, "prefix of the JetStream stream and consumer names")
	fs.StringVar(&c.DebugAddr, "debug-addr", c.DebugAddr, "serve /debug/pprof/ on this address (off when empty)")
	fs.IntVar(&c.StateCache, "state-cache", c.StateCache, "users whose state is kept in memory (0: none)")
	fs.BoolVar(&c.Dev, "dev", c.Dev, "generate and print ephemeral development credentials")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long requests in flight may take on shutdown")
	fs.Int64Var(&c.ReadyMaxLag, "ready-max-lag", c.ReadyMaxLag, "events a consumer may be behind the store before /readyz fails (0: no bound)")
	fs.DurationVar(&c.ReadyStall, "ready-stall", c.ReadyStall, "how long a consumer that is behind may go without advancing before /readyz fails (0: no bound)")
	fs.DurationVar(&c.DatabaseTimeout, "database-timeout", c.DatabaseTimeout, "deadline of every PostgreSQL call of a request (503 past it; 0: none)")
}

// parse reads args into fs, then fills every flag not given from USERHOOK_<FLAG>.
// Flags may come before or after positional arguments (`apikey revoke ID --database PATH`); the positional
// ones are left in fs.Args().
func parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return usageError{err}
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(positional) > 0 {
		if err := fs.Parse(append([]string{"--"}, positional...)); err != nil {
			return usageError{err}
		}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		env := "USERHOOK_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(env); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %v", env, err))
			}
		}
	})
	return errors.Join(errs...)
}

// IsPostgres says whether the database setting is a PostgreSQL URL.
func (c Config) IsPostgres() bool {
	return strings.HasPrefix(c.Database, "postgres://") || strings.HasPrefix(c.Database, "postgresql://")
}

// ValidateStorage reports every fault of the storage settings.
func (c Config) ValidateStorage() error {
	var errs []error
	switch {
	case strings.TrimSpace(c.Database) == "":
		errs = append(errs, errors.New("database: must be a SQLite file path or a postgres:// URL"))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log-level: %q is not one of debug, info, warn, error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// Validate reports every fault of a serve configuration at once. Secrets are never quoted back.
func (c Config) Validate() error {
	errs := []error{c.ValidateStorage()}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr: %q is not host:port", c.Addr))
	}
	switch {
	case c.PubSub == "" || c.PubSub == "embedded":
	case strings.HasPrefix(c.PubSub, "nats://"):
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
	if _, err := apikey.ParseBootstrap(c.APIKeys); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseWebhookSecrets(c.WebhookSecrets); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseBackoff(c.DeliveryBackoff); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseAllowCIDRs(c.WebhookAllowCIDRs); err != nil {
		errs = append(errs, err)
	}
	if c.WebhookDisableAfter < 0 {
		errs = append(errs, errors.New("webhook-disable-after: must not be negative"))
	}
	if c.DeliveryWorkers < 1 || c.DeliveryWorkers > 256 {
		errs = append(errs, errors.New("delivery-workers: must be from 1 to 256"))
	}
	if _, err := transport.ParseRateLimit(c.RateLimitIngest); err != nil {
		errs = append(errs, fmt.Errorf("rate-limit-ingest: %v", err))
	}
	if _, err := transport.ParseRateLimit(c.RateLimitRead); err != nil {
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
	return errors.Join(errs...)
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

// webhookGuard is which addresses deliveries may reach, and which webhook URLs are accepted.
func (c Config) webhookGuard() delivery.Guard {
	allow, _ := parseAllowCIDRs(c.WebhookAllowCIDRs) // Validate has reported a fault
	return delivery.Guard{AllowPrivate: c.WebhookAllowPrivate, Allow: allow}
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

func osGetenv(k string) string { return os.Getenv(k) }
