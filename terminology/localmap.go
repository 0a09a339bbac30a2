package terminology

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// LocalMapColumns is the header of a local-code map file, in order. The
// source_display and count columns are informational (filled by the
// unmapped-codes export) and ignored when loading.
var LocalMapColumns = []string{"connection", "source_system", "source_code", "source_display", "count", "target_system", "target_code", "target_display"}

// LocalMapRow is one row of a local-code map: a code a connection sends in
// its own system, and the standard code it means.
type LocalMapRow struct {
	Connection    string // connection name, or "*" for every connection
	SourceSystem  string
	SourceCode    string
	SourceDisplay string // informational
	Count         int    // informational: how often the export saw it
	TargetSystem  string // a standard system (LOINC, SNOMED CT, RxNorm, ...)
	TargetCode    string // empty in a template row, which is skipped
	TargetDisplay string
}

// Target is the standard coding a local code maps to.
type Target struct {
	System  string
	Code    string
	Display string
}

type localKey struct{ connection, system, code string }

type localState struct {
	entries map[localKey]Target
	mod     time.Time
	size    int64
}

// LocalMap is a per-connection local-code map read from a CSV file a person
// edits (columns LocalMapColumns; other columns are errors). It can be
// reloaded without a restart: call Reload (for example on SIGHUP), or run
// Watch to poll the file's modification time. A reload that fails keeps the
// previous map and reports the error. Lookups are lock-free and safe for
// concurrent use with reloads.
type LocalMap struct {
	path string
	mu   sync.Mutex // serialises reloads
	cur  atomic.Pointer[localState]
}

// OpenLocalMap reads the map file at path.
func OpenLocalMap(path string) (*LocalMap, error) {
	m := &LocalMap{path: path}
	if err := m.Reload(); err != nil {
		return nil, err
	}
	return m, nil
}

// NewLocalMap returns a map holding rows, not backed by a file (Reload is a
// no-op). Useful in tests and for maps built in code.
func NewLocalMap(rows []LocalMapRow) (*LocalMap, error) {
	st, err := buildLocal(rows)
	if err != nil {
		return nil, err
	}
	m := &LocalMap{}
	m.cur.Store(st)
	return m, nil
}

// Path returns the file the map is read from.
func (m *LocalMap) Path() string { return m.path }

// Len returns the number of mappings held.
func (m *LocalMap) Len() int { return len(m.cur.Load().entries) }

// Lookup returns the target of (connection, system, code), trying the
// connection's own rows first, then rows for every connection ("*"). system
// may be any known spelling of the system URI.
func (m *LocalMap) Lookup(connection, system, code string) (Target, bool) {
	if m == nil {
		return Target{}, false
	}
	st := m.cur.Load()
	if st == nil || len(st.entries) == 0 {
		return Target{}, false
	}
	sys := Canonical(system)
	if t, ok := st.entries[localKey{connection, sys, code}]; ok {
		return t, true
	}
	t, ok := st.entries[localKey{"*", sys, code}]
	return t, ok
}

