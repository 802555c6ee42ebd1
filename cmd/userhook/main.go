// Command userhook receives identity-provider user events, stores them in an event store, projects a users
// read model and fans events out to subscribed webhooks.
//
//	userhook serve [--dev]
//	userhook apikey create --name NAME --role ingest|read|admin
//	userhook apikey list
//	userhook apikey revoke ID
//	userhook token --sub SUBJECT [--ttl 1h]
//	userhook replay
//	userhook events [--stream USER_ID] [--from POSITION] [--follow]
//
// Every flag has an environment variable USERHOOK_<FLAG>; a flag wins over the variable.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/userhook/userhook/apikey"
	"github.com/userhook/userhook/transport"
)

const usage = `usage: userhook <command> [flags]

commands:
  serve [--dev]                                       run the HTTP server
  apikey create --name NAME --role ingest|read|admin  store a new API key and print it once
  apikey list                                         list API keys
  apikey revoke ID                                    revoke an API key
  token --sub SUBJECT [--ttl 1h]                      print an HS256 JWT signed with the configured secret
  replay                                              rebuild the users read model from the event store
  events [--stream USER_ID] [--from N] [--follow]     print stored events as JSON lines, in global order

Every flag has an environment variable USERHOOK_<FLAG>; run "userhook <command> -h" for its flags.
`

func main() {
	// Libraries that log through the default logger write JSON lines too.
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "userhook:", err)
		os.Exit(exitCode(err))
	}
}

// usageError is a command line that could not be understood: exit status 2, as flag packages do; every
// other failure (a database that cannot be opened, a port in use) exits 1.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// run is the program without process globals, so tests can call it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{errors.New("no command given")}
	}
	cfg := DefaultConfig()
	switch args[0] {
	case "serve":
		return cmdServe(ctx, cfg, args[1:], getenv, stdout, stderr)
	case "apikey":
		return cmdAPIKey(ctx, cfg, args[1:], getenv, stdout, stderr)
	case "token":
		return cmdToken(cfg, args[1:], getenv, stdout, stderr)
	case "replay":
		return cmdReplay(ctx, cfg, args[1:], getenv, stdout, stderr)
	case "events":
		return cmdEvents(ctx, cfg, args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Errorf("unknown command %q", args[0])}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func cmdServe(ctx context.Context, cfg Config, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("userhook serve", stderr)
	cfg.serveFlags(fs)
	if err := parse(fs, args, getenv); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("cannot serve:\n%w", err)
	}
	m := &Main{Config: cfg, Stdout: stdout, Stderr: stderr}
	if err := m.Run(ctx); err != nil {
		return err
	}
	waitErr := m.Wait(ctx)
	return errors.Join(waitErr, m.Close())
}

func cmdAPIKey(ctx context.Context, cfg Config, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("apikey: want create, list or revoke")
	}
	sub, rest := args[0], args[1:]
	fs := newFlagSet("userhook apikey "+sub, stderr)
	cfg.databaseFlags(fs)
	name := fs.String("name", "", "what the key is for")
	role := fs.String("role", "", "ingest, read or admin")
	asJSON := fs.Bool("json", false, "list as JSON lines")
	if err := parse(fs, rest, getenv); err != nil {
		return err
	}
	st, err := openStorage(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	switch sub {
	case "create":
		var errs []error
		if *name == "" {
			errs = append(errs, errors.New("--name is required"))
		}
		if strings.IndexFunc(*name, unicode.IsControl) >= 0 || !utf8.ValidString(*name) {
			errs = append(errs, errors.New("--name must be valid UTF-8 without control characters"))
		}
		r, err := apikey.ParseRole(*role)
		if err != nil {
			errs = append(errs, errors.New("--role must be ingest, read or admin"))
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("apikey create: %w", err)
		}
		plain, hash, err := apikey.Generate()
		if err != nil {
			return err
		}
		k := apikey.Key{ID: apikey.NewID(), Name: *name, Role: r, Hash: hash, CreatedAt: time.Now().UTC()}
		if err := st.keys.Create(ctx, k); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "created API key %s (%s, role %s); it is shown once, below\n", k.ID, k.Name, k.Role)
		fmt.Fprintln(stdout, plain)
		return nil
	case "list":
		keys, err := st.keys.List(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			for _, k := range keys {
				if err := enc.Encode(k); err != nil {
					return err
				}
			}
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED\tREVOKED")
		for _, k := range keys {
			revoked := "-"
			if k.RevokedAt != nil {
				revoked = k.RevokedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Role, k.CreatedAt.Format(time.RFC3339), revoked)
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return errors.New("apikey revoke: want exactly one key ID")
		}
		if err := st.keys.Revoke(ctx, fs.Arg(0), time.Now().UTC()); err != nil {
			if errors.Is(err, apikey.ErrNotFound) {
				return fmt.Errorf("apikey revoke: no key %q", fs.Arg(0))
			}
			return err
		}
		fmt.Fprintf(stderr, "revoked %s\n", fs.Arg(0))
		return nil
	}
	return fmt.Errorf("apikey: unknown subcommand %q; want create, list or revoke", sub)
}

func cmdToken(cfg Config, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("userhook token", stderr)
	cfg.authFlags(fs)
	sub := fs.String("sub", "", "the token's subject")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	if err := parse(fs, args, getenv); err != nil {
		return err
	}
	var errs []error
	if *sub == "" {
		errs = append(errs, errors.New("--sub is required"))
	}
	if cfg.JWTSecret == "" {
		errs = append(errs, errors.New("no JWT secret: set USERHOOK_JWT_SECRET or --jwt-secret"))
	}
	if *ttl <= 0 {
		errs = append(errs, errors.New("--ttl must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	tok, err := transport.SignToken(transport.TokenRequest{
		Secret: []byte(cfg.JWTSecret), Subject: *sub, TTL: *ttl, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
