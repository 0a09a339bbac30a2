package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"ehrgate/store"
	"ehrgate/store/internal/sqlstore"
)

// WriteBatch implements store.BatchWriter: records, quarantined lines,
// deletions and the checkpoint of one bulk batch in one transaction (the
// shared sqlstore code, with this package's record paths).
//
// Records are upserted with the same semantics as PutResources (identical
// bytes change nothing; a new version or new bytes under an old versionId
// are kept beside the earlier ones) but through faster paths: multi-row
// statements prepared once per batch and, when no resource occurs twice in
// the batch, current pointers inserted before anything is looked up, so
// that only resources already stored are looked up (putUnique).
func (s *Store) WriteBatch(ctx context.Context, b store.Batch) (store.BatchResult, error) {
	if err := sqlstore.ValidateBatch(b); err != nil {
		return store.BatchResult{}, err
	}
	if err := s.bulkStmts.prepare(ctx); err != nil {
		return store.BatchResult{}, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.BatchResult{}, fmt.Errorf("starting batch: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	put := func(ctx context.Context, _ sqlstore.Querier, recs []store.Record) ([]store.Change, error) {
		if uniqueKeys(recs) {
			return putUniqueCached(ctx, &stmtCache{tx: tx, shared: &s.bulkStmts}, recs)
		}
		return putFast(ctx, tx, recs)
	}
	res, err := s.WriteBatchTx(ctx, s.stmts.In(tx), b, put)
	if err != nil {
		return store.BatchResult{}, err
	}
	if err := tx.Commit(); err != nil {
		return store.BatchResult{}, fmt.Errorf("committing batch: %w", err)
	}
	return res, nil
}

// putFast is the bulk upsert behind WriteBatch. Its semantics are those of
// PutResources applied to recs in order; it gets there with one lookup query
// per few hundred records and multi-row inserts instead of several
// statements per record.
func putFast(ctx context.Context, tx *sql.Tx, recs []store.Record) ([]store.Change, error) {
	type cur struct {
		version string
		hash    []byte
	}
	type item struct {
		rec     *store.Record
		hash    []byte
		version string
		dup     bool // same resource and version earlier in this batch: stored row by row
	}
	key := func(conn, typ, id string) string { return conn + "\x00" + typ + "\x00" + id }
	current := make(map[string]cur, len(recs))

	// Batched lookup of the current versions, per (connection, type).
	type group struct{ conn, typ string }
	ids := map[group][]any{}
	var order []group
	for i := range recs {
		rec := &recs[i]
		if rec.Connection == "" || rec.Type == "" || rec.ID == "" {
			return nil, fmt.Errorf("record %d: connection, type and id are required", i)
		}
		g := group{rec.Connection, rec.Type}
		if _, ok := ids[g]; !ok {
			order = append(order, g)
		}
		ids[g] = append(ids[g], rec.ID)
	}
	for _, g := range order {
		list := ids[g]
		for len(list) > 0 {
			n := min(len(list), lookupChunk)
			args := append([]any{g.conn, g.typ}, list[:n]...)
			rows, err := tx.QueryContext(ctx, `SELECT id, version_id, hash FROM resources WHERE connection=? AND type=? AND id IN (`+
				placeholders(n, 1)+`)`, args...)
			if err != nil {
				return nil, fmt.Errorf("looking up %s: %w", g.typ, err)
			}
			for rows.Next() {
				var id string
				var c cur
				if err := rows.Scan(&id, &c.version, &c.hash); err != nil {
					rows.Close()
					return nil, fmt.Errorf("looking up %s: %w", g.typ, err)
				}
				current[key(g.conn, g.typ, id)] = c
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, fmt.Errorf("looking up %s: %w", g.typ, err)
			}
			list = list[n:]
		}
	}

	changes := make([]store.Change, len(recs))
	var ins []item
	queued := map[string]bool{}
	for i := range recs {
		rec := &recs[i]
		hash := rec.RawHash()
		k := key(rec.Connection, rec.Type, rec.ID)
		c, ok := current[k]
		switch {
		case !ok:
			changes[i] = store.New
		case bytes.Equal(c.hash, hash):
			changes[i] = store.Unchanged
			continue
		default:
			changes[i] = store.Updated
		}
		version := store.StoredVersion(rec.VersionID, hash)
		current[k] = cur{version: version, hash: hash}
		dup := queued[k+"\x00"+version]
		queued[k+"\x00"+version] = true
		ins = append(ins, item{rec: rec, hash: hash, version: version, dup: dup})
	}
	if len(ins) == 0 {
		return changes, nil
	}

	// Version rows, many per statement. Rows not returned hit an existing
	// version row: same bytes (a resource back after a tombstone) or new
	// bytes under an old versionId, kept under a suffixed version.
	for start := 0; start < len(ins); start += insertChunk {
		part := ins[start:min(start+insertChunk, len(ins))]
		args := make([]any, 0, len(part)*11)
		rowsIn := 0
		for _, it := range part {
			if it.dup {
				continue
			}
			rowsIn++
			r := it.rec
			raw, norm := storedBodies(r)
			args = append(args, r.Connection, r.Type, r.ID, it.version, r.PatientID, it.hash, raw, nullBytes(norm),
				formatTime(r.LastUpdated), formatTime(r.FetchedAt), r.Source)
		}
		rows, err := tx.QueryContext(ctx, `INSERT INTO resource_versions
			(connection, type, id, version_id, patient_id, hash, raw, normalized, last_updated, fetched_at, source)
			VALUES `+placeholders(rowsIn, 11)+`
			ON CONFLICT (connection, type, id, version_id) DO NOTHING RETURNING connection, type, id, version_id`, args...)
		if err != nil {
			return nil, fmt.Errorf("storing versions: %w", err)
		}
		inserted := make(map[string]bool, len(part))
		for rows.Next() {
			var c, t, id, v string
			if err := rows.Scan(&c, &t, &id, &v); err != nil {
				rows.Close()
				return nil, fmt.Errorf("storing versions: %w", err)
			}
			inserted[key(c, t, id)+"\x00"+v] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("storing versions: %w", err)
		}
		for j := range part {
			it := &part[j]
			r := it.rec
			if !it.dup && inserted[key(r.Connection, r.Type, r.ID)+"\x00"+it.version] {
				continue
			}
			var oldHash []byte
			if err := tx.QueryRowContext(ctx, `SELECT hash FROM resource_versions WHERE connection=? AND type=? AND id=? AND version_id=?`,
				r.Connection, r.Type, r.ID, it.version).Scan(&oldHash); err != nil {
				return nil, fmt.Errorf("looking up version of %s/%s: %w", r.Type, r.ID, err)
			}
			if bytes.Equal(oldHash, it.hash) {
				continue
			}
			it.version = store.DisambiguatedVersion(it.version, it.hash)
			raw, norm := storedBodies(r)
			if _, err := tx.ExecContext(ctx, `INSERT INTO resource_versions
				(connection, type, id, version_id, patient_id, hash, raw, normalized, last_updated, fetched_at, source)
				VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (connection, type, id, version_id) DO NOTHING`,
				r.Connection, r.Type, r.ID, it.version, r.PatientID, it.hash, raw, nullBytes(norm),
				formatTime(r.LastUpdated), formatTime(r.FetchedAt), r.Source); err != nil {
				return nil, fmt.Errorf("storing %s/%s: %w", r.Type, r.ID, err)
			}
		}
		// Current pointers; a later row for the same resource wins, as in
		// sequential upserts.
		args = args[:0]
		for _, it := range part {
			r := it.rec
			args = append(args, r.Connection, r.Type, r.ID, it.version, it.hash, r.PatientID)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO resources (connection, type, id, version_id, hash, patient_id)
			VALUES `+placeholders(len(part), 6)+`
			ON CONFLICT (connection, type, id) DO UPDATE SET version_id=excluded.version_id, hash=excluded.hash,
			patient_id=excluded.patient_id`, args...); err != nil {
			return nil, fmt.Errorf("updating current resources: %w", err)
		}
		for _, it := range part {
			r := it.rec
			if r.Patient == nil {
				continue
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO patients (connection, id, search, birth_date) VALUES (?,?,?,?)
				ON CONFLICT (connection, id) DO UPDATE SET search=excluded.search, birth_date=excluded.birth_date`,
				r.Connection, r.ID, r.Patient.SearchText(), r.Patient.BirthDate); err != nil {
				return nil, fmt.Errorf("indexing patient %s: %w", r.ID, err)
			}
		}
	}
	return changes, nil
}

