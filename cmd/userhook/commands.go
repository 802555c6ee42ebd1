package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/alecthomas/kong"

	"github.com/userhook/userhook/apikey"
	"github.com/userhook/userhook/transport"
)

// databaseFlags are the database settings of the commands that work on the database directly. They are
// Config's fields of the same names, tags and all (TestCommandFlagsAreConfigs).
type databaseFlags struct {
	Database string `help:"SQLite file path, or a postgres:// URL" default:"./data/userhook.db" placeholder:"PATH|URL" envvar:"USERHOOK_DATABASE"`
	LogLevel string `help:"debug, info, warn or error" default:"info" placeholder:"LEVEL" envvar:"USERHOOK_LOG_LEVEL"`
}

// config is the configuration of a command that takes only the database settings: the defaults for the rest.
func (f databaseFlags) config() Config {
	cfg := DefaultConfig()
	cfg.Database, cfg.LogLevel = f.Database, f.LogLevel
	return cfg
}

// jwtFlags are the bearer-token settings of token: Config's fields of the same names, tags and all.
type jwtFlags struct {
	JWTSecret   string `name:"jwt-secret" help:"HS256 secret for bearer tokens, at least 32 bytes" placeholder:"SECRET" envvar:"USERHOOK_JWT_SECRET" group:"auth"`
	JWTIssuer   string `name:"jwt-issuer" help:"required iss claim, when set" placeholder:"ISS" envvar:"USERHOOK_JWT_ISSUER" group:"auth"`
	JWTAudience string `name:"jwt-audience" help:"required aud claim, when set" placeholder:"AUD" envvar:"USERHOOK_JWT_AUDIENCE" group:"auth"`
}

// openedStorage is the storage of a database that a command opened; Close closes the database.
type openedStorage struct {
	*storage
	backend backend
}

// Close closes the database.
func (o *openedStorage) Close() error { return o.backend.Close() }

