package fhirapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
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
	return appendServed(nil, rec, baseURL)
}

// appendServed appends the served resource (see served) to dst.
func appendServed(dst []byte, rec *store.Record, baseURL string) ([]byte, error) {
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
	slices.SortFunc(edits, func(x, y edit) int { return x.start - y.start })
	out := slices.Grow(dst, len(raw)+len(meta)+64)
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

func quote(s string) []byte { return appendQuote(nil, s) }

// appendQuote appends s as a JSON string exactly as encoding/json writes
// it; strings with nothing to escape (ids, references: nearly all) are
// copied without it.
func appendQuote(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// servedReference rewrites a reference to a served one when it points at
// the connection's own resources.
func servedReference(conn, baseURL, r string) (string, bool) {
	rel := r
	if baseURL != "" && strings.HasPrefix(r, strings.TrimSuffix(baseURL, "/")+"/") {
		rel = r[len(strings.TrimSuffix(baseURL, "/"))+1:]
	}
	// Type/id or Type/id/_history/version, read without splitting.
	typ, id, ok := strings.Cut(rel, "/")
	if !ok {
		return "", false
	}
	hist := ""
	if j := strings.IndexByte(id, '/'); j >= 0 {
		id, hist = id[:j], id[j:]
		if v, ok := strings.CutPrefix(hist, "/_history/"); !ok || strings.IndexByte(v, '/') >= 0 {
			return "", false
		}
	}
	if !validType(typ) || id == "" {
		return "", false
	}
	return typ + "/" + Prefix(conn) + "." + id + hist, true
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
	var fs []field
	if len(src) > 0 && src[0] == '{' {
		// A meta that is not an object (which FHIR forbids) is replaced.
		var buf [8]field
		fs = topFields(src, buf[:0])
	}
	// get returns the value of the last element named name (as a
	// decoder keeps the last of duplicates).
	last := func(name string) int {
		for i := len(fs) - 1; i >= 0; i-- {
			if string(fs[i].name) == name {
				return i
			}
		}
		return -1
	}
	get := func(name string) ([]byte, bool) {
		if i := last(name); i >= 0 {
			return fs[i].value, true
		}
		return nil, false
	}
	b := make([]byte, 0, 192+len(src))
	b = append(b, `{"versionId":`...)
	b = appendQuote(b, rec.VersionID)
	if lu, ok := get("lastUpdated"); ok {
		b = append(b, `,"lastUpdated":`...)
		b = append(b, lu...)
	} else {
		t := rec.LastUpdated
		if t.IsZero() {
			t = rec.FetchedAt
		}
		if !t.IsZero() {
			b = append(b, `,"lastUpdated":`...)
			b = appendQuote(b, t.UTC().Format(time.RFC3339Nano))
		}
	}
	b = append(b, `,"source":`...)
	if baseURL != "" {
		b = appendQuote(b, baseURL)
	} else {
		b = appendQuote(b, "urn:ehrgate:connection:"+rec.Connection)
	}
	// The source's other elements in name order, the last of duplicates.
	var others []field
	for i, f := range fs {
		switch string(f.name) {
		case "versionId", "lastUpdated", "source", "tag":
			continue
		}
		if last(string(f.name)) != i {
			continue // a later duplicate wins
		}
		others = append(others, f)
	}
	slices.SortFunc(others, func(x, y field) int { return bytes.Compare(x.name, y.name) })
	for _, f := range others {
		b = append(b, ',')
		b = appendQuote(b, string(f.name))
		b = append(b, ':')
		b = append(b, f.value...)
	}
	b = append(b, `,"tag":[`...)
	var tags []json.RawMessage
	if raw, ok := get("tag"); ok && jsonv1.Unmarshal(raw, &tags) == nil {
		for _, t := range tags {
			b = append(b, t...)
			b = append(b, ',')
		}
	}
	b = append(b, `{"system":"`+ConnectionTagSystem+`","code":`...)
	b = appendQuote(b, rec.Connection)
	b = append(b, "}]}"...)
	return b, nil
}
