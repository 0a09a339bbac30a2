package fhirapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	jsonv1 "github.com/go-json-experiment/json/v1"

	"ehrgate/store"
)

// ConnectionTagSystem is the system of the meta.tag naming the connection
// a served resource came from (its code is the connection's name).
const ConnectionTagSystem = "urn:ehrgate:connection"

// served returns a stored resource as the API serves it: the bytes the
// source sent, with exactly these changes, made in place so everything
// else (element order, extensions, numbers as written) stays as received:
//   - id becomes the served id (connection prefix, dot, source id);
//   - relative references ("Patient/123", "Patient/123/_history/2") and
//     absolute ones to the connection's own base URL become references
//     to served ids; others (contained "#x", "urn:uuid:", other servers)
//     are left alone;
//   - meta gets versionId (the stored version, so vread finds it),
//     lastUpdated (the source's, else when ehrgate fetched it), source (the
//     connection's base URL) and a tag naming the connection; the source's
//     own profile, security and tags are kept.
func served(rec *store.Record, baseURL string) ([]byte, error) {
	raw := rec.Raw
	edits, metaRaw, insertAt, err := editsByScan(rec, baseURL)
	if err != nil {
		return nil, err
	}
	meta, err := servedMeta(rec, baseURL, metaRaw)
	if err != nil {
		return nil, err
	}
	found := false
	var metaEdit edit
	for i := range edits {
		if edits[i].repl == nil {
			edits[i].repl, found = meta, true
			metaEdit = edits[i]
		}
	}
	if found {
		// The meta is replaced whole: edits inside it (a "reference" in a
		// meta extension) go with it.
		kept := edits[:0]
		for _, e := range edits {
			if e.repl != nil && e.start >= metaEdit.start && e.end <= metaEdit.end && &e.repl[0] != &meta[0] {
				continue
			}
			kept = append(kept, e)
		}
		edits = kept
	}
	if !found {
		at := insertAt
		prefix := []byte(`,"meta":`)
		if at < 0 {
			at = bytes.IndexByte(raw, '{') + 1
			prefix = []byte(`"meta":`)
			if rest := bytes.TrimLeft(raw[at:], " \t\r\n"); len(rest) > 0 && rest[0] != '}' {
				meta = append(meta, ',')
			}
		}
		edits = append(edits, edit{at, at, append(prefix, meta...)})
	}
	sort.Slice(edits, func(i, j int) bool { return edits[i].start < edits[j].start })
	out := make([]byte, 0, len(raw)+len(meta)+64)
	last := 0
	for _, e := range edits {
		out = append(out, raw[last:e.start]...)
		out = append(out, e.repl...)
		last = e.end
	}
	return append(out, raw[last:]...), nil
}

// edit replaces raw[start:end] with repl (a nil repl: the served meta).
type edit struct {
	start, end int
	repl       []byte
}

// editsByTokens finds the edits served makes with encoding/json's
// tokenizer: the reference the fast scanner (editsByScan) is tested
// against.
func editsByTokens(rec *store.Record, baseURL string) (edits []edit, metaRaw []byte, insertAt int, err error) {
	raw := rec.Raw
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	type frame struct {
		object, wantKey bool
		key             string
	}
	var stack []frame
	metaStart := -1
	insertAt = -1
	for {
		before := int(dec.InputOffset())
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, -1, fmt.Errorf("stored %s/%s is not JSON: %w", rec.Type, rec.ID, err)
		}
		end := int(dec.InputOffset())
		start := skipSeparators(raw, before)
		depth := len(stack)
		if depth > 0 && stack[depth-1].object && stack[depth-1].wantKey {
			if k, ok := tok.(string); ok {
				stack[depth-1].key, stack[depth-1].wantKey = k, false
				continue
			}
		}
		key := ""
		if depth > 0 {
			key = stack[depth-1].key
		}
		switch tok := tok.(type) {
		case json.Delim:
			switch tok {
			case '{', '[':
				if depth == 1 && key == "meta" {
					metaStart = start
				}
				stack = append(stack, frame{object: tok == '{', wantKey: tok == '{'})
				continue
			default:
				stack = stack[:depth-1]
				if depth == 2 && metaStart >= 0 && metaRaw == nil && stack[0].key == "meta" {
					metaRaw = raw[metaStart:end]
					edits = append(edits, edit{metaStart, end, nil}) // the served meta, below
				}
			}
		default:
			if depth == 1 && key == "meta" && metaRaw == nil {
				metaRaw = raw[start:end]
				edits = append(edits, edit{start, end, nil})
			}
		case string:
			if depth == 1 && key == "meta" && metaRaw == nil {
				metaRaw = raw[start:end]
				edits = append(edits, edit{start, end, nil})
			}
			switch {
			case depth == 1 && key == "id":
				edits = append(edits, edit{start, end, quote(ServedID(rec.Connection, tok))})
			case depth == 1 && key == "resourceType":
				insertAt = end
			case key == "reference":
				if r, ok := servedReference(rec.Connection, baseURL, tok); ok {
					edits = append(edits, edit{start, end, quote(r)})
				}
			}
		}
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	return edits, metaRaw, insertAt, nil
}

