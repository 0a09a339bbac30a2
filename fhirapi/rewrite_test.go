package fhirapi

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	jsonv1 "github.com/go-json-experiment/json/v1"

	"ehrgate/store"
)

func TestServedChangesOnlyIDsReferencesAndMeta(t *testing.T) {
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		name, raw, want string
	}{
		{"no meta: inserted after resourceType",
			`{"resourceType":"Observation", "id" : "o1","subject":{"reference":"Patient/p1","display":"X"},"valueQuantity":{"value":1.50}}`,
			`{"resourceType":"Observation","meta":{"versionId":"v9","lastUpdated":"2026-03-04T05:06:07Z","source":"https://ehr.test/fhir","tag":[{"system":"urn:ehrgate:connection","code":"epic_a"}]}, "id" : "epic-a.o1","subject":{"reference":"Patient/epic-a.p1","display":"X"},"valueQuantity":{"value":1.50}}`},
		{"meta kept and completed; history, absolute and foreign references",
			`{"resourceType":"Observation","id":"o1","meta":{"versionId":"3","lastUpdated":"2020-01-01T00:00:00Z","tag":[{"code":"x"}]},` +
				`"encounter":{"reference":"Encounter/e1/_history/2"},"performer":[{"reference":"https://ehr.test/fhir/Practitioner/d1"},{"reference":"https://other.test/Practitioner/d2"},{"reference":"#c1"},{"reference":"urn:uuid:1"}],` +
				`"contained":[{"resourceType":"Practitioner","id":"c1"}],"note":[{"text":"id reference"}]}`,
			`{"resourceType":"Observation","id":"epic-a.o1","meta":{"versionId":"v9","lastUpdated":"2020-01-01T00:00:00Z","source":"https://ehr.test/fhir","tag":[{"code":"x"},{"system":"urn:ehrgate:connection","code":"epic_a"}]},` +
				`"encounter":{"reference":"Encounter/epic-a.e1/_history/2"},"performer":[{"reference":"Practitioner/epic-a.d1"},{"reference":"https://other.test/Practitioner/d2"},{"reference":"#c1"},{"reference":"urn:uuid:1"}],` +
				`"contained":[{"resourceType":"Practitioner","id":"c1"}],"note":[{"text":"id reference"}]}`},
		{"strings that look like keys are values",
			`{"resourceType":"Basic","id":"b","code":{"text":"reference"},"extension":[{"url":"u","valueString":"Patient/p1"}]}`,
			`{"resourceType":"Basic","meta":{"versionId":"v9","lastUpdated":"2026-03-04T05:06:07Z","source":"https://ehr.test/fhir","tag":[{"system":"urn:ehrgate:connection","code":"epic_a"}]},"id":"epic-a.b","code":{"text":"reference"},"extension":[{"url":"u","valueString":"Patient/p1"}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &store.Record{Key: store.Key{Connection: "epic_a", Type: "Observation", ID: "o1", VersionID: "v9"}, Raw: []byte(tc.raw), LastUpdated: t0}
			got, err := served(rec, "https://ehr.test/fhir")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("served(%s)\n got %s\nwant %s", tc.raw, got, tc.want)
			}
			if !json.Valid(got) {
				t.Errorf("served output is not JSON: %s", got)
			}
		})
	}
}

func FuzzServed(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Observation","id":"o1","meta":{"versionId":"1"},"subject":{"reference":"Patient/p"}}`))
	f.Add([]byte(`{"id":"x","meta":{}}`))
	f.Add([]byte(`{"resourceType":"Patient","contained":[{"meta":{"tag":[]},"id":"y"}],"link":[{"other":{"reference":"Patient/q"}}]}`))
	f.Add([]byte(`{"b":1,"tag":[{"code":"x"}],"a":"<&>","b":2,"lastUpdated":"2020","\u0061":3}`))
	f.Add([]byte(`Patient/p1/_history/2`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var m map[string]any
		if json.Unmarshal(raw, &m) != nil {
			// Not a resource: only the reference rewrite reads it.
			for _, base := range []string{"", "https://ehr.test/fhir"} {
				g, gok := servedReference("c_1", base, string(raw))
				w, wok := servedReferenceBySplit("c_1", base, string(raw))
				if g != w || gok != wok {
					t.Fatalf("servedReference(%q) = %q %v, want %q %v", raw, g, gok, w, wok)
				}
			}
			return // the store holds JSON objects only
		}
		rec := &store.Record{Key: store.Key{Connection: "c_1", Type: "Observation", ID: "o", VersionID: "1"}, Raw: raw}
		// The fast scanner finds exactly what encoding/json's tokenizer does.
		e1, m1, i1, err1 := editsByScan(rec, "https://ehr.test/fhir")
		e2, m2, i2, err2 := editsByTokens(rec, "https://ehr.test/fhir")
		if (err1 == nil) != (err2 == nil) || fmt.Sprint(e1) != fmt.Sprint(e2) || string(m1) != string(m2) || i1 != i2 {
			t.Fatalf("editsByScan(%q) = %v %q %d %v\neditsByTokens = %v %q %d %v", raw, e1, m1, i1, err1, e2, m2, i2, err2)
		}
		// The allocation-free helpers write what the code before them did.
		if got, want := quote(string(raw)), quoteByMarshal(string(raw)); string(got) != string(want) {
			t.Fatalf("quote(%q) = %s, encoding/json %s", raw, got, want)
		}
		for _, base := range []string{"", "https://ehr.test/fhir"} {
			g, gok := servedReference("c_1", base, string(raw))
			w, wok := servedReferenceBySplit("c_1", base, string(raw))
			if g != w || gok != wok {
				t.Fatalf("servedReference(%q) = %q %v, want %q %v", raw, g, gok, w, wok)
			}
			gm, err1 := servedMeta(rec, base, raw)
			wm, err2 := servedMetaByMap(rec, base, raw)
			if string(gm) != string(wm) || (err1 == nil) != (err2 == nil) {
				t.Fatalf("servedMeta(%q) = %s, want %s", raw, gm, wm)
			}
		}
		out, err := served(rec, "https://ehr.test/fhir")
		if err != nil {
			return
		}
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("served(%q) = %q: not JSON: %v", raw, out, err)
		}
		meta, _ := got["meta"].(map[string]any)
		if meta == nil || meta["versionId"] != "1" || !strings.Contains(string(out), ConnectionTagSystem) {
			t.Fatalf("served(%q) = %q: meta %v lacks the version or the connection tag", raw, out, meta)
		}
	})
}

