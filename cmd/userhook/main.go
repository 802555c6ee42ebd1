// Command userhook receives identity-provider user events, stores them in an event store, projects a users
// read model and fans events out to subscribed webhooks.
//
//	userhook serve [--dev]
//	userhook replay
//	userhook events [--stream USER_ID] [--from POSITION] [--follow]
//	userhook apikey create --name NAME --role ingest|read|admin
//	userhook apikey list [--json]
//	userhook apikey revoke ID
//	userhook source create --name NAME --provider PROVIDER [--secret SECRET]...
//	userhook source list [--json]
//	userhook source revoke ID
//	userhook token --sub SUBJECT [--ttl 1h]
//	userhook migrate status|up
//	userhook version
//	userhook completion bash|zsh
//
// The settings of a deployment (the database, the log level and every setting of serve) may also come from
// a USERHOOK_<FLAG> variable; a flag wins over the variable. A command's own flags (--name, --role, --dev,
// --sub, --ttl, ...) are flags only, so a variable left in an environment never changes what a command does.
// "userhook <command> --help" shows each flag with its variable and default.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"

	"github.com/alecthomas/kong"
)

func main() {
	// Libraries that log through the default logger write JSON lines too.
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "userhook:", err)
		os.Exit(exitCode(err))
	}
}

// usageError is a command line that could not be understood: exit status 2, as flag packages do; every
// other failure (a database that cannot be opened, a port in use, a setting that is not valid) exits 1.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// cli is the command line.
type cli struct {
	Help helpFlag `short:"h" help:"Show help for the command."`

	Serve      serveCmd      `cmd:"" help:"Run the HTTP server with its projection and delivery workers."`
	Replay     replayCmd     `cmd:"" help:"Rebuild the users read model from the event store."`
	Events     eventsCmd     `cmd:"" help:"Print stored events as JSON lines, in global order."`
	APIKey     apikeyCmd     `cmd:"" name:"apikey" help:"Manage API keys."`
	Source     sourceCmd     `cmd:"" name:"source" help:"Manage sources: identity providers' own webhooks."`
	Token      tokenCmd      `cmd:"" help:"Print an HS256 JWT signed with the configured secret."`
	Migrate    migrateCmd    `cmd:"" help:"Show or apply the database's schema migrations."`
	Version    versionCmd    `cmd:"" help:"Print the version, the commit and the Go version."`
	Completion completionCmd `cmd:"" help:"Print a shell completion script."`
	HelpCmd    helpCmd       `cmd:"" name:"help" hidden:"" help:"Show help for a command."`
}

// session is what a command runs with.
type session struct {
	ctx    context.Context
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

// run is the program without process globals, so tests can call it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	s := &session{ctx: ctx, getenv: getenv, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		s.stdout = stderr // the help is the error message
		_ = s.parseAndRun([]string{"--help"})
		return usageError{errors.New("no command given")}
	}
	return s.parseAndRun(args)
}

func (s *session) parseAndRun(args []string) error {
	parser, err := newParser(&cli{}, s.getenv, s.stdout, s.stderr)
	if err != nil {
		return err
	}
	k, err := parser.Parse(args)
	var bad settingError
	switch {
	case errors.Is(err, errHelpShown):
		return nil
	case errors.As(err, &bad):
		return bad // a variable that is not valid is a setting's fault, as one in a flag's place would be
	case err != nil:
		var perr *kong.ParseError
		if errors.As(err, &perr) && perr.Context != nil && perr.Context.Selected() != nil {
			return usageError{fmt.Errorf("%w (see %s --help)", err, perr.Context.Selected().FullPath())}
		}
		return usageError{fmt.Errorf("%w (see userhook --help)", err)}
	}
	return k.Run(s)
}

// newParser is the command line parser into grammar, with variables from getenv.
func newParser(grammar *cli, getenv func(string) string, stdout, stderr io.Writer) (*kong.Kong, error) {
	return kong.New(grammar,
		kong.Name("userhook"),
		kong.Description("userhook receives identity-provider user events, stores them in an event store, projects a "+
			"users read model and delivers the events to subscribed webhooks.\n\n"+
			"The settings of a deployment (the database, the log level, every flag of serve but --dev) may also be "+
			"given as USERHOOK_<FLAG> variables; a flag wins over its variable. A command's other flags are flags only. "+
			`"userhook <command> --help" lists a command's flags with their variables and defaults.`),
		kong.ExplicitGroups([]kong.Group{
			{Key: "auth", Title: "Authentication:"},
			{Key: "webhooks", Title: "Outbound webhooks:"},
			{Key: "server", Title: "Server:"},
		}),
		kong.Writers(stdout, stderr),
		kong.NoDefaultHelp(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, WrapUpperBound: 120}),
		kong.ValueFormatter(helpWithSetting),
		kong.Resolvers(envResolver(getenv)),
	)
}

// errHelpShown ends a parse after --help printed the help: the program then does nothing and succeeds.
var errHelpShown = errors.New("help shown")

// helpFlag prints the help of the command it follows; nothing runs.
type helpFlag bool

// IgnoreDefault says that the flag has no default to apply.
func (helpFlag) IgnoreDefault() {}

// BeforeReset prints the help, before the other flags are looked at.
func (helpFlag) BeforeReset(k *kong.Context) error {
	if err := k.PrintUsage(false); err != nil {
		return err
	}
	return errHelpShown
}

// helpCmd is `userhook help [COMMAND...]`, the same as `userhook [COMMAND...] --help`.
type helpCmd struct {
	Command []string `arg:"" optional:"" help:"The command to show help for."`
}

// Run shows the help.
func (c *helpCmd) Run(s *session) error { return s.parseAndRun(append(c.Command, "--help")) }

// envResolver gives a flag tagged envvar the value of that variable when the command line does not give it.
// An empty variable counts as unset.
func envResolver(getenv func(string) string) kong.Resolver {
	return kong.ResolverFunc(func(_ *kong.Context, _ *kong.Path, f *kong.Flag) (any, error) {
		name := f.Tag.Get("envvar")
		if name == "" {
			return nil, nil
		}
		v := getenv(name)
		if v == "" {
			return nil, nil
		}
		// Decoded here once, into a scratch value, so that a fault names the variable rather than the flag.
		scan := kong.ScanFromTokens(kong.Token{Type: kong.FlagValueToken, Value: v})
		if err := f.Mapper.Decode(&kong.DecodeContext{Value: f.Value, Scan: scan}, reflect.New(f.Target.Type()).Elem()); err != nil {
			return nil, settingError{fmt.Errorf("%s: %w", name, err)}
		}
		return v, nil
	})
}

// settingError is a USERHOOK_* variable whose value is not valid for its setting.
type settingError struct{ error }

func (e settingError) Unwrap() error { return e.error }

// helpWithSetting is a flag's help followed by its variable and its default, where it has them.
func helpWithSetting(v *kong.Value) string {
	var notes []string
	if env := v.Tag.Get("envvar"); env != "" {
		notes = append(notes, "$"+env)
	}
	if v.HasDefault && v.Default != "" {
		notes = append(notes, "default "+v.Default)
	}
	if len(notes) == 0 {
		return v.Help
	}
	return v.Help + " (" + strings.Join(notes, ", ") + ")"
}
