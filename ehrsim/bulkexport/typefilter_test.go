package bulkexport

import (
	"encoding/json"
	"io"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"ehrgate/ehrsim/internal/fhirdate"
	"ehrgate/synth"
)

// decoded is a source resource decoded generically, so that the expected
// results below are computed independently of the server's view struct.
type decoded struct {
	typ string
	obj map[string]any
}

func decodeSource(t *testing.T, gen *synth.Generator) []decoded {
	t.Helper()
	var out []decoded
	for i := 0; i < gen.Patients(); i++ {
		for _, r := range gen.Resources(i) {
			var obj map[string]any
			if err := json.Unmarshal(r.JSON, &obj); err != nil {
				t.Fatal(err)
			}
			out = append(out, decoded{r.Type, obj})
		}
	}
	return out
}

func str(obj map[string]any, keys ...string) string {
	var cur any = obj
	for _, k := range keys {
		m, _ := cur.(map[string]any)
		cur = m[k]
	}
	s, _ := cur.(string)
	return s
}

// codes lists "system|code" of a CodeableConcept or an array of them.
func codes(v any) []string {
	var out []string
	var concepts []any
	switch x := v.(type) {
	case []any:
		concepts = x
	case map[string]any:
		concepts = []any{x}
	}
	for _, c := range concepts {
		m, _ := c.(map[string]any)
		cs, _ := m["coding"].([]any)
		for _, cd := range cs {
			cm, _ := cd.(map[string]any)
			out = append(out, str(cm, "system")+"|"+str(cm, "code"))
		}
	}
	return out
}

func hasCode(v any, code string) bool {
	for _, c := range codes(v) {
		if c == code || strings.HasSuffix(c, "|"+code) && !strings.Contains(code, "|") {
			return true
		}
	}
	return false
}

func instant(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return v
}

// median returns the middle of the sorted values read by f from resources
// of typ.
func median(t *testing.T, src []decoded, typ string, f func(map[string]any) string) time.Time {
	t.Helper()
	var ts []time.Time
	for _, r := range src {
		if s := f(r.obj); r.typ == typ && s != "" {
			ts = append(ts, instant(t, s))
		}
	}
	if len(ts) == 0 {
		t.Fatalf("no %s values", typ)
	}
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	return ts[len(ts)/2]
}

type manifestFile struct {
	Type  string `json:"type"`
	URL   string `json:"url"`
	Count int    `json:"count"`
}

type manifest struct {
	Output []manifestFile `json:"output"`
	Error  []manifestFile `json:"error"`
}

