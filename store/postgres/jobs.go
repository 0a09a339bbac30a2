package postgres

import "github.com/jackc/pgx/v5/pgxpool"

// Pool returns the store's connection pool, for the job queue (package
// jobs, over River, which speaks pgx). The store keeps owning it: Close
// closes it, so stop the queue first.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }
