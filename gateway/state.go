package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"ehrgate/dashboard"
	"ehrgate/ingest"
	"ehrgate/probe"
	"ehrgate/refresh"
	"ehrgate/store"
)

// ConnectionState is what the gateway remembers about a connection between
// runs, in the store (store.DocConnectionState): where it is, what it
// turned out to be and how the last sync and bulk exports went. It holds
// no secrets and no patient data.
type ConnectionState struct {
	Name     string           `json:"name"`
	BaseURL  string           `json:"base_url"`
	Auth     string           `json:"auth"`
	Vendor   string           `json:"vendor"` // e.g. "epic November 2025 (detected, confidence 1.00)"
	LastSync time.Time        `json:"last_sync,omitzero"`
	Summary  *refresh.Summary `json:"summary,omitempty"`
	Error    string           `json:"error,omitempty"` // user-safe state of the last sync
	// NotGranted lists the resource types the EHR did not grant ehrgate's
	// access token (scopes narrower than requested), as of ScopesCheckedAt
	// (the last sync or bulk export that obtained a token).
	NotGranted      []string  `json:"not_granted,omitempty"`
	ScopesCheckedAt time.Time `json:"scopes_checked_at,omitzero"`
	// BulkExports is the outcome of the last `bulk export` of each scope
	// into the store.
	BulkExports map[string]*BulkOutcome `json:"bulk_exports,omitempty"`
	// Running marks the runs under way ("sync", "bulk export system"): set
	// when one starts, removed when it ends, so a mark left behind by a
	// process that died says the run was interrupted.
	Running map[string]*RunMark `json:"running,omitempty"`
}

// RunMark is a run under way: since when, in which process.
type RunMark struct {
	Since time.Time `json:"since"`
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
}

// Alive reports whether the marked process still runs: true or false when
// it ran on this host, unknown (ok false) on another.
func (m RunMark) Alive() (alive, ok bool) {
	host, _ := os.Hostname()
	if m.Host != host || m.PID <= 0 {
		return false, false
	}
	p, err := os.FindProcess(m.PID)
	if err != nil {
		return false, true
	}
	return p.Signal(syscall.Signal(0)) == nil, true
}

// markRunning records that a run named what starts on conn and returns
// the func that removes the mark when it ends; a run ended by ctx keeps
// its mark, which then says it was interrupted.
func (g *Gateway) markRunning(ctx context.Context, conn, what string) func() {
	host, _ := os.Hostname()
	mark := &RunMark{Since: time.Now().UTC(), Host: host, PID: os.Getpid()}
	err := UpdateConnectionState(ctx, g.store, conn, func(st *ConnectionState) {
		if st.Running == nil {
			st.Running = map[string]*RunMark{}
		}
		st.Running[what] = mark
	})
	if err != nil {
		g.log.Warn("could not save connection state", "connection", conn, "error", err)
	}
	return func() {
		if ctx.Err() != nil {
			return
		}
		err := UpdateConnectionState(ctx, g.store, conn, func(st *ConnectionState) {
			if cur := st.Running[what]; cur != nil && *cur == *mark {
				delete(st.Running, what)
			}
		})
		if err != nil {
			g.log.Warn("could not save connection state", "connection", conn, "error", err)
		}
	}
}

// BulkOutcome is how a connection's last bulk export of a scope went.
type BulkOutcome struct {
	At              time.Time          `json:"at"`
	TransactionTime time.Time          `json:"transaction_time,omitzero"`
	Complete        bool               `json:"complete"`
	Incomplete      []ingest.TypeIssue `json:"incomplete,omitempty"`
	Error           string             `json:"error,omitempty"` // user-safe: the export could not run
}

// UpdateConnectionState applies fn to a connection's saved state (empty
// when none) and saves the result, atomically with respect to other
// updates in any process.
func UpdateConnectionState(ctx context.Context, docs store.Documents, name string, fn func(st *ConnectionState)) error {
	return docs.UpdateDocument(ctx, store.DocConnectionState, name, func(old []byte) ([]byte, error) {
		var st ConnectionState
		if old != nil {
			if err := json.Unmarshal(old, &st); err != nil {
				st = ConnectionState{} // unreadable: start over rather than fail every sync
			}
		}
		st.Name = name
		fn(&st)
		return json.Marshal(st)
	})
}

// LoadConnectionState returns a connection's saved state; ok is false when
// there is none.
func LoadConnectionState(ctx context.Context, docs store.Documents, name string) (st ConnectionState, ok bool, err error) {
	d, err := docs.GetDocument(ctx, store.DocConnectionState, name)
	if errors.Is(err, store.ErrNotFound) {
		return st, false, nil
	}
	if err != nil {
		return st, false, err
	}
	if err := json.Unmarshal(d.Body, &st); err != nil {
		return st, false, fmt.Errorf("decoding the state of connection %s: %w", name, err)
	}
	return st, true, nil
}

// ListConnectionStates returns the names of connections with saved state.
func ListConnectionStates(ctx context.Context, docs store.Documents) ([]string, error) {
	return docs.ListDocuments(ctx, store.DocConnectionState)
}

