package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"ehrgate/store"
)

// Migrations are a backend's embedded schema migrations: the directory
// "migrations" of FS, numbered on their own, for one goose dialect.
type Migrations struct {
	FS      fs.FS
	Dialect goose.Dialect
	// SessionLock makes concurrent migrators (replicas starting at once)
	// wait for each other (PostgreSQL advisory lock). SQLite's migrations
	// run on its single writer connection.
	SessionLock bool
	// SQL is the backend's dialect, for the steps that follow the schema
	// migrations in Go (BackfillProvenanceTargets: bodies may be
	// compressed); nil skips them.
	SQL *Dialect
}

// Migrate applies the pending migrations to db. It refuses, changing
// nothing, a database with a migration newer than any it knows
// (store.ErrSchemaTooNew).
func (m Migrations) Migrate(ctx context.Context, db *sql.DB) error {
	p, err := m.provider(db)
	if err != nil {
		return err
	}
	if err := m.checkNotNewer(ctx, p); err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrating schema: %w", err)
	}
	if m.SQL != nil {
		if err := BackfillProvenanceTargets(ctx, db, m.SQL); err != nil {
			return fmt.Errorf("migrating data: %w", err)
		}
	}
	return nil
}

func (m Migrations) checkNotNewer(ctx context.Context, p *goose.Provider) error {
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	srcs := p.ListSources()
	if len(srcs) > 0 && v > srcs[len(srcs)-1].Version {
		return fmt.Errorf("schema version %d, this ehrgate knows up to %d: %w", v, srcs[len(srcs)-1].Version, store.ErrSchemaTooNew)
	}
	return nil
}

// Status lists the known migrations, applied or not, then any version the
// database has applied that this binary does not know.
func (m Migrations) Status(ctx context.Context, db *sql.DB) ([]store.Migration, error) {
	p, err := m.provider(db)
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading migration status: %w", err)
	}
	var out []store.Migration
	var last int64
	for _, s := range st {
		out = append(out, store.Migration{Version: s.Source.Version, Name: path.Base(s.Source.Path),
			Applied: s.State == goose.StateApplied, AppliedAt: s.AppliedAt})
		last = max(last, s.Source.Version)
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading schema version: %w", err)
	}
	if v > last {
		out = append(out, store.Migration{Version: v, Applied: true, Unknown: true})
	}
	return out, nil
}

// SchemaVersion returns the version of the last migration applied to db.
func (m Migrations) SchemaVersion(ctx context.Context, db *sql.DB) (int64, error) {
	p, err := m.provider(db)
	if err != nil {
		return 0, err
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading schema version: %w", err)
	}
	return v, nil
}

func (m Migrations) provider(db *sql.DB) (*goose.Provider, error) {
	sub, err := fs.Sub(m.FS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("loading migrations: %w", err)
	}
	var opts []goose.ProviderOption
	if m.SessionLock {
		l, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, fmt.Errorf("preparing the migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(l))
	}
	p, err := goose.NewProvider(m.Dialect, db, sub, opts...)
	if err != nil {
		return nil, fmt.Errorf("preparing migrations: %w", err)
	}
	return p, nil
}