// Statement sizes of the bulk path (SQLite allows 32,766 parameters).
const (
	lookupChunk = 500
	insertChunk = 200
)

// constPlaceholders returns n groups of the form "(?1,...,?k,?,?)": the
// first k parameters are shared by every row (bound once), then width
// anonymous ones per row. SQLite numbers an anonymous parameter one past
// the largest so far, so the shared ones must come first in each group.
func constPlaceholders(n, k, width int) string {
	var g strings.Builder
	g.WriteByte('(')
	for i := 1; i <= k; i++ {
		fmt.Fprintf(&g, "?%d,", i)
	}
	g.WriteString(strings.TrimSuffix(strings.Repeat("?,", width), ","))
	g.WriteByte(')')
	return repeatGroup(g.String(), n)
}

// repeatGroup returns n copies of group separated by commas.
func repeatGroup(group string, n int) string {
	var b strings.Builder
	b.Grow(n * (len(group) + 1))
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(group)
	}
	return b.String()
}

// placeholders returns n groups of width "?" separated by commas:
// "(?,?),(?,?)" for width 2, "?,?" for width 1.
func placeholders(n, width int) string {
	if width == 1 {
		return repeatGroup("?", n)
	}
	return repeatGroup("("+strings.TrimSuffix(strings.Repeat("?,", width), ",")+")", n)
}

