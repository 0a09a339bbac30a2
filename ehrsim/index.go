package ehrsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"ehrgate/ehrsim/internal/fhirdate"
)

// entry is one indexed resource version. Entries are immutable once built;
// a replacement builds a new entry, so readers may use an entry after
// releasing the index lock.
type entry struct {
	typ, id     string
	version     string
	lastUpdated time.Time
	body        []byte // compact JSON as served: meta set, corrupted when malformed
	malformed   bool
	patient     string // id of the Patient the resource belongs to, "" if none

	// Search values by parameter name, extracted at load time.
	tokens map[string][]token
	spans  map[string][]span
	refs   map[string][]reference
	strs   map[string][]string
}

// token is a coded value: a code, Coding, CodeableConcept coding or
// Identifier (system + value).
type token struct {
	system, code string
}

// reference is a parsed resource reference. typ is "" for a bare id.
type reference struct {
	typ, id string
}

func (r reference) key() string { return r.typ + "/" + r.id }

// parseReference reads "123", "Patient/123",
// "https://host/fhir/Patient/123" and ".../Patient/123/_history/2".
// Contained ("#x") and urn references give ok=false.
func parseReference(s string) (reference, bool) {
	if s == "" || strings.HasPrefix(s, "#") || strings.HasPrefix(s, "urn:") {
		return reference{}, false
	}
	if i := strings.Index(s, "/_history/"); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSuffix(s, "/")
	parts := strings.Split(s, "/")
	switch n := len(parts); {
	case n == 1:
		return reference{id: parts[0]}, true
	case parts[n-1] == "" || parts[n-2] == "":
		return reference{}, false
	default:
		return reference{typ: parts[n-2], id: parts[n-1]}, true
	}
}

// index holds the loaded resources with the lookups searches need. It is
// not safe for concurrent use; Server guards it.
type index struct {
	byKey     map[string]*entry              // "Type/id"
	byType    map[string][]*entry            // sorted by id
	byPatient map[string]map[string][]*entry // patient id → type → sorted by id
}

func newIndex() *index {
	return &index{
		byKey:     make(map[string]*entry),
		byType:    make(map[string][]*entry),
		byPatient: make(map[string]map[string][]*entry),
	}
}

// put adds e, replacing old (same type and id) when old is not nil.
func (ix *index) put(e, old *entry) {
	ix.byKey[e.typ+"/"+e.id] = e
	ix.byType[e.typ] = upsertSorted(ix.byType[e.typ], e)
	if old != nil && old.patient != "" && old.patient != e.patient {
		byType := ix.byPatient[old.patient]
		byType[old.typ] = removeSorted(byType[old.typ], old.id)
	}
	if e.patient != "" {
		byType := ix.byPatient[e.patient]
		if byType == nil {
			byType = make(map[string][]*entry)
			ix.byPatient[e.patient] = byType
		}
		byType[e.typ] = upsertSorted(byType[e.typ], e)
	}
}

func (ix *index) get(typ, id string) *entry { return ix.byKey[typ+"/"+id] }

// upsertSorted inserts e into a slice sorted by id, or replaces the entry
// with the same id.
func upsertSorted(list []*entry, e *entry) []*entry {
	i := sort.Search(len(list), func(i int) bool { return list[i].id >= e.id })
	if i < len(list) && list[i].id == e.id {
		list[i] = e
		return list
	}
	list = append(list, nil)
	copy(list[i+1:], list[i:])
	list[i] = e
	return list
}

func removeSorted(list []*entry, id string) []*entry {
	i := sort.Search(len(list), func(i int) bool { return list[i].id >= id })
	if i < len(list) && list[i].id == id {
		return append(list[:i], list[i+1:]...)
	}
	return list
}

// member is one top-level member of a JSON object, kept in document order so
// that a served resource differs from the loaded one only where the
// simulator changed it.
type member struct {
	key   string
	value json.RawMessage
}

// object is a JSON object as its members in order.
type object []member

func parseObject(raw []byte) (object, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("reading JSON object: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	var obj object
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("reading JSON object: %w", err)
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("reading member %q: %w", key, err)
		}
		obj = append(obj, member{key: key, value: v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("reading JSON object: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after JSON object")
	}
	return obj, nil
}

func (o object) get(key string) (json.RawMessage, bool) {
	for _, m := range o {
		if m.key == key {
			return m.value, true
		}
	}
	return nil, false
}

// set replaces the member key, or inserts it after the member named after
// (at the end when there is none).
func (o object) set(key string, value json.RawMessage, after string) object {
	for i := range o {
		if o[i].key == key {
			o[i].value = value
			return o
		}
	}
	pos := len(o)
	for i := range o {
		if o[i].key == after {
			pos = i + 1
		}
	}
	o = append(o, member{})
	copy(o[pos+1:], o[pos:])
	o[pos] = member{key: key, value: value}
	return o
}

func (o object) clone() object { return append(object(nil), o...) }

// encode writes the object as compact JSON.
func (o object) encode() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(m.key)
		if err != nil {
			return nil, fmt.Errorf("encoding member name: %w", err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(m.value)
	}
	b.WriteByte('}')
	var out bytes.Buffer
	if err := json.Compact(&out, b.Bytes()); err != nil {
		return nil, fmt.Errorf("compacting resource: %w", err)
	}
	return out.Bytes(), nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called with strings and numbers
	}
	return b
}

