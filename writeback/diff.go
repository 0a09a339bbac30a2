package writeback

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"ehrgate/store"
)

// ChangeKind says how a field differs between two versions of a resource.
type ChangeKind string

// The change kinds.
const (
	Added   ChangeKind = "added"
	Removed ChangeKind = "removed"
	Changed ChangeKind = "changed"
)

// Change is one field that differs: its JSON path (for example
// "code.coding[0].code") and its values before and after as compact JSON
// ("" when absent).
type Change struct {
	Path   string     `json:"path"`
	Kind   ChangeKind `json:"kind"`
	Before string     `json:"before,omitempty"`
	After  string     `json:"after,omitempty"`
}

// Diff returns the field-level differences from before to after (two
// resources as JSON; before nil or empty for a create: every field is
// added), by path. Objects are compared key by key and arrays element by
// element, down to the leaves; the server-owned meta.versionId and
// meta.lastUpdated are left out, as the Writer never sends them.
func Diff(before, after json.RawMessage) ([]Change, error) {
	var b, a any
	if len(bytes.TrimSpace(before)) > 0 {
		if err := json.Unmarshal(before, &b); err != nil {
			return nil, fmt.Errorf("writeback: diff: the version before: %w", err)
		}
	}
	if err := json.Unmarshal(after, &a); err != nil {
		return nil, fmt.Errorf("writeback: diff: the proposed resource: %w", err)
	}
	var out []Change
	diffValue("", b, a, &out)
	return out, nil
}

// skipped are the paths Diff leaves out.
var skipped = map[string]bool{"meta.versionId": true, "meta.lastUpdated": true}

func diffValue(path string, b, a any, out *[]Change) {
	if skipped[path] {
		return
	}
	switch {
	case b == nil && a == nil:
		return
	case b == nil:
		if m, ok := a.(map[string]any); ok {
			diffObject(path, nil, m, out)
			return
		}
		if l, ok := a.([]any); ok {
			diffArray(path, nil, l, out)
			return
		}
		*out = append(*out, Change{Path: path, Kind: Added, After: compact(a)})
		return
	case a == nil:
		if m, ok := b.(map[string]any); ok {
			diffObject(path, m, nil, out)
			return
		}
		if l, ok := b.([]any); ok {
			diffArray(path, l, nil, out)
			return
		}
		*out = append(*out, Change{Path: path, Kind: Removed, Before: compact(b)})
		return
	}
	bm, bok := b.(map[string]any)
	am, aok := a.(map[string]any)
	if bok && aok {
		diffObject(path, bm, am, out)
		return
	}
	bl, bok := b.([]any)
	al, aok := a.([]any)
	if bok && aok {
		diffArray(path, bl, al, out)
		return
	}
	if cb, ca := compact(b), compact(a); cb != ca {
		*out = append(*out, Change{Path: path, Kind: Changed, Before: cb, After: ca})
	}
}

func diffObject(path string, b, a map[string]any, out *[]Change) {
	keys := map[string]bool{}
	for k := range b {
		keys[k] = true
	}
	for k := range a {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		p := k
		if path != "" {
			p = path + "." + k
		}
		diffValue(p, b[k], a[k], out)
	}
}

func diffArray(path string, b, a []any, out *[]Change) {
	for i := 0; i < max(len(b), len(a)); i++ {
		var x, y any
		if i < len(b) {
			x = b[i]
		}
		if i < len(a) {
			y = a[i]
		}
		diffValue(path+"["+strconv.Itoa(i)+"]", x, y, out)
	}
}

func compact(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// Versions is where Before finds the version an update was proposed
// against: the store's versions of the resources it fetched (every store
// backend is one).
type Versions interface {
	GetVersion(ctx context.Context, connection, typ, id, versionID string) (store.Record, error)
}

// Before returns the version of the target that rec's update is shown
// against, and what it is: the EHR's version the Writer read after a 412
// (Record.Current, "the EHR's current version"), else the version the rule
// read (BaseVersion) as the store holds it. It returns nil for a create,
// and nil with a description saying so when the store does not hold that
// version.
func Before(ctx context.Context, v Versions, rec Record) (json.RawMessage, string, error) {
	switch {
	case rec.Operation != OpUpdate:
		return nil, "", nil
	case len(rec.Current) > 0:
		return rec.Current, "the EHR's current version (read after the version changed)", nil
	case v == nil:
		return nil, "nothing: version " + rec.BaseVersion + " of the target is not available here, so every field shows as added", nil
	}
	r, err := v.GetVersion(ctx, rec.Connection, rec.ResourceType, rec.TargetID, rec.BaseVersion)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "nothing: version " + rec.BaseVersion + " of the target is not in the store, so every field shows as added", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("writeback: reading version %s of the target: %w", rec.BaseVersion, err)
	}
	return r.Raw, "version " + rec.BaseVersion + " (the version the rule read)", nil
}
