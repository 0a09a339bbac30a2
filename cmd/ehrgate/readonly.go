package main

import (
	"context"

	"ehrgate/store"
)

// openExistingStore opens the store for a read-only command (stats,
// quality, status): it never creates a store, a data directory or a key, so
// a missing or mistyped --store or --data is an error (exit 1) instead of
// an empty report over a database it just created.
func (a *app) openExistingStore(ctx context.Context) (store.Backend, error) {
	return a.openStore(ctx, store.OpenOptions{MustExist: true})
}
