package sqlite

import "ehrgate/store"

// The token store (store.TokenStore) is the shared one (sqlstore.DB): its
// writes go through the group commit, whose transactions begin IMMEDIATE
// (the DSN's _txlock), so an UpdateToken excludes every other writer, in
// this process or another, for the short time its updater runs. Updaters
// must not do network I/O.

var _ store.TokenStore = (*Store)(nil)
