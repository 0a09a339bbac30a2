package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"ehrgate/dashboard"
	"ehrgate/ingest"
	"ehrgate/refresh"
)

// connectionState is what the gateway remembers about a connection between
// runs, in DATA/connections/NAME.json: where it is, what it turned out to be
// and how the last sync went. It holds no secrets and no patient data.
type connectionState struct {
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
	BulkExports map[string]*bulkOutcome `json:"bulk_exports,omitempty"`
}

// bulkOutcome is how a connection's last bulk export of a scope went.
type bulkOutcome struct {
	At              time.Time          `json:"at"`
	TransactionTime time.Time          `json:"transaction_time,omitzero"`
	Complete        bool               `json:"complete"`
	Incomplete      []ingest.TypeIssue `json:"incomplete,omitempty"`
	Error           string             `json:"error,omitempty"` // user-safe: the export could not run
}

// updateConnectionState loads a connection's state (empty when none),
// applies fn and saves it.
func updateConnectionState(dataDir, name string, fn func(st *connectionState)) error {
	st, _ := loadConnectionState(dataDir, name)
	st.Name = name
	fn(&st)
	return saveConnectionState(dataDir, st)
}

func connectionStatePath(dataDir, name string) string {
	return filepath.Join(dataDir, "connections", name+".json")
}

// saveConnectionState writes st atomically (temp file and rename).
func saveConnectionState(dataDir string, st connectionState) error {
	path := connectionStatePath(dataDir, st.Name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("saving connection state: %w", err)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("saving connection state: %w", err)
	}
	return os.Rename(tmp, path)
}

func loadConnectionState(dataDir, name string) (connectionState, bool) {
	b, err := os.ReadFile(connectionStatePath(dataDir, name))
	if err != nil {
		return connectionState{}, false
	}
	var st connectionState
	if json.Unmarshal(b, &st) != nil {
		return connectionState{}, false
	}
	return st, true
}

// listConnectionStates returns the names of connections with saved state.
func listConnectionStates(dataDir string) []string {
	matches, _ := filepath.Glob(filepath.Join(dataDir, "connections", "*.json"))
	names := make([]string, 0, len(matches))
	for _, m := range matches {
		names = append(names, filepath.Base(m[:len(m)-len(".json")]))
	}
	return names
}

// withSavedState adds what the saved state knows (granted scopes, bulk
// exports) to a dashboard status.
func withSavedState(s dashboard.ConnectionStatus, saved connectionState) dashboard.ConnectionStatus {
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
	return s
}