// openStorage opens the configured database for a command that works on it directly.
func openStorage(ctx context.Context, cfg Config) (*openedStorage, error) {
	b, err := openBackend(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &openedStorage{b.Storage(), b}, nil
}

// serveCmd is `userhook serve`: Config itself, as a type of its own, so that kong reads its fields and tags
// but not its methods (kong would call Config.Validate while parsing, where a fault would be a usage error).
type serveCmd Config

// Run serves until the server fails or a signal ends the context.
func (c *serveCmd) Run(s *session) error {
	m := &Main{Config: Config(*c), Stdout: s.stdout, Stderr: s.stderr}
	if err := m.Run(s.ctx); err != nil {
		return err
	}
	waitErr := m.Wait(s.ctx)
	return errors.Join(waitErr, m.Close())
}

type apikeyCmd struct {
	Create apikeyCreateCmd `cmd:"" help:"Store a new API key (hashed) and print the key itself, once, as the only line on stdout."`
	List   apikeyListCmd   `cmd:"" help:"List the stored API keys."`
	Revoke apikeyRevokeCmd `cmd:"" help:"Revoke a stored API key."`
}

type apikeyCreateCmd struct {
	databaseFlags `embed:""`
	Name          string `help:"what the key is for"`
	Role          string `help:"ingest, read or admin" placeholder:"ROLE"`
}

// Run checks every flag at once, then stores the key.
func (c *apikeyCreateCmd) Run(s *session) error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("--name is required"))
	}
	if strings.IndexFunc(c.Name, unicode.IsControl) >= 0 || !utf8.ValidString(c.Name) {
		errs = append(errs, errors.New("--name must be valid UTF-8 without control characters"))
	}
	role, err := apikey.ParseRole(c.Role)
	if err != nil {
		errs = append(errs, errors.New("--role must be ingest, read or admin"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("apikey create: %w", err)
	}
	st, err := openStorage(s.ctx, c.config())
	if err != nil {
		return err
	}
	defer st.Close()
	plain, hash, err := apikey.Generate()
	if err != nil {
		return err
	}
	k := apikey.Key{ID: apikey.NewID(), Name: c.Name, Role: role, Hash: hash, CreatedAt: time.Now().UTC()}
	if err := st.keys.Create(s.ctx, k); err != nil {
		return err
	}
	fmt.Fprintf(s.stderr, "created API key %s (%s, role %s); it is shown once, below\n", k.ID, k.Name, k.Role)
	fmt.Fprintln(s.stdout, plain)
	return nil
}

type apikeyListCmd struct {
	databaseFlags `embed:""`
	JSON          bool `name:"json" help:"one JSON object a line instead of a table"`
}

// Run prints the keys, never their hashes.
func (c *apikeyListCmd) Run(s *session) error {
	st, err := openStorage(s.ctx, c.config())
	if err != nil {
		return err
	}
	defer st.Close()
	keys, err := st.keys.List(s.ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		enc := json.NewEncoder(s.stdout)
		for _, k := range keys {
			if err := enc.Encode(k); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(s.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED\tREVOKED")
	for _, k := range keys {
		revoked := "-"
		if k.RevokedAt != nil {
			revoked = k.RevokedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Role, k.CreatedAt.Format(time.RFC3339), revoked)
	}
	return tw.Flush()
}

type apikeyRevokeCmd struct {
	databaseFlags `embed:""`
	ID            string `arg:"" help:"the key's id (key_...)"`
}

// Run revokes the key.
func (c *apikeyRevokeCmd) Run(s *session) error {
	st, err := openStorage(s.ctx, c.config())
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.keys.Revoke(s.ctx, c.ID, time.Now().UTC()); err != nil {
		if errors.Is(err, apikey.ErrNotFound) {
			return fmt.Errorf("apikey revoke: no key %q", c.ID)
		}
		return err
	}
	fmt.Fprintf(s.stderr, "revoked %s\n", c.ID)
	return nil
}

type tokenCmd struct {
	jwtFlags `embed:""`
	Sub      string        `help:"the token's subject" placeholder:"SUBJECT"`
	TTL      time.Duration `name:"ttl" help:"how long the token is valid" default:"1h"`
}

// Run checks every flag at once, then prints the token.
func (c *tokenCmd) Run(s *session) error {
	var errs []error
	if c.Sub == "" {
		errs = append(errs, errors.New("--sub is required"))
	}
	if c.JWTSecret == "" {
		errs = append(errs, errors.New("no JWT secret: set USERHOOK_JWT_SECRET or --jwt-secret"))
	}
	if c.TTL <= 0 {
		errs = append(errs, errors.New("--ttl must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	tok, err := transport.SignToken(transport.TokenRequest{
		Secret: []byte(c.JWTSecret), Subject: c.Sub, TTL: c.TTL, Issuer: c.JWTIssuer, Audience: c.JWTAudience,
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(s.stdout, tok)
	return nil
}

type migrateCmd struct {
	Status migrateAction `cmd:"" help:"Print each component's schema version, the latest this binary knows, and what is pending; change nothing."`
	Up     migrateAction `cmd:"" help:"Apply the pending migrations (every command that opens the database does so anyway)."`
}

type migrateAction struct {
	databaseFlags `embed:""`
}

// Run is runMigrate with the action named on the command line.
func (c *migrateAction) Run(s *session, k *kong.Context) error {
	return runMigrate(s.ctx, c.config(), k.Selected().Name, s.stdout)
}

type versionCmd struct{}

// Run prints the module version, the VCS commit it was built from and the Go version.
func (versionCmd) Run(s *session) error {
	version, commit, goVersion := "unknown", "unknown (built without VCS information)", runtime.Version()
	if info, ok := debug.ReadBuildInfo(); ok {
		version, goVersion = cmp.Or(info.Main.Version, "(devel)"), info.GoVersion
		var modified, at string
		for _, st := range info.Settings {
			switch st.Key {
			case "vcs.revision":
				commit = st.Value
			case "vcs.time":
				at = st.Value
			case "vcs.modified":
				if st.Value == "true" {
					modified = ", modified"
				}
			}
		}
		if at != "" || modified != "" {
			commit += " (" + strings.TrimPrefix(at+modified, ", ") + ")"
		}
	}
	fmt.Fprintf(s.stdout, "userhook %s\ncommit: %s\ngo: %s %s/%s\n", version, commit, goVersion, runtime.GOOS, runtime.GOARCH)
	return nil
}
