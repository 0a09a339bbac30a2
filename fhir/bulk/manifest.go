package bulk

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"ehrgate/fhir"
)

// Manifest is the complete-status body of a Bulk Data export
// (https://hl7.org/fhir/uv/bulkdata/export.html#response---complete-status).
type Manifest struct {
	TransactionTime     time.Time    `json:"-"`
	Request             string       `json:"request"`
	RequiresAccessToken bool         `json:"requiresAccessToken"`
	Output              []OutputFile `json:"output"`
	Error               []OutputFile `json:"error"`
	// Deleted lists NDJSON files of Bundles whose entries have
	// request.method DELETE and request.url Type/id (Bulk Data 2.0 with _since).
	Deleted []OutputFile `json:"deleted"`
	// Raw is the manifest as received (set by DecodeManifest; not part of
	// the wire form MarshalJSON writes).
	Raw []byte `json:"-"`
}

// OutputFile is one file of a manifest.
type OutputFile struct {
	Type  string `json:"type"`
	URL   string `json:"url"`
	Count *int64 `json:"count,omitempty"` // resources in the file, when the server says
}

// ErrBadManifest is returned (wrapped) for a manifest that cannot be used.
var ErrBadManifest = errors.New("bulk: bad manifest")

// DecodeManifest decodes and checks a manifest: transactionTime must be a
// FHIR instant, every file must name a type and an absolute http(s) URL, and
// counts must not be negative.
func DecodeManifest(b []byte) (*Manifest, error) {
	var raw struct {
		Manifest
		TransactionTime string `json:"transactionTime"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("decoding manifest: %w: %w", ErrBadManifest, err)
	}
	m := raw.Manifest
	if raw.TransactionTime == "" {
		return nil, fmt.Errorf("manifest has no transactionTime: %w", ErrBadManifest)
	}
	t, err := fhir.ParseDateTime(raw.TransactionTime)
	if err != nil {
		return nil, fmt.Errorf("manifest transactionTime: %w: %w", ErrBadManifest, err)
	}
	m.TransactionTime = t
	m.Raw = append([]byte(nil), b...)
	for _, list := range []struct {
		name  string
		files []OutputFile
	}{{"output", m.Output}, {"error", m.Error}, {"deleted", m.Deleted}} {
		for i, f := range list.files {
			if f.Type == "" {
				return nil, fmt.Errorf("manifest %s[%d] has no type: %w", list.name, i, ErrBadManifest)
			}
			u, err := url.Parse(f.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, fmt.Errorf("manifest %s[%d] url is not an absolute http(s) URL: %w", list.name, i, ErrBadManifest)
			}
			if f.Count != nil && *f.Count < 0 {
				return nil, fmt.Errorf("manifest %s[%d] has a negative count: %w", list.name, i, ErrBadManifest)
			}
		}
	}
	return &m, nil
}

// MarshalJSON writes the manifest in its wire form.
func (m Manifest) MarshalJSON() ([]byte, error) {
	type alias Manifest
	return json.Marshal(struct {
		TransactionTime string `json:"transactionTime"`
		alias
	}{m.TransactionTime.UTC().Format(time.RFC3339Nano), alias(m)})
}

// DeletedRef is one deletion from a deleted file.
type DeletedRef struct {
	Type string
	ID   string
}

// DecodeDeleted reads one line of a deleted file: a Bundle whose entries
// carry request.method DELETE and request.url "Type/id" (relative, or
// absolute ending in Type/id). Entries with another method are errors.
func DecodeDeleted(line []byte) ([]DeletedRef, error) {
	var b struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Request *struct {
				Method string `json:"method"`
				URL    string `json:"url"`
			} `json:"request"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(line, &b); err != nil {
		return nil, fmt.Errorf("decoding deleted Bundle: %w", err)
	}
	if b.ResourceType != "Bundle" {
		return nil, fmt.Errorf("deleted file line is a %q, want a Bundle", b.ResourceType)
	}
	var out []DeletedRef
	for i, e := range b.Entry {
		if e.Request == nil || e.Request.Method != "DELETE" {
			return nil, fmt.Errorf("deleted Bundle entry %d is not a DELETE request", i)
		}
		typ, id, ok := splitRef(e.Request.URL)
		if !ok {
			return nil, fmt.Errorf("deleted Bundle entry %d: url is not Type/id", i)
		}
		out = append(out, DeletedRef{Type: typ, ID: id})
	}
	return out, nil
}

// splitRef takes the last two path segments of a relative or absolute
// reference.
func splitRef(ref string) (typ, id string, ok bool) {
	if u, err := url.Parse(ref); err == nil && u.IsAbs() {
		ref = u.Path
	}
	var segs []string
	start := 0
	for i := 0; i <= len(ref); i++ {
		if i == len(ref) || ref[i] == '/' {
			if i > start {
				segs = append(segs, ref[start:i])
			}
			start = i + 1
		}
	}
	if len(segs) < 2 {
		return "", "", false
	}
	typ, id = segs[len(segs)-2], segs[len(segs)-1]
	if typ == "" || typ[0] < 'A' || typ[0] > 'Z' || id == "" {
		return "", "", false
	}
	return typ, id, true
}
