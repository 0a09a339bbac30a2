package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"ehrgate/store"
)

// The Provenance-by-target index (table provenance_targets): one row per
// target of each current Provenance, written in the transaction that
// writes the Provenance, by every record path (PutResourcesTx and
// WriteBatchTx call indexProvenance after their records), and removed with
// its Provenance (deleteTx).

// provenanceChunk is how many target ids one lookup statement names.
const provenanceChunk = 500

// indexProvenance re-indexes the targets of the Provenance among recs
// that changed (changes[i] for recs[i]): after a call the current version
// of a resource is its last record in recs, so that one is read.
func (db *DB) indexProvenance(ctx context.Context, tx Querier, recs []store.Record, changes []store.Change) error {
	var last map[ResourceKey]int
	changed := map[ResourceKey]bool{}
	for i := range recs {
		if recs[i].Type != "Provenance" {
			continue
		}
		if last == nil {
			last = map[ResourceKey]int{}
		}
		k := ResourceKey{recs[i].Connection, recs[i].Type, recs[i].ID}
		last[k] = i
		changed[k] = changed[k] || i >= len(changes) || changes[i] != store.Unchanged
	}
	keys := make([]ResourceKey, 0, len(last))
	for k := range last {
		if changed[k] {
			keys = append(keys, k)
		}
	}
	SortKeys(keys)
	for _, k := range keys {
		rec := &recs[last[k]]
		raw := rec.Raw
		if raw == nil && rec.Encoded != nil {
			var err error
			if raw, err = db.Dialect.unpack(rec.Encoded.Raw); err != nil {
				return fmt.Errorf("indexing Provenance/%s: %w", rec.ID, err)
			}
		}
		if err := db.putProvenanceTargets(ctx, tx, rec.Connection, rec.ID, raw, rec.LastUpdated, rec.FetchedAt); err != nil {
			return err
		}
	}
	return nil
}

// putProvenanceTargets replaces the indexed targets of one Provenance with
// those of raw. A Provenance whose JSON cannot be read (stores accept any
// bytes) has no targets.
func (db *DB) putProvenanceTargets(ctx context.Context, tx Querier, conn, id string, raw []byte, lastUpdated, fetched time.Time) error {
	if err := db.unindexProvenance(ctx, tx, conn, id); err != nil {
		return err
	}
	targets, recorded, err := store.ProvenanceTargets(raw)
	if err != nil || len(targets) == 0 {
		return nil
	}
	for _, t := range []time.Time{lastUpdated, fetched, time.Unix(0, 0)} {
		if recorded.IsZero() {
			recorded = t
		}
	}
	at := db.Dialect.instant(recorded)
	for part := range slices.Chunk(targets, provenanceChunk) {
		args := make([]any, 0, 5*len(part))
		for _, t := range part {
			args = append(args, conn, t.Type, t.ID, id, at)
		}
		if _, err := db.exec(ctx, tx, `INSERT INTO provenance_targets (connection, target_type, target_id, provenance_id, recorded)
			VALUES `+valueRows(len(part), 5)+` ON CONFLICT DO NOTHING`, args...); err != nil {
			return fmt.Errorf("indexing Provenance/%s: %w", id, err)
		}
	}
	return nil
}

// unindexProvenance removes one Provenance's targets from the index.
func (db *DB) unindexProvenance(ctx context.Context, tx Querier, conn, id string) error {
	if _, err := db.exec(ctx, tx, `DELETE FROM provenance_targets WHERE connection=? AND provenance_id=?`, conn, id); err != nil {
		return fmt.Errorf("unindexing Provenance/%s: %w", id, err)
	}
	return nil
}