// RecordBulkOutcome remembers how the export of a scope on a connection
// went, for `ehrgate status` and the dashboard.
func RecordBulkOutcome(ctx context.Context, docs store.Documents, conn string, sum ingest.ExportSummary, err error) error {
	o := &BulkOutcome{At: time.Now().UTC(), TransactionTime: sum.TransactionTime, Complete: err == nil && sum.Complete,
		Incomplete: sum.Incomplete}
	if err != nil {
		o.Error = "the export could not run; see the logs"
	}
	return UpdateConnectionState(ctx, docs, conn, func(st *ConnectionState) {
		if st.BulkExports == nil {
			st.BulkExports = map[string]*BulkOutcome{}
		}
		st.BulkExports[sum.Scope] = o
	})
}

// withSavedState adds what the saved state knows (granted scopes, bulk
// exports) to a dashboard status.
func withSavedState(s dashboard.ConnectionStatus, saved ConnectionState) dashboard.ConnectionStatus {
	if saved.ScopesCheckedAt.After(s.ScopesCheckedAt) {
		s.NotGranted, s.ScopesCheckedAt = saved.NotGranted, saved.ScopesCheckedAt
	}
	s.BulkExports = nil
	for _, scope := range slices.Sorted(maps.Keys(saved.BulkExports)) {
		b := saved.BulkExports[scope]
		bs := dashboard.BulkExportStatus{Scope: scope, At: b.At, TransactionTime: b.TransactionTime, Complete: b.Complete, Error: b.Error}
		for _, is := range b.Incomplete {
			bs.Incomplete = append(bs.Incomplete, dashboard.BulkTypeIssue{Type: is.Type, Reason: is.Reason, Files: is.Files})
		}
		s.BulkExports = append(s.BulkExports, bs)
	}
	s.Runs = nil
	for _, what := range slices.Sorted(maps.Keys(saved.Running)) {
		m := saved.Running[what]
		rs := dashboard.RunStatus{What: what, Since: m.Since, State: "unknown"}
		if alive, ok := m.Alive(); ok {
			rs.State = "interrupted"
			if alive {
				rs.State = "running"
			}
		}
		s.Runs = append(s.Runs, rs)
	}
	return s
}

// errNoProbe says a connection was never probed.
var errNoProbe = errors.New("no probe report")

// SaveProbe keeps a probe report as the latest of its connection.
func SaveProbe(ctx context.Context, docs store.Documents, r *probe.Report) error {
	if r.Connection == "" {
		return errors.New("saving a probe report needs a connection name")
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding probe report: %w", err)
	}
	return docs.UpdateDocument(ctx, store.DocProbeReport, r.Connection, func([]byte) ([]byte, error) { return b, nil })
}

// LoadProbe returns a connection's latest probe report, or an error
// wrapping store.ErrNotFound when it was never probed.
func LoadProbe(ctx context.Context, docs store.Documents, conn string) (*probe.Report, error) {
	d, err := docs.GetDocument(ctx, store.DocProbeReport, conn)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w of %s: %w", errNoProbe, conn, err)
	}
	if err != nil {
		return nil, err
	}
	var r probe.Report
	if err := json.Unmarshal(d.Body, &r); err != nil {
		return nil, fmt.Errorf("decoding the probe report of %s: %w", conn, err)
	}
	return &r, nil
}

// LegacyConnectionStates reads, without changing anything, the connection
// states that ehrgate before 2026-12 kept as files in the data directory
// (DATA/connections/NAME.json), by name: for read-only commands on a store
// no gateway has started on since the upgrade (starting one imports them).
func LegacyConnectionStates(dataDir string) map[string]ConnectionState {
	out := map[string]ConnectionState{}
	files, _ := filepath.Glob(filepath.Join(dataDir, "connections", "*.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var st ConnectionState
		if json.Unmarshal(b, &st) != nil {
			continue
		}
		if st.Name == "" {
			st.Name = strings.TrimSuffix(filepath.Base(f), ".json")
		}
		out[st.Name] = st
	}
	return out
}

// importLegacyState copies the connection state and probe reports that
// ehrgate before 2026-12 kept as files in the data directory
// (connections/NAME.json, probes/NAME.json) into the store, where a
// document of the same name is not there yet. The files are left alone.
func importLegacyState(ctx context.Context, docs store.Documents, dataDir string) error {
	var errs []error
	for _, src := range []struct{ dir, kind string }{
		{"connections", store.DocConnectionState},
		{"probes", store.DocProbeReport},
	} {
		files, _ := filepath.Glob(filepath.Join(dataDir, src.dir, "*.json"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			var named struct {
				Name       string `json:"name"`
				Connection string `json:"connection"`
			}
			if json.Unmarshal(b, &named) != nil {
				continue // not ours
			}
			name := named.Name
			if src.kind == store.DocProbeReport {
				name = named.Connection
			}
			if name == "" {
				name = strings.TrimSuffix(filepath.Base(f), ".json")
			}
			if _, err := docs.GetDocument(ctx, src.kind, name); !errors.Is(err, store.ErrNotFound) {
				continue // imported already (or unreadable: leave it)
			}
			err = docs.UpdateDocument(ctx, src.kind, name, func(old []byte) ([]byte, error) {
				if old != nil {
					return old, nil // another process was first
				}
				return b, nil
			})
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