// export kicks off with query and polls until the manifest is ready.
func export(t *testing.T, base, query string, hdr map[string]string) manifest {
	t.Helper()
	resp := get(t, base+"/fhir/$export?"+query, hdr)
	if resp.StatusCode != 202 {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("kick-off ?%s = %d %s", query, resp.StatusCode, body)
	}
	loc := resp.Header.Get("Content-Location")
	for i := 0; i < 500; i++ {
		resp = get(t, loc, nil)
		if resp.StatusCode == 200 {
			var m manifest
			if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
				t.Fatal(err)
			}
			return m
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("export ?%s never finished", query)
	return manifest{}
}

func TestTypeFilter(t *testing.T) {
	gen := synth.New(synth.Options{Patients: 5, Seed: 2})
	src := decodeSource(t, gen)
	_, ts := newTest(t, Options{Source: gen, FileSize: 1000})

	const obsCat = "http://terminology.hl7.org/CodeSystem/observation-category"
	effective := func(o map[string]any) string { return str(o, "effectiveDateTime") }
	obsMid := median(t, src, "Observation", effective)
	luMid := median(t, src, "Observation", func(o map[string]any) string { return str(o, "meta", "lastUpdated") })
	encMid := median(t, src, "Encounter", func(o map[string]any) string { return str(o, "period", "start") })
	var labCode string // a LOINC code some lab Observation carries
	for _, r := range src {
		if r.typ == "Observation" && hasCode(r.obj["category"], "laboratory") {
			labCode = codes(r.obj["code"])[0]
			break
		}
	}
	isLab := func(o map[string]any) bool { return hasCode(o["category"], "laboratory") }
	afterMid := func(o map[string]any) bool { return !instant(t, effective(o)).Before(obsMid) }

	type pred func(o map[string]any) bool
	tests := []struct {
		name    string
		filters []string // one _typeFilter parameter each
		types   string   // _type
		want    map[string]pred
		// trivial allows a filtered type to keep none or all of its
		// resources (otherwise the case must select a strict subset).
		trivial bool
	}{
		{name: "category code", filters: []string{"Observation?category=laboratory"},
			want: map[string]pred{"Observation": isLab}},
		{name: "category system|code", filters: []string{"Observation?category=" + obsCat + "|vital-signs"},
			want: map[string]pred{"Observation": func(o map[string]any) bool { return hasCode(o["category"], obsCat+"|vital-signs") }}},
		{name: "category with another system", filters: []string{"Observation?category=http://example.org/cat|vital-signs"},
			want: map[string]pred{"Observation": func(map[string]any) bool { return false }}, trivial: true},
		{name: "code system|code", filters: []string{"Observation?code=" + labCode},
			want: map[string]pred{"Observation": func(o map[string]any) bool { return hasCode(o["code"], labCode) }}},
		{name: "status any of", filters: []string{"Observation?status=final,amended"},
			want: map[string]pred{"Observation": func(o map[string]any) bool {
				return o["status"] == "final" || o["status"] == "amended"
			}}, trivial: true},
		{name: "date ge", filters: []string{"Observation?date=ge" + obsMid.Format(time.RFC3339)},
			want: map[string]pred{"Observation": afterMid}},
		{name: "date le day", filters: []string{"Observation?date=le" + obsMid.Format("2006-01-02")},
			want: map[string]pred{"Observation": func(o map[string]any) bool {
				return instant(t, effective(o)).Before(obsMid.Truncate(24 * time.Hour).Add(24 * time.Hour))
			}}},
		{name: "AND of parameters", filters: []string{"Observation?category=laboratory&date=ge" + obsMid.Format(time.RFC3339)},
			want: map[string]pred{"Observation": func(o map[string]any) bool { return isLab(o) && afterMid(o) }}},
		{name: "OR of comma-separated queries", filters: []string{"Observation?category=laboratory,Observation?category=vital-signs"},
			want: map[string]pred{"Observation": func(o map[string]any) bool {
				return isLab(o) || hasCode(o["category"], "vital-signs")
			}}},
		{name: "OR of repeated parameters", filters: []string{"Observation?category=laboratory", "Observation?category=vital-signs"},
			want: map[string]pred{"Observation": func(o map[string]any) bool {
				return isLab(o) || hasCode(o["category"], "vital-signs")
			}}},
		{name: "Condition clinical-status", filters: []string{"Condition?clinical-status=active"},
			want: map[string]pred{"Condition": func(o map[string]any) bool { return hasCode(o["clinicalStatus"], "active") }}},
		{name: "Condition category", filters: []string{"Condition?category=encounter-diagnosis"},
			want: map[string]pred{"Condition": func(o map[string]any) bool { return hasCode(o["category"], "encounter-diagnosis") }}},
		{name: "MedicationRequest status list", filters: []string{"MedicationRequest?status=active,stopped"},
			want: map[string]pred{"MedicationRequest": func(o map[string]any) bool {
				return o["status"] == "active" || o["status"] == "stopped"
			}}},
		{name: "Encounter date lt", filters: []string{"Encounter?date=lt" + encMid.Format(time.RFC3339)},
			want: map[string]pred{"Encounter": func(o map[string]any) bool {
				return instant(t, str(o, "period", "start")).Before(encMid)
			}}},
		{name: "_lastUpdated gt", filters: []string{"Observation?_lastUpdated=gt" + luMid.Format(time.RFC3339)},
			want: map[string]pred{"Observation": func(o map[string]any) bool {
				return instant(t, str(o, "meta", "lastUpdated")).After(luMid)
			}}},
		{name: "two types filtered, one whole by _type", types: "Observation,Condition,Patient",
			filters: []string{"Observation?category=laboratory,Condition?clinical-status=active"},
			want: map[string]pred{"Observation": isLab,
				"Condition": func(o map[string]any) bool { return hasCode(o["clinicalStatus"], "active") }}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{}
			for _, f := range tc.filters {
				q.Add("_typeFilter", f)
			}
			var types []string
			if tc.types != "" {
				q.Set("_type", tc.types)
				types = strings.Split(tc.types, ",")
			}
			m := export(t, ts.URL, q.Encode(), async)
			got := map[string]int{}
			for _, f := range m.Output {
				got[f.Type] += f.Count
			}
			want, all := map[string]int{}, map[string]int{}
			for _, r := range src {
				if types != nil && !slices.Contains(types, r.typ) {
					continue
				}
				all[r.typ]++
				if p, ok := tc.want[r.typ]; !ok || p(r.obj) {
					want[r.typ]++
				}
			}
			for typ := range all {
				if got[typ] != want[typ] {
					t.Errorf("%s: exported %d, want %d (of %d)", typ, got[typ], want[typ], all[typ])
				}
			}
			for typ := range got {
				if all[typ] == 0 {
					t.Errorf("%s exported (%d), not asked for", typ, got[typ])
				}
			}
			for typ := range tc.want {
				if !tc.trivial && (want[typ] == 0 || want[typ] == all[typ]) {
					t.Errorf("%s: the filter keeps %d of %d; pick one that selects a strict subset", typ, want[typ], all[typ])
				}
			}
			if len(m.Error) != 0 {
				t.Errorf("manifest error files %v, want none", m.Error)
			}
		})
	}

	t.Run("file content matches", func(t *testing.T) {
		m := export(t, ts.URL, "_type=Observation&_typeFilter="+url.QueryEscape("Observation?category=laboratory"), async)
		lines := 0
		for _, f := range m.Output {
			body, _ := io.ReadAll(get(t, f.URL, nil).Body)
			for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
				var o map[string]any
				if err := json.Unmarshal([]byte(line), &o); err != nil || !isLab(o) {
					t.Fatalf("served %.100s, want only laboratory Observations (%v)", line, err)
				}
				lines++
			}
		}
		if lines == 0 {
			t.Fatal("no laboratory Observation served")
		}
	})
}

