package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	sourcepg "github.com/userhook/userhook/source/postgres"
	sourcesqlite "github.com/userhook/userhook/source/sqlite"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/userhook/userhook/apikey"
	apikeypg "github.com/userhook/userhook/apikey/postgres"
	deliverypg "github.com/userhook/userhook/delivery/postgres"
	deliverysqlite "github.com/userhook/userhook/delivery/sqlite"
	eventspg "github.com/userhook/userhook/eventstore/postgres"
	eventsqlite "github.com/userhook/userhook/eventstore/sqlite"
	"github.com/userhook/userhook/internal/migrate"
	"github.com/userhook/userhook/internal/postgresdb"
	"github.com/userhook/userhook/internal/sqlitedb"
	projpg "github.com/userhook/userhook/projection/postgres"
	projsqlite "github.com/userhook/userhook/projection/sqlite"
)

// schemaComponent is one component's tables: its name in the migration records and its migrations for each
// database.
type schemaComponent struct {
	name     string
	sqlite   fs.FS
	postgres fs.FS
}

// schemaComponents are every component that has tables, in the order the stores migrate them when
// openStorage opens them, which migrate up follows too: the read model comes before the webhooks because both
// create the checkpoints table and only the webhooks' migration says IF NOT EXISTS.
var schemaComponents = []schemaComponent{
	{eventsqlite.Component, eventsqlite.Migrations, eventspg.Migrations},
	{apikey.Component, apikey.SQLiteMigrations, apikeypg.Migrations},
	{projsqlite.Component, projsqlite.Migrations, projpg.Migrations},
	{deliverysqlite.Component, deliverysqlite.Migrations, deliverypg.Migrations},
	{sourcesqlite.Component, sourcesqlite.Migrations, sourcepg.Migrations},
}

// schemaDB is the configured database, as far as migrations go.
type schemaDB interface {
	MigrateUp(ctx context.Context, component string, migrations fs.FS) (migrate.Result, error)
	MigrationStatus(ctx context.Context, component string, migrations fs.FS) (migrate.Status, error)
	Close() error
}

// runMigrate is `userhook migrate status|up`.
//
// status prints, per component, the version the database is at, the latest this binary knows and the
// migrations pending, and changes nothing (on a database made before goose it reads schema_migrations); it
// fails when a component is newer than this binary. up applies the pending migrations, as every command that
// opens the database does anyway, and prints what it did; it is for operators who want the step explicit.
func runMigrate(ctx context.Context, cfg Config, action string, stdout io.Writer) error {
	if action != "status" && action != "up" {
		return usageError{fmt.Errorf("migrate: want status or up, not %q", action)}
	}
	if err := cfg.ValidateStorage(); err != nil {
		return err
	}
	db, err := openSchemaDB(ctx, cfg, action == "status")
	if err != nil {
		return err
	}
	defer db.Close()
	if action == "status" {
		return migrateStatus(ctx, db, cfg.IsPostgres(), stdout)
	}
	return migrateUp(ctx, db, cfg.IsPostgres(), stdout)
}

// openSchemaDB opens the database without opening its stores (which would migrate it). A migration may run
// long, so PostgreSQL statements get no timeout here. status does not create a SQLite file that is not there.
func openSchemaDB(ctx context.Context, cfg Config, mustExist bool) (schemaDB, error) {
	if cfg.IsPostgres() {
		db, err := postgresdb.Open(ctx, cfg.Database, 0)
		if err != nil {
			return nil, fmt.Errorf("cannot open the database %s: %w", redactDatabase(cfg.Database), err)
		}
		return db, nil
	}
	if mustExist {
		if _, err := os.Stat(cfg.Database); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("migrate status: there is no database at %s", cfg.Database)
		}
	}
	return sqlitedb.Open(cfg.Database)
}

func (c schemaComponent) migrations(postgres bool) fs.FS {
	if postgres {
		return c.postgres
	}
	return c.sqlite
}

func migrateStatus(ctx context.Context, db schemaDB, postgres bool, stdout io.Writer) error {
	var tooNew error
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tTABLE\tVERSION\tLATEST\tSTATE\tPENDING")
	for _, c := range schemaComponents {
		st, err := db.MigrationStatus(ctx, c.name, c.migrations(postgres))
		if err != nil {
			return err
		}
		state, pending := "up to date", "-"
		switch {
		case st.TooNew():
			state = "newer than this binary"
			if tooNew == nil {
				tooNew = &migrate.TooNewError{Component: st.Component, Version: st.Version, Latest: st.Latest}
			}
		case len(st.Pending) > 0:
			state = "pending"
			names := make([]string, len(st.Pending))
			for i, m := range st.Pending {
				names[i] = m.Name
			}
			pending = strings.Join(names, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", st.Component, cmp.Or(st.Table, "-"), st.Version, st.Latest, state, pending)
	}
	return errors.Join(tw.Flush(), tooNew)
}

func migrateUp(ctx context.Context, db schemaDB, postgres bool, stdout io.Writer) error {
	for _, c := range schemaComponents {
		res, err := db.MigrateUp(ctx, c.name, c.migrations(postgres))
		if len(res.Baselined) > 0 {
			vs := make([]string, len(res.Baselined))
			for i, v := range res.Baselined {
				vs[i] = strconv.FormatInt(v, 10)
			}
			noun := "version"
			if len(vs) > 1 {
				noun = "versions"
			}
			fmt.Fprintf(stdout, "%s: baselined %s %s from %s into %s\n", c.name, noun, strings.Join(vs, ", "),
				migrate.LegacyTable, migrate.Table(c.name))
		}
		for _, m := range res.Applied {
			fmt.Fprintf(stdout, "%s: applied %s in %s\n", c.name, m.Name, m.Duration.Round(100*time.Microsecond))
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: at version %d\n", c.name, res.Version)
	}
	return nil
}