// BenchmarkServed: the serve rewrite of a synthetic Observation, by the
// scanner served uses and by encoding/json's tokenizer.
func BenchmarkServed(b *testing.B) {
	raw := []byte(`{"resourceType":"Observation","id":"p00001-obs-017","meta":{"versionId":"3","lastUpdated":"2024-01-02T03:04:05Z"},"status":"final",` +
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],` +
		`"code":{"coding":[{"system":"http://loinc.org","code":"2345-7","display":"Glucose [Mass/volume] in Serum or Plasma"}],"text":"Glucose"},` +
		`"subject":{"reference":"Patient/p00001"},"encounter":{"reference":"Encounter/p00001-enc-003"},"effectiveDateTime":"2024-01-02T03:00:00Z",` +
		`"valueQuantity":{"value":126,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"},` +
		`"referenceRange":[{"low":{"value":70,"unit":"mg/dL"},"high":{"value":99,"unit":"mg/dL"}}]}`)
	rec := &store.Record{Key: store.Key{Connection: "epic_a", Type: "Observation", ID: "p00001-obs-017", VersionID: "3"}, Raw: raw}
	for _, fn := range []struct {
		name string
		f    func(*store.Record, string) ([]edit, []byte, int, error)
	}{{"scan", editsByScan}, {"tokens", editsByTokens}} {
		b.Run(fn.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for i := 0; i < b.N; i++ {
				if _, _, _, err := fn.f(rec, "https://ehr.test/fhir"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("served", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for i := 0; i < b.N; i++ {
			if _, err := served(rec, "https://ehr.test/fhir"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func FuzzTopLevel(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Observation","id":"o1","code":{"coding":[{"code":"x\"}"}]},"value":1.5,"n":null,"b":true,"a":[1,{"x":[]}]}`))
	f.Add([]byte(` { "a" : "\u00e9" , "b":{} } `))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var want map[string]json.RawMessage
		if json.Unmarshal(raw, &want) != nil {
			topLevel(raw) // must not panic
			return
		}
		got := topLevel(raw)
		if len(got) != len(want) {
			t.Fatalf("topLevel(%q) found %d elements, encoding/json %d", raw, len(got), len(want))
		}
		for k, v := range want {
			var a, b any
			json.Unmarshal(v, &a)
			if err := json.Unmarshal(got[k], &b); err != nil || fmt.Sprint(a) != fmt.Sprint(b) {
				t.Fatalf("topLevel(%q)[%q] = %q, encoding/json %q", raw, k, got[k], v)
			}
		}
	})
}

// quoteByMarshal, servedReferenceBySplit and servedMetaByMap are the code
// before quote, servedReference and servedMeta stopped allocating: the
// reference FuzzServed holds them to.
func quoteByMarshal(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

func servedReferenceBySplit(conn, baseURL, r string) (string, bool) {
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

func servedMetaByMap(rec *store.Record, baseURL string, src []byte) ([]byte, error) {
	var m map[string][]byte
	if len(src) > 0 && src[0] == '{' {
		// A meta that is not an object (which FHIR forbids) is replaced.
		m = topLevel(src)
	}
	b := make([]byte, 0, 192+len(src))
	b = append(b, `{"versionId":`...)
	b = append(b, quoteByMarshal(rec.VersionID)...)
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
			b = append(b, quoteByMarshal(t.UTC().Format(time.RFC3339Nano))...)
		}
	}
	source := "urn:ehrgate:connection:" + rec.Connection
	if baseURL != "" {
		source = baseURL
	}
	b = append(b, `,"source":`...)
	b = append(b, quoteByMarshal(source)...)
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
		b = append(b, quoteByMarshal(k)...)
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
	b = append(b, quoteByMarshal(rec.Connection)...)
	b = append(b, "}]}"...)
	return b, nil
}