// formatInstant formats t as a FHIR instant in UTC with milliseconds.
func formatInstant(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// nextVersion returns the versionId following old: old+1 when numeric.
func nextVersion(old string) string {
	n, err := strconv.Atoi(old)
	if err != nil || n < 0 {
		return "2"
	}
	return strconv.Itoa(n + 1)
}

// stampMeta sets meta.versionId and meta.lastUpdated, keeping any other
// meta members (profile, tag, security).
func stampMeta(obj object, version string, lastUpdated time.Time) (object, error) {
	meta := object{}
	if raw, ok := obj.get("meta"); ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		m, err := parseObject(raw)
		if err != nil {
			return nil, fmt.Errorf("reading meta: %w", err)
		}
		meta = m
	}
	meta = meta.set("versionId", mustJSON(version), "")
	meta = meta.set("lastUpdated", mustJSON(formatInstant(lastUpdated)), "versionId")
	b, err := meta.encode()
	if err != nil {
		return nil, fmt.Errorf("encoding meta: %w", err)
	}
	return obj.set("meta", b, "id"), nil
}

// existingMeta reads meta.versionId and meta.lastUpdated as loaded.
func existingMeta(obj object) (version string, lastUpdated time.Time) {
	raw, ok := obj.get("meta")
	if !ok {
		return "", time.Time{}
	}
	var m struct {
		VersionID   string `json:"versionId"`
		LastUpdated string `json:"lastUpdated"`
	}
	if json.Unmarshal(raw, &m) != nil {
		return "", time.Time{}
	}
	if sp, err := fhirdate.ParseSpan(m.LastUpdated); err == nil {
		lastUpdated = sp.Lo
	}
	return m.VersionID, lastUpdated
}

// extract fills the entry's search values from the decoded resource.
func (e *entry) extract(doc map[string]any, ps paramSet) {
	e.tokens = make(map[string][]token)
	e.spans = make(map[string][]span)
	e.refs = make(map[string][]reference)
	e.strs = make(map[string][]string)
	for name, d := range ps {
		for _, p := range d.paths {
			for _, v := range lookup(doc, p) {
				switch d.typ {
				case paramToken:
					e.tokens[name] = append(e.tokens[name], tokensOf(v)...)
				case paramDate:
					e.spans[name] = append(e.spans[name], spansOf(v)...)
				case paramString:
					if s, ok := v.(string); ok {
						e.strs[name] = append(e.strs[name], s)
					}
				case paramReference:
					if m, ok := v.(map[string]any); ok {
						s, _ := m["reference"].(string)
						if r, ok := parseReference(s); ok {
							if r.typ == "" {
								r.typ = d.target
							}
							if d.onlyTarget && r.typ != d.target {
								continue
							}
							e.refs[name] = append(e.refs[name], r)
						}
					}
				}
			}
		}
	}
	e.spans["_lastUpdated"] = []span{{Lo: e.lastUpdated, Hi: e.lastUpdated.Add(time.Millisecond)}}
	if e.typ == "Patient" {
		e.patient = e.id
	} else if d := ps.patientParam(); d != nil {
		for _, r := range e.refs[d.name] {
			if r.typ == "Patient" {
				e.patient = r.id
				break
			}
		}
	}
}

// lookup returns the values at a dotted path, flattening arrays.
func lookup(doc any, path string) []any {
	cur := []any{doc}
	for seg := range strings.SplitSeq(path, ".") {
		var next []any
		for _, c := range cur {
			m, ok := c.(map[string]any)
			if !ok {
				continue
			}
			switch v := m[seg].(type) {
			case nil:
			case []any:
				next = append(next, v...)
			default:
				next = append(next, v)
			}
		}
		cur = next
	}
	return cur
}

// tokensOf reads a code, boolean, Coding, CodeableConcept or Identifier.
func tokensOf(v any) []token {
	switch x := v.(type) {
	case string:
		return []token{{code: x}}
	case bool:
		return []token{{code: strconv.FormatBool(x)}}
	case map[string]any:
		system, _ := x["system"].(string)
		if codings, ok := x["coding"].([]any); ok {
			var ts []token
			for _, c := range codings {
				if cm, ok := c.(map[string]any); ok {
					sys, _ := cm["system"].(string)
					code, _ := cm["code"].(string)
					ts = append(ts, token{system: sys, code: code})
				}
			}
			return ts
		}
		if code, ok := x["code"].(string); ok {
			return []token{{system: system, code: code}}
		}
		if value, ok := x["value"].(string); ok {
			return []token{{system: system, code: value}}
		}
	}
	return nil
}
