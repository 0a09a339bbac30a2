package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

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