// BeginBulk tunes the store for a long bulk ingest and returns the function
// that restores the defaults: the writer connection gets a larger page
// cache meanwhile (the WAL is checkpointed beside the writer at all times:
// checkpoint.go), and at the end the WAL is truncated and the planner's
// statistics refreshed.
func (s *Store) BeginBulk(ctx context.Context) (end func(), err error) {
	if _, err := s.w.ExecContext(ctx, `PRAGMA cache_size=-16384`); err != nil {
		return nil, fmt.Errorf("tuning for bulk ingest: %w", err)
	}
	bg := context.WithoutCancel(ctx)
	return func() {
		_, _ = s.w.ExecContext(bg, `PRAGMA cache_size=-2000`)
		_, _ = s.w.ExecContext(bg, `PRAGMA wal_checkpoint(TRUNCATE)`)
		s.optimize(bg) // the tables have grown: fresh statistics for the planner
	}, nil
}

// Checkpoints, tombstones (deletions and TombstoneReader), the export
// state and ScanCurrent are the shared sqlstore code.

var (
	_ store.BulkStore       = (*Store)(nil)
	_ store.TombstoneReader = (*Store)(nil)
	_ store.CurrentScanner  = (*Store)(nil)
)

// sameSource reports whether every record of items has the connection,
// type and fetch time of the first, so that the statements of the bulk path
// can bind them once.
func sameSource[T any](items []T, rec func(T) *store.Record) bool {
	if len(items) == 0 {
		return false
	}
	first := rec(items[0])
	for _, it := range items[1:] {
		r := rec(it)
		if r.Connection != first.Connection || r.Type != first.Type || !r.FetchedAt.Equal(first.FetchedAt) {
			return false
		}
	}
	return true
}

// isConstraint reports whether err is SQLite refusing a row that breaks a
// PRIMARY KEY or UNIQUE constraint.
func isConstraint(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return true
	}
	return false
}

// uniqueKeys reports whether no resource occurs twice in recs (invalid
// records count as unique; putUnique rejects them).
func uniqueKeys(recs []store.Record) bool {
	seen := make(map[string]struct{}, len(recs))
	for i := range recs {
		r := &recs[i]
		k := r.Connection + "\x00" + r.Type + "\x00" + r.ID
		if _, dup := seen[k]; dup {
			return false
		}
		seen[k] = struct{}{}
	}
	return true
}

// Statement kinds of the bulk path, prepared once per shape and transaction.
const (
	kLookup    = iota // current version and hash of n ids of one (connection, type)
	kNewCur           // insert n current pointers; fails (and changes nothing) when one is present
	kUpsertCur        // insert or replace n current pointers
	kInsVer           // insert n version rows unless present
	kVerHash          // hash of one version row
	kPatient          // upsert one patient's search keys
	kNewCurC          // kNewCur for rows of one connection and type, bound once as ?1, ?2
	kInsVerC          // kInsVer for rows of one connection, type and fetch time, bound once as ?1-?3
)

type stmtKey struct{ kind, n int }