// Reload re-reads the file. On error the previous map stays in use.
func (m *LocalMap) Reload() error {
	if m.path == "" {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reloadLocked()
}

func (m *LocalMap) reloadLocked() error {
	f, err := os.Open(m.path)
	if err != nil {
		return fmt.Errorf("reading local code map: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("reading local code map: %w", err)
	}
	rows, err := ParseLocalMap(f)
	if err != nil {
		return fmt.Errorf("reading local code map %s: %w", m.path, err)
	}
	st, err := buildLocal(rows)
	if err != nil {
		return fmt.Errorf("reading local code map %s: %w", m.path, err)
	}
	st.mod, st.size = fi.ModTime(), fi.Size()
	m.cur.Store(st)
	return nil
}

// ReloadIfChanged reloads the file when its modification time or size
// differs from the loaded one, and reports whether it reloaded.
func (m *LocalMap) ReloadIfChanged() (bool, error) {
	if m.path == "" {
		return false, nil
	}
	fi, err := os.Stat(m.path)
	if err != nil {
		return false, fmt.Errorf("checking local code map: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if st := m.cur.Load(); st != nil && fi.ModTime().Equal(st.mod) && fi.Size() == st.size {
		return false, nil
	}
	if err := m.reloadLocked(); err != nil {
		return false, err
	}
	return true, nil
}

// Watch polls the file every interval until ctx ends, reloading it when it
// changes; onErr (may be nil) receives reload errors, which never stop the
// watch. Run it in its own goroutine.
func (m *LocalMap) Watch(ctx context.Context, every time.Duration, onErr func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := m.ReloadIfChanged(); err != nil && onErr != nil {
				onErr(err)
			}
		}
	}
}

func buildLocal(rows []LocalMapRow) (*localState, error) {
	st := &localState{entries: make(map[localKey]Target, len(rows))}
	for i, r := range rows {
		if r.TargetCode == "" {
			continue // a template row not filled in yet
		}
		if r.Connection == "" || r.SourceSystem == "" || r.SourceCode == "" {
			return nil, fmt.Errorf("row %d: connection, source_system and source_code are required", i+1)
		}
		if !IsStandard(r.TargetSystem) {
			return nil, fmt.Errorf("row %d: target_system is not a standard code system", i+1)
		}
		k := localKey{r.Connection, Canonical(r.SourceSystem), r.SourceCode}
		if _, dup := st.entries[k]; dup {
			return nil, fmt.Errorf("row %d: source code mapped twice for one connection", i+1)
		}
		st.entries[k] = Target{System: Canonical(r.TargetSystem), Code: r.TargetCode, Display: r.TargetDisplay}
	}
	return st, nil
}

// ParseLocalMap reads local-code map rows from CSV with a header naming the
// columns (any order; connection, source_system, source_code, target_system
// and target_code are required; unknown columns are errors). Lines starting
// with '#' are comments.
func ParseLocalMap(r io.Reader) ([]LocalMapRow, error) {
	t, err := newCSVTable(r, ',', "connection", "source_system", "source_code", "target_system", "target_code")
	if err != nil {
		return nil, err
	}
	for col := range t.cols {
		if !contains(LocalMapColumns, col) {
			return nil, fmt.Errorf("unknown column %q (want %s)", col, strings.Join(LocalMapColumns, ", "))
		}
	}
	var out []LocalMapRow
	for {
		ok, err := t.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		row := LocalMapRow{
			Connection: t.get("connection"), SourceSystem: t.get("source_system"), SourceCode: t.get("source_code"),
			SourceDisplay: t.get("source_display"), TargetSystem: t.get("target_system"),
			TargetCode: t.get("target_code"), TargetDisplay: t.get("target_display"),
		}
		fmt.Sscan(t.get("count"), &row.Count)
		out = append(out, row)
	}
}

// WriteLocalMap writes rows in the local-code map format, header first. With
// target columns left empty this is the template a person fills in.
func WriteLocalMap(w io.Writer, rows []LocalMapRow) error {
	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	if err := cw.Write(LocalMapColumns); err != nil {
		return fmt.Errorf("writing local code map: %w", err)
	}
	for _, r := range rows {
		count := ""
		if r.Count > 0 {
			count = fmt.Sprint(r.Count)
		}
		if err := cw.Write([]string{r.Connection, r.SourceSystem, r.SourceCode, csvSafe(r.SourceDisplay), count,
			r.TargetSystem, r.TargetCode, csvSafe(r.TargetDisplay)}); err != nil {
			return fmt.Errorf("writing local code map: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("writing local code map: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// csvSafe defuses spreadsheet formula injection in free text: a cell starting
// with = + - @ gets a leading apostrophe.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@", rune(s[0])) {
		return "'" + s
	}
	return s
}

// ConnectionMaps routes lookups to the map of the looked-up connection, for
// configurations with one map file per connection; the map under "*", if
// any, is tried after it. Rows of a connection's file still name their
// connection (or "*"); rows naming another connection never match. Safe for
// concurrent use; build it once and do not modify it afterwards.
type ConnectionMaps map[string]*LocalMap

// Lookup implements the same lookup as LocalMap.Lookup.
func (c ConnectionMaps) Lookup(connection, system, code string) (Target, bool) {
	if m := c[connection]; m != nil {
		if t, ok := m.Lookup(connection, system, code); ok {
			return t, true
		}
	}
	if m := c["*"]; m != nil {
		return m.Lookup(connection, system, code)
	}
	return Target{}, false
}