// skipSeparators moves past whitespace, ':' and ',' to a token's start.
func skipSeparators(raw []byte, i int) int {
	for i < len(raw) {
		switch raw[i] {
		case ' ', '\t', '\n', '\r', ':', ',':
			i++
		default:
			return i
		}
	}
	return i
}

func quote(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// servedReference rewrites a reference to a served one when it points at
// the connection's own resources.
func servedReference(conn, baseURL, r string) (string, bool) {
	rel := r
	if baseURL != "" && strings.HasPrefix(r, strings.TrimSuffix(baseURL, "/")+"/") {
		rel = r[len(strings.TrimSuffix(baseURL, "/"))+1:]
	}
	parts := strings.Split(rel, "/")
	if (len(parts) != 2 && !(len(parts) == 4 && parts[2] == "_history")) || !validType(parts[0]) || parts[1] == "" {
		return "", false
	}
	parts[1] = ServedID(conn, parts[1])
	return strings.Join(parts, "/"), true
}

func validType(t string) bool {
	if t == "" || t[0] < 'A' || t[0] > 'Z' {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// servedMeta builds the served meta from the source's: versionId,
// lastUpdated (the source's when it sent one), source, the source's other
// elements as it wrote them, and its tags followed by the connection's.
// It writes the JSON directly: decoding the source's meta into maps and
// encoding it again cost as much as the rest of serving.
func servedMeta(rec *store.Record, baseURL string, src []byte) ([]byte, error) {
	var m map[string][]byte
	if len(src) > 0 && src[0] == '{' {
		// A meta that is not an object (which FHIR forbids) is replaced.
		m = topLevel(src)
	}
	b := make([]byte, 0, 192+len(src))
	b = append(b, `{"versionId":`...)
	b = append(b, quote(rec.VersionID)...)
	if lu, ok := m["lastUpdated"]; ok {
		b = append(b, `,"lastUpdated":`...)
		b = append(b, lu...)
	} else {
		t := rec.LastUpdated
		if t.IsZero() {
			t = rec.FetchedAt
		}
		if !t.IsZero() {
			b = append(b, `,"lastUpdated":`...)
			b = append(b, quote(t.UTC().Format(time.RFC3339Nano))...)
		}
	}
	source := "urn:ehrgate:connection:" + rec.Connection
	if baseURL != "" {
		source = baseURL
	}
	b = append(b, `,"source":`...)
	b = append(b, quote(source)...)
	keys := make([]string, 0, len(m))
	for k := range m {
		switch k {
		case "versionId", "lastUpdated", "source", "tag":
		default:
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		b = append(b, ',')
		b = append(b, quote(k)...)
		b = append(b, ':')
		b = append(b, m[k]...)
	}
	b = append(b, `,"tag":[`...)
	var tags []json.RawMessage
	if raw, ok := m["tag"]; ok && jsonv1.Unmarshal(raw, &tags) == nil {
		for _, t := range tags {
			b = append(b, t...)
			b = append(b, ',')
		}
	}
	b = append(b, `{"system":"`+ConnectionTagSystem+`","code":`...)
	b = append(b, quote(rec.Connection)...)
	b = append(b, "}]}"...)
	return b, nil
}