// stmtCache prepares each statement shape once per transaction: a batch of
// a few thousand records runs the same multi-row statements many times, and
// parsing a 200-row INSERT costs more than binding it.
//
// The shapes every batch uses (full chunks, single rows) are prepared once
// per store instead, on the writer connection, and only bound to each
// transaction: that saved about 3% of the writer's time on a 1 GB ingest.
type stmtCache struct {
	tx     *sql.Tx
	m      map[stmtKey]*sql.Stmt
	shared *sharedStmts // nil: everything per transaction
}

// sharedStmts are bulk statements prepared on the writer connection for the
// store's lifetime.
type sharedStmts struct {
	db *sql.DB
	mu sync.Mutex
	m  map[stmtKey]*sql.Stmt
}

// sharedShapes are the statement shapes prepared once per store.
var sharedShapes = []stmtKey{
	{kNewCurC, insertChunk}, {kInsVerC, insertChunk}, {kNewCur, insertChunk}, {kInsVer, insertChunk},
	{kUpsertCur, insertChunk}, {kLookup, insertChunk}, {kVerHash, 1}, {kInsVer, 1}, {kPatient, 1},
}

// prepare prepares the shared shapes unless done. It must run outside a
// transaction: the writer pool has a single connection, which a
// transaction holds.
func (s *sharedStmts) prepare(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m != nil {
		return nil
	}
	m := make(map[stmtKey]*sql.Stmt, len(sharedShapes))
	for _, k := range sharedShapes {
		q, err := bulkQuery(k.kind, k.n)
		if err == nil {
			m[k], err = s.db.PrepareContext(ctx, q)
		}
		if err != nil {
			for _, st := range m {
				if st != nil {
					st.Close()
				}
			}
			return fmt.Errorf("preparing bulk statement: %w", err)
		}
	}
	s.m = m
	return nil
}

// get returns the shared statement of k, or nil.
func (s *sharedStmts) get(k stmtKey) *sql.Stmt {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[k]
}

func (s *sharedStmts) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.m {
		st.Close()
	}
	s.m = nil
}

func (c *stmtCache) get(ctx context.Context, kind, n int) (*sql.Stmt, error) {
	k := stmtKey{kind, n}
	if st, ok := c.m[k]; ok {
		return st, nil
	}
	var st *sql.Stmt
	if parent := c.shared.get(k); parent != nil {
		st = c.tx.StmtContext(ctx, parent)
	} else {
		q, err := bulkQuery(kind, n)
		if err != nil {
			return nil, err
		}
		if st, err = c.tx.PrepareContext(ctx, q); err != nil {
			return nil, fmt.Errorf("preparing bulk statement: %w", err)
		}
	}
	if c.m == nil {
		c.m = map[stmtKey]*sql.Stmt{}
	}
	c.m[k] = st
	return st, nil
}

// bulkQuery is the SQL of statement kind for n rows.
func bulkQuery(kind, n int) (string, error) {
	var q string
	switch kind {
	case kLookup:
		q = `SELECT id, version_id, hash FROM resources WHERE connection=? AND type=? AND id IN (` + placeholders(n, 1) + `)`
	case kNewCur:
		q = `INSERT INTO resources (connection, type, id, version_id, hash, patient_id) VALUES ` + placeholders(n, 6)
	case kNewCurC:
		q = `INSERT INTO resources (connection, type, id, version_id, hash, patient_id) VALUES ` + constPlaceholders(n, 2, 4)
	case kInsVerC:
		q = `INSERT INTO resource_versions
			(connection, type, fetched_at, id, version_id, patient_id, hash, raw, normalized, last_updated, source)
			VALUES ` + constPlaceholders(n, 3, 8) + ` ON CONFLICT (connection, type, id, version_id) DO NOTHING`
	case kUpsertCur:
		q = `INSERT INTO resources (connection, type, id, version_id, hash, patient_id) VALUES ` + placeholders(n, 6) +
			` ON CONFLICT (connection, type, id) DO UPDATE SET version_id=excluded.version_id, hash=excluded.hash,
			patient_id=excluded.patient_id`
	case kInsVer:
		q = `INSERT INTO resource_versions
			(connection, type, id, version_id, patient_id, hash, raw, normalized, last_updated, fetched_at, source)
			VALUES ` + placeholders(n, 11) + ` ON CONFLICT (connection, type, id, version_id) DO NOTHING`
	case kVerHash:
		q = `SELECT hash FROM resource_versions WHERE connection=? AND type=? AND id=? AND version_id=?`
	case kPatient:
		q = `INSERT INTO patients (connection, id, search, birth_date) VALUES (?,?,?,?)
			ON CONFLICT (connection, id) DO UPDATE SET search=excluded.search, birth_date=excluded.birth_date`
	default:
		return "", fmt.Errorf("unknown statement kind %d", kind)
	}
	return q, nil
}

