package main

import (
	"context"
	"errors"
	"github.com/userhook/userhook/source"
	sourcesqlite "github.com/userhook/userhook/source/sqlite"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/userhook/userhook/apikey"
	"github.com/userhook/userhook/delivery"
	deliverysqlite "github.com/userhook/userhook/delivery/sqlite"
	"github.com/userhook/userhook/eventstore"
	"github.com/userhook/userhook/eventstore/sqlite"
	"github.com/userhook/userhook/internal/sqlitedb"
	"github.com/userhook/userhook/projection"
	projsqlite "github.com/userhook/userhook/projection/sqlite"
)

// storage is what lives in the database, whichever it is.
type storage struct {
	events eventstore.Store
	keys   apikey.Store
	reads  projection.ReadModel
	hooks  delivery.Store
	// sources are the identity providers' own webhooks.
	sources source.Store
}

// close stops the event store, which commits every queued append first, then closes db, the database it
// lives in.
func (s *storage) close(db io.Closer) error {
	var errs []error
	if s.events != nil {
		errs = append(errs, s.events.Close())
	}
	return errors.Join(append(errs, db.Close())...)
}

// A backend is the database userhook runs on, chosen once by openBackend from the database setting: an
// embedded SQLite file, which one serve process owns, or a PostgreSQL database that several instances share.
// Everything that differs between the two is here; the rest of the program asks, and never looks at the URL.
type backend interface {
	// Storage is what lives in the database.
	Storage() *storage
	// Peers is how this instance works beside the others that share the database; nil when there can be
	// none (the embedded file), and then this process always leads the relay, its read model follows its own
	// projection alone, and its command service may decide from states cached in memory.
	Peers() peers
	// DevEnvFile is where serve --dev writes its credentials as shell variables for a second terminal, empty
	// for nowhere.
	DevEnvFile() string
	// StoreTimeout bounds the store calls of a request, 0 for no bound.
	StoreTimeout() time.Duration
	// Close stops the event store (which commits every queued append first) and closes the database.
	Close() error
}

// peers coordinates the instances that share one database.
type peers interface {
	// Lead blocks until this instance leads the relay, and returns a context that ends when it no longer
	// does (stream.PipelineConfig.Lead).
	Lead(ctx context.Context) (context.Context, error)
	// Follow advances tracker from the read-model commits of every instance (the read model announces each
	// of its commits in the commit itself) until stop is called.
	Follow(ctx context.Context, tracker *projection.Tracker, log *slog.Logger) (stop func())
}

// openBackend opens the configured database, creating and migrating it as needed.
func openBackend(ctx context.Context, cfg Config) (backend, error) {
	if err := cfg.ValidateStorage(); err != nil {
		return nil, err
	}
	// A failed open returns a nil backend, not a nil pointer in a non-nil interface.
	if cfg.IsPostgres() {
		pg, err := openPostgres(ctx, cfg.Database, cfg.DatabaseTimeout)
		if err != nil {
			return nil, err
		}
		return pg, nil
	}
	b, err := openSQLite(ctx, cfg.Database)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// sqliteBackend is the embedded database: one file, one serve process.
type sqliteBackend struct {
	storage
	db   *sqlitedb.DB
	path string
}

func openSQLite(ctx context.Context, path string) (_ *sqliteBackend, err error) {
	b := &sqliteBackend{path: path}
	defer func() {
		if err != nil {
			_ = b.Close()
		}
	}()
	if b.db, err = sqlitedb.Open(path); err != nil {
		return nil, err
	}
	events, err := sqlite.New(ctx, b.db)
	if err != nil {
		return nil, err
	}
	b.events = events // only once it is one: a nil *sqlite.Store in the interface would not be nil to Close
	if b.keys, err = apikey.NewSQLiteStore(ctx, b.db); err != nil {
		return nil, err
	}
	if b.reads, err = projsqlite.New(ctx, b.db); err != nil {
		return nil, err
	}
	if b.hooks, err = deliverysqlite.New(ctx, b.db); err != nil {
		return nil, err
	}
	if b.sources, err = sourcesqlite.New(ctx, b.db); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *sqliteBackend) Storage() *storage { return &b.storage }

func (b *sqliteBackend) Peers() peers { return nil }

// DevEnvFile is beside the database, so that `. ./data/dev.env` works from where `make run` ran.
func (b *sqliteBackend) DevEnvFile() string { return filepath.Join(filepath.Dir(b.path), "dev.env") }

// StoreTimeout is none: a local file has no network to stall on.
func (b *sqliteBackend) StoreTimeout() time.Duration { return 0 }

func (b *sqliteBackend) Close() error {
	if b.db == nil {
		return nil
	}
	return b.storage.close(b.db)
}
