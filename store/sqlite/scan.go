package sqlite

import "ehrgate/store"

// Paged scans and normalized rewrites are the shared ones (sqlstore.DB):
// keyset paging over the resources table's primary key, and rewrites
// through the group commit (compressed like every stored body).

// Interface guards.
var (
	_ store.PagedScanner       = (*Store)(nil)
	_ store.NormalizedRewriter = (*Store)(nil)
)