// TestTypeFilterLenient checks that an unsupported parameter is dropped from
// its query (the rest still applies) and reported as a warning in the
// manifest's error file.
func TestTypeFilterLenient(t *testing.T) {
	gen := synth.New(synth.Options{Patients: 3, Seed: 2})
	src := decodeSource(t, gen)
	_, ts := newTest(t, Options{Source: gen})
	q := "_type=Observation&_typeFilter=" + url.QueryEscape("Observation?category=laboratory&value-quantity=gt5")
	m := export(t, ts.URL, q, map[string]string{"Prefer": "respond-async, handling=lenient"})
	got, want := 0, 0
	for _, f := range m.Output {
		got += f.Count
	}
	for _, r := range src {
		if r.typ == "Observation" && hasCode(r.obj["category"], "laboratory") {
			want++
		}
	}
	if got != want || want == 0 {
		t.Errorf("exported %d Observations, want the %d laboratory ones", got, want)
	}
	if len(m.Error) != 1 || m.Error[0].Type != "OperationOutcome" || m.Error[0].Count != 1 {
		t.Fatalf("manifest error = %+v, want one OperationOutcome file with one warning", m.Error)
	}
	body, _ := io.ReadAll(get(t, m.Error[0].URL, nil).Body)
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Severity    string `json:"severity"`
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
	}
	if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 ||
		oo.Issue[0].Severity != "warning" || !strings.Contains(oo.Issue[0].Diagnostics, "value-quantity") {
		t.Errorf("error file = %s (%v), want a warning naming value-quantity", body, err)
	}
}

func TestSplitFilters(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
	}{
		{[]string{"Observation?category=laboratory"}, []string{"Observation?category=laboratory"}},
		{[]string{"Observation?a=1,Condition?b=2"}, []string{"Observation?a=1", "Condition?b=2"}},
		{[]string{"MedicationRequest?status=active,completed&date=gt2018"}, []string{"MedicationRequest?status=active,completed&date=gt2018"}},
		{[]string{"Observation?a=1", "Observation?b=x,y,Encounter?"}, []string{"Observation?a=1", "Observation?b=x,y", "Encounter?"}},
	}
	for _, tc := range tests {
		if got := splitFilters(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("splitFilters(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDateQuery(t *testing.T) {
	at := func(s string) span {
		sp, err := fhirdate.ParseSpan(s)
		if err != nil {
			t.Fatal(err)
		}
		return sp
	}
	open := span{Lo: at("2024-03-01T10:00:00Z").Lo, Hi: fhirdate.MaxTime}
	tests := []struct {
		query string
		value span
		want  bool
	}{
		{"ge2024-03-01", at("2024-03-01T00:00:00Z"), true},
		{"ge2024-03-01", at("2024-02-29T23:59:59Z"), false},
		{"gt2024-03-01", at("2024-03-01T12:00:00Z"), false}, // within the day: not after it
		{"gt2024-03-01", at("2024-03-02T00:00:00Z"), true},
		{"lt2024-03-01T10:00:00Z", at("2024-03-01T09:59:59Z"), true},
		{"lt2024-03-01T10:00:00Z", at("2024-03-01T10:00:00Z"), false},
		{"le2024-03", at("2024-03-31T23:59:59Z"), true},
		{"le2024-03", at("2024-04-01T00:00:00Z"), false},
		{"2024-03-01", at("2024-03-01T10:00:00+02:00"), true},
		{"ge2030-01-01", open, true}, // an open Period extends after any date
		{"lt2024-03-01T10:00:00Z", open, false},
		{"ne2024", at("2025-01-01"), true},
	}
	for _, tc := range tests {
		q, err := fhirdate.ParseQuery(tc.query)
		if err != nil {
			t.Fatalf("fhirdate.ParseQuery(%q): %v", tc.query, err)
		}
		if got := q.Matches(tc.value); got != tc.want {
			t.Errorf("%s matches [%v, %v) = %v, want %v", tc.query, tc.value.Lo, tc.value.Hi, got, tc.want)
		}
	}
	for _, bad := range []string{"xx2024", "yesterday", "ge", "2024-13"} {
		if _, err := fhirdate.ParseQuery(bad); err == nil {
			t.Errorf("fhirdate.ParseQuery(%q) accepted", bad)
		}
	}
}
