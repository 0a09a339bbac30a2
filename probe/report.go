package probe

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"
)

// TextOptions control WriteText.
type TextOptions struct {
	// Timings adds each check's duration (omit for stable output, as in
	// documentation).
	Timings bool
}

// WriteText prints the report as a compatibility matrix.
func WriteText(w io.Writer, r *Report, o TextOptions) error {
	fmt.Fprintf(w, "probe of %s\n", r.BaseURL)
	fmt.Fprintf(w, "vendor: %s (confidence %.2f), version %q, adapter %s, FHIR %s\n", r.Vendor, r.Confidence, r.Version, r.Adapter, r.FHIRVersion)
	if r.Patient != "" {
		fmt.Fprintf(w, "test patient: %s\n", r.Patient)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "CHECK\tRESULT\tHTTP\tCOUNT\tDETAIL"
	if o.Timings {
		head += "\tMS"
	}
	fmt.Fprintln(tw, head)
	for _, c := range r.Checks {
		status := "-"
		if c.Status != 0 {
			status = fmt.Sprint(c.Status)
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%d\t%s", c.ID, c.Result, status, c.Count, c.Detail)
		if o.Timings {
			line += fmt.Sprintf("\t%d", c.DurationMS)
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

// Change is one difference between two reports.
type Change struct {
	ID     string `json:"id"`
	Before string `json:"before"` // "" when the check is new
	After  string `json:"after"`  // "" when the check disappeared
}

// String formats the change as "ID: before -> after".
func (c Change) String() string {
	b, a := c.Before, c.After
	if b == "" {
		b = "(absent)"
	}
	if a == "" {
		a = "(absent)"
	}
	return fmt.Sprintf("%s: %s -> %s", c.ID, b, a)
}

// outcome is what Diff compares: result and status, not counts or timings,
// which change with the data and the network.
func (c Check) outcome() string {
	if c.Status == 0 {
		return c.Result
	}
	return fmt.Sprintf("%s (HTTP %d)", c.Result, c.Status)
}

// Diff lists what changed from before to after: the detected vendor and
// version, and every check whose result or status differs, in after's order
// (then checks that disappeared).
func Diff(before, after *Report) []Change {
	var out []Change
	if before.Vendor != after.Vendor {
		out = append(out, Change{ID: "vendor", Before: before.Vendor, After: after.Vendor})
	}
	if before.Version != after.Version {
		out = append(out, Change{ID: "version", Before: before.Version, After: after.Version})
	}
	old := map[string]Check{}
	for _, c := range before.Checks {
		old[c.ID] = c
	}
	seen := map[string]bool{}
	for _, c := range after.Checks {
		seen[c.ID] = true
		o, ok := old[c.ID]
		switch {
		case !ok:
			out = append(out, Change{ID: c.ID, After: c.outcome()})
		case o.outcome() != c.outcome():
			out = append(out, Change{ID: c.ID, Before: o.outcome(), After: c.outcome()})
		}
	}
	for _, c := range before.Checks {
		if !seen[c.ID] {
			out = append(out, Change{ID: c.ID, Before: c.outcome()})
		}
	}
	return out
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Path is where the latest probe of a connection is stored under a data
// directory: DATA/probes/<connection>.json.
func Path(dataDir, connection string) string {
	name := strings.TrimLeft(unsafeName.ReplaceAllString(connection, "_"), ".")
	if name == "" {
		name = "_"
	}
	return filepath.Join(dataDir, "probes", name+".json")
}

// Save writes the report as the latest probe of its connection (atomically:
// a temporary file renamed into place) and returns the path.
func Save(dataDir string, r *Report) (string, error) {
	if r.Connection == "" {
		return "", errors.New("probe: saving a report needs a connection name")
	}
	path := Path(dataDir, r.Connection)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("creating probes directory: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encoding probe report: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".probe-*")
	if err != nil {
		return "", fmt.Errorf("saving probe report: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return "", fmt.Errorf("saving probe report: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("saving probe report: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("saving probe report: %w", err)
	}
	return path, nil
}

// Load reads a stored report.
func Load(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading probe report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decoding probe report %s: %w", path, err)
	}
	return &r, nil
}