// ProvenanceFor implements store.ProvenanceFinder.
func (db *DB) ProvenanceFor(ctx context.Context, q store.ProvenanceQuery) ([]store.Record, error) {
	sel := selectRecord
	if q.RawOnly {
		sel = selectRawRecord
	}
	ids := slices.Clone(q.IDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var out []store.Record
	seen := map[string]bool{}
	for part := range slices.Chunk(ids, provenanceChunk) {
		// The list is padded (with its last id) to one of a few lengths,
		// so that the read statement cache holds a few queries, not one
		// per length.
		n := paddedLen(len(part))
		var targets string
		if q.Latest {
			// Each target's newest: the greatest (recorded, provenance_id).
			targets = `SELECT x.provenance_id FROM (SELECT t.provenance_id, ROW_NUMBER() OVER
				(PARTITION BY t.target_id ORDER BY t.recorded DESC, t.provenance_id DESC) AS n
				FROM provenance_targets t
				WHERE t.connection=? AND t.target_type=? AND t.target_id IN (` + placeholderList(n) + `)) x
				WHERE x.n = 1`
		} else {
			targets = `SELECT t.provenance_id FROM provenance_targets t
				WHERE t.connection=? AND t.target_type=? AND t.target_id IN (` + placeholderList(n) + `)`
		}
		args := make([]any, 0, 3+n)
		args = append(args, q.Connection, q.Connection, q.Type)
		for i := range n {
			args = append(args, part[min(i, len(part)-1)])
		}
		recs, err := db.queryRecords(ctx, sel+` WHERE c.connection=? AND c.type='Provenance' AND c.id IN (`+targets+`) ORDER BY c.id`, args...)
		if err != nil {
			return nil, fmt.Errorf("finding the Provenance of %s resources: %w", q.Type, err)
		}
		for _, r := range recs {
			if !seen[r.ID] {
				seen[r.ID] = true
				out = append(out, r)
			}
		}
	}
	if len(ids) > provenanceChunk {
		slices.SortFunc(out, func(a, b store.Record) int { return strings.Compare(a.ID, b.ID) })
	}
	return out, nil
}

// paddedLen is the length an IN list of n ids is padded to.
func paddedLen(n int) int {
	for _, l := range []int{1, 8, 64} {
		if n <= l {
			return l
		}
	}
	return provenanceChunk
}

// placeholderList returns n comma-separated placeholders: "?,?,?".
func placeholderList(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// BackfillProvenanceTargets indexes the Provenance stored before the index
// existed, once: migration provenance_targets leaves a row in
// provenance_targets_backfill, and the run that indexes everything deletes
// it in the same transaction (a concurrent run waits for that row, then
// finds it gone and does nothing). Migrations.Migrate calls it.
func BackfillProvenanceTargets(ctx context.Context, db *sql.DB, d *Dialect) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("indexing stored Provenance: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	res, err := tx.ExecContext(ctx, `DELETE FROM provenance_targets_backfill`)
	if err != nil {
		return fmt.Errorf("indexing stored Provenance: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err
	}
	rows, err := tx.QueryContext(ctx, `SELECT v.connection, v.id, v.raw, v.last_updated, v.fetched_at
		FROM resources c JOIN resource_versions v
		ON v.connection=c.connection AND v.type=c.type AND v.id=c.id AND v.version_id=c.version_id
		WHERE c.type='Provenance'`)
	if err != nil {
		return fmt.Errorf("indexing stored Provenance: %w", err)
	}
	type prov struct {
		conn, id    string
		raw         []byte
		lu, fetched time.Time
	}
	var all []prov
	for rows.Next() {
		var p prov
		if err := rows.Scan(&p.conn, &p.id, &p.raw, TimeDest(&p.lu), TimeDest(&p.fetched)); err != nil {
			rows.Close()
			return fmt.Errorf("indexing stored Provenance: %w", err)
		}
		if p.raw, err = d.unpack(p.raw); err != nil {
			rows.Close()
			return fmt.Errorf("indexing stored Provenance/%s: %w", p.id, err)
		}
		all = append(all, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("indexing stored Provenance: %w", err)
	}
	w := &DB{Dialect: d}
	for _, p := range all {
		if err := w.putProvenanceTargets(ctx, tx, p.conn, p.id, p.raw, p.lu, p.fetched); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("indexing stored Provenance: %w", err)
	}
	return nil
}

var _ store.ProvenanceFinder = (*DB)(nil)
