package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// ProvenanceQuery asks for the current Provenance resources whose target
// references some current resources of one type on one connection (a
// Provenance's targets are on its own connection).
type ProvenanceQuery struct {
	Connection string
	Type       string   // the targets' type
	IDs        []string // the targets' ids
	// Latest keeps only the most recent Provenance of each target (by
	// Provenance.recorded, then the greatest id), as Bulk Data's
	// includeAssociatedData=LatestProvenanceResources asks; otherwise
	// every Provenance of each target (RelevantProvenanceResources).
	Latest bool
	// RawOnly leaves the records' Normalized nil.
	RawOnly bool
}

// ProvenanceFinder finds Provenance by target. Stores index each
// Provenance's targets when they write it (and stop when it is replaced or
// tombstoned), so that the lookup reads only what it returns.
type ProvenanceFinder interface {
	// ProvenanceFor returns the current Provenance targeting any of
	// q.IDs, each once, ordered by id. Any number of ids may be asked.
	ProvenanceFor(ctx context.Context, q ProvenanceQuery) ([]Record, error)
}

// ProvenanceTarget is one resource a Provenance targets, on the
// Provenance's own connection.
type ProvenanceTarget struct {
	Type, ID string
}

// ProvenanceTargets reads what a Provenance's raw JSON targets and when it
// was recorded (zero when absent or unreadable). A target counts when its
// reference is relative ("Observation/1", "Observation/1/_history/2") or
// an absolute URL ending that way (read as the same connection's resource,
// since the source names its own resources so); contained ("#x"),
// urn:uuid: and identifier-only targets name no stored resource and are
// left out. Each target is listed once.
func ProvenanceTargets(raw []byte) ([]ProvenanceTarget, time.Time, error) {
	var p struct {
		Target []struct {
			Reference string `json:"reference"`
		} `json:"target"`
		Recorded string `json:"recorded"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, time.Time{}, fmt.Errorf("reading a Provenance's targets: %w", err)
	}
	var out []ProvenanceTarget
	seen := map[ProvenanceTarget]bool{}
	for _, t := range p.Target {
		typ, id, ok := referenceTarget(t.Reference)
		if !ok {
			continue
		}
		k := ProvenanceTarget{typ, id}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	recorded, _ := time.Parse(time.RFC3339Nano, p.Recorded)
	return out, recorded, nil
}

// referenceTarget reads "Type/id" off the end of a reference, before any
// "/_history/version".
func referenceTarget(ref string) (typ, id string, ok bool) {
	if ref == "" || ref[0] == '#' || strings.HasPrefix(ref, "urn:") {
		return "", "", false
	}
	ref, _, _ = strings.Cut(ref, "?")
	parts := strings.Split(strings.TrimSuffix(ref, "/"), "/")
	if n := len(parts); n >= 4 && parts[n-2] == "_history" {
		parts = parts[:n-2]
	}
	n := len(parts)
	if n < 2 {
		return "", "", false
	}
	typ, id = parts[n-2], parts[n-1]
	if typ == "" || id == "" || typ[0] < 'A' || typ[0] > 'Z' {
		return "", "", false
	}
	for i := 0; i < len(typ); i++ {
		if c := typ[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return "", "", false
		}
	}
	return typ, id, true
}