func (c *stmtCache) close() {
	for _, st := range c.m {
		st.Close()
	}
}

// putUnique is putFast for a batch in which every resource occurs once (the
// usual bulk file), so the order of its records does not matter. It avoids
// the lookup of current versions where it would find nothing: when the
// batch's first resource is not stored yet (a first ingest, or new
// resources), each chunk first inserts the current pointers with ON
// CONFLICT DO NOTHING; the rows inserted are new resources, and only the
// others are looked up. Otherwise (a re-import) it looks up first, as
// putFast does. Either way the outcome is that of PutResources.
func putUnique(ctx context.Context, tx *sql.Tx, recs []store.Record) ([]store.Change, error) {
	return putUniqueCached(ctx, &stmtCache{tx: tx}, recs)
}

// putUniqueCached is putUnique with the statements of sc.
func putUniqueCached(ctx context.Context, sc *stmtCache, recs []store.Record) ([]store.Change, error) {
	tx := sc.tx
	type row struct {
		rec     *store.Record
		hash    []byte
		version string
		curSet  bool // the resources row already points at version
	}
	rows := make([]row, len(recs))
	for i := range recs {
		r := &recs[i]
		if r.Connection == "" || r.Type == "" || r.ID == "" {
			return nil, fmt.Errorf("record %d: connection, type and id are required", i)
		}
		rows[i] = row{rec: r, hash: r.RawHash()}
		rows[i].version = store.StoredVersion(r.VersionID, rows[i].hash)
	}
	defer sc.close()

	first := &recs[0]
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM resources WHERE connection=? AND type=? AND id=?`,
		first.Connection, first.Type, first.ID).Scan(&one)
	insertFirst := errors.Is(err, sql.ErrNoRows)
	if err != nil && !insertFirst {
		return nil, fmt.Errorf("looking up %s/%s: %w", first.Type, first.ID, err)
	}

	changes := make([]store.Change, len(recs))
	var args []any
	for start := 0; start < len(rows); start += insertChunk {
		part := rows[start:min(start+insertChunk, len(rows))]
		ch := changes[start : start+len(part)]
		for i := range ch {
			ch[i] = store.Unchanged
		}

		// Which resources are new: inserted here, or not found below. The
		// insert fails as a whole (SQLite backs out the statement, the
		// transaction goes on) when one of them is stored already; then
		// this chunk and the rest of the batch look up first.
		lookup := make([]int, 0, len(part))
		if insertFirst {
			same := sameSource(part, func(it row) *store.Record { return it.rec })
			kind := kNewCur
			args = args[:0]
			if same {
				kind = kNewCurC
				args = append(args, part[0].rec.Connection, part[0].rec.Type)
			}
			for _, it := range part {
				r := it.rec
				if !same {
					args = append(args, r.Connection, r.Type)
				}
				args = append(args, r.ID, it.version, it.hash, r.PatientID)
			}
			st, err := sc.get(ctx, kind, len(part))
			if err != nil {
				return nil, err
			}
			_, err = st.ExecContext(ctx, args...)
			switch {
			case err == nil:
				for i := range part {
					ch[i] = store.New
					part[i].curSet = true
				}
			case isConstraint(err):
				insertFirst = false
			default:
				return nil, fmt.Errorf("storing current resources: %w", err)
			}
		}
		if !insertFirst {
			for i := range part {
				lookup = append(lookup, i)
			}
		}

		// Current versions of the others, per (connection, type).
		for len(lookup) > 0 {
			g := part[lookup[0]].rec
			var group, rest []int
			args = append(args[:0], g.Connection, g.Type)
			for _, i := range lookup {
				if r := part[i].rec; r.Connection == g.Connection && r.Type == g.Type {
					group = append(group, i)
					args = append(args, r.ID)
				} else {
					rest = append(rest, i)
				}
			}
			lookup = rest
			st, err := sc.get(ctx, kLookup, len(group))
			if err != nil {
				return nil, err
			}
			res, err := st.QueryContext(ctx, args...)
			if err != nil {
				return nil, fmt.Errorf("looking up %s: %w", g.Type, err)
			}
			found := make(map[string][]byte, len(group))
			for res.Next() {
				var id, version string
				var hash []byte
				if err := res.Scan(&id, &version, &hash); err != nil {
					res.Close()
					return nil, fmt.Errorf("looking up %s: %w", g.Type, err)
				}
				found[id] = hash
			}
			res.Close()
			if err := res.Err(); err != nil {
				return nil, fmt.Errorf("looking up %s: %w", g.Type, err)
			}
			for _, i := range group {
				h, ok := found[part[i].rec.ID]
				switch {
				case !ok:
					ch[i] = store.New
				case bytes.Equal(h, part[i].hash):
					ch[i] = store.Unchanged
				default:
					ch[i] = store.Updated
				}
			}
		}

		// Version rows of the new and updated resources. A row that was
		// already there (a resource back after a tombstone, or new bytes
		// under an old versionId) leaves the count short; then each row's
		// stored hash is compared and different bytes get a suffixed
		// version, as in PutResources.
		var write []int
		for i := range part {
			if ch[i] != store.Unchanged {
				write = append(write, i)
			}
		}
		if len(write) == 0 {
			continue
		}
		kind := kInsVer
		args = args[:0]
		same := sameSource(write, func(i int) *store.Record { return part[i].rec })
		if same {
			r := part[write[0]].rec
			kind = kInsVerC
			args = append(args, r.Connection, r.Type, formatTime(r.FetchedAt))
		}
		for _, i := range write {
			it := &part[i]
			r := it.rec
			raw, norm := storedBodies(r)
			if same {
				args = append(args, r.ID, it.version, r.PatientID, it.hash, raw, nullBytes(norm),
					formatTime(r.LastUpdated), r.Source)
				continue
			}
			args = append(args, r.Connection, r.Type, r.ID, it.version, r.PatientID, it.hash, raw, nullBytes(norm),
				formatTime(r.LastUpdated), formatTime(r.FetchedAt), r.Source)
		}
		st, err := sc.get(ctx, kind, len(write))
		if err != nil {
			return nil, err
		}
		res, err := st.ExecContext(ctx, args...)
		if err != nil {
			return nil, fmt.Errorf("storing versions: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, fmt.Errorf("storing versions: %w", err)
		}
		if int(n) != len(write) {
			verHash, err := sc.get(ctx, kVerHash, 1)
			if err != nil {
				return nil, err
			}
			insVer, err := sc.get(ctx, kInsVer, 1)
			if err != nil {
				return nil, err
			}
			for _, i := range write {
				it := &part[i]
				r := it.rec
				var stored []byte
				if err := verHash.QueryRowContext(ctx, r.Connection, r.Type, r.ID, it.version).Scan(&stored); err != nil {
					return nil, fmt.Errorf("looking up version of %s/%s: %w", r.Type, r.ID, err)
				}
				if bytes.Equal(stored, it.hash) {
					continue
				}
				it.version = store.DisambiguatedVersion(it.version, it.hash)
				it.curSet = false
				raw, norm := storedBodies(r)
				if _, err := insVer.ExecContext(ctx, r.Connection, r.Type, r.ID, it.version, r.PatientID, it.hash, raw,
					nullBytes(norm), formatTime(r.LastUpdated), formatTime(r.FetchedAt), r.Source); err != nil {
					return nil, fmt.Errorf("storing %s/%s: %w", r.Type, r.ID, err)
				}
			}
		}

		// Current pointers not yet written (or written with a version that
		// got a suffix), then patient search keys.
		args = args[:0]
		m := 0
		for _, i := range write {
			it := &part[i]
			if it.curSet {
				continue
			}
			m++
			r := it.rec
			args = append(args, r.Connection, r.Type, r.ID, it.version, it.hash, r.PatientID)
		}
		if m > 0 {
			st, err := sc.get(ctx, kUpsertCur, m)
			if err != nil {
				return nil, err
			}
			if _, err := st.ExecContext(ctx, args...); err != nil {
				return nil, fmt.Errorf("updating current resources: %w", err)
			}
		}
		for _, i := range write {
			r := part[i].rec
			if r.Patient == nil {
				continue
			}
			st, err := sc.get(ctx, kPatient, 1)
			if err != nil {
				return nil, err
			}
			if _, err := st.ExecContext(ctx, r.Connection, r.ID, r.Patient.SearchText(), r.Patient.BirthDate); err != nil {
				return nil, fmt.Errorf("indexing patient %s: %w", r.ID, err)
			}
		}
	}
	return changes, nil
}
