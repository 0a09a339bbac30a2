package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"ehrgate/store/sqlite"
)

// openExistingStore opens the store for a read-only command (stats,
// quality): it never creates a store, a data directory or a key, so a
// missing or mistyped --data is an error (exit 1) instead of an empty
// report over a database it just created.
func (a *app) openExistingStore(ctx context.Context) (*sqlite.Store, error) {
	path := filepath.Join(a.cfg.Data, sqlite.FileName)
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no ehrgate store in %s: check --data (sync, serve and demo create one)", a.cfg.Data)
		}
		return nil, fmt.Errorf("opening the store in %s: %w", a.cfg.Data, err)
	}
	st, err := sqlite.OpenDir(ctx, a.cfg.Data)
	if err != nil {
		return nil, fmt.Errorf("opening the store in %s: %w", a.cfg.Data, err)
	}
	return st, nil
}
