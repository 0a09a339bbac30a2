package bulkexport

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"ehrgate/fhir"
	"ehrgate/fhir/bulk"
	"ehrgate/synth"
)

func newTest(t *testing.T, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	if opts.Source == nil {
		opts.Source = synth.New(synth.Options{Patients: 3, Seed: 1})
	}
	s := New(opts)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts
}

func get(t *testing.T, url string, hdr map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if strings.Contains(url, "$export") {
		req.Header.Set("Accept", "application/fhir+json") // every kick-off needs it
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

var async = map[string]string{"Prefer": "respond-async"}

func TestKickoffValidation(t *testing.T) {
	_, ts := newTest(t, Options{Groups: map[string][]int{"g": {0}},
		Authorize: func(r *http.Request) error {
			if r.Header.Get("Authorization") == "" {
				return errors.New("no token")
			}
			return nil
		}})
	auth := map[string]string{"Prefer": "respond-async", "Authorization": "Bearer x"}
	tests := []struct {
		name string
		path string
		hdr  map[string]string
		want int
		code string
	}{
		{"system", "/fhir/$export", auth, 202, ""},
		{"patient", "/fhir/Patient/$export?_type=Patient,Condition", auth, 202, ""},
		{"group", "/fhir/Group/g/$export?_since=2026-01-01T00:00:00Z", auth, 202, ""},
		{"ndjson format", "/fhir/$export?_outputFormat=application%2Ffhir%2Bndjson", auth, 202, ""},
		{"no token", "/fhir/$export", async, 401, "login"},
		{"no Prefer", "/fhir/$export", map[string]string{"Authorization": "Bearer x"}, 400, "invalid"},
		{"bad _since", "/fhir/$export?_since=yesterday", auth, 400, "invalid"},
		{"bad _outputFormat", "/fhir/$export?_outputFormat=text%2Fcsv", auth, 400, "not-supported"},
		{"_typeFilter", "/fhir/$export?_typeFilter=Observation%3Fcode%3Dx", auth, 202, ""},
		{"_typeFilter unsupported parameter", "/fhir/$export?_typeFilter=Observation%3Fvalue-quantity%3Dgt5", auth, 400, "not-supported"},
		{"_typeFilter unsupported parameter, lenient", "/fhir/$export?_typeFilter=Observation%3Fvalue-quantity%3Dgt5",
			map[string]string{"Prefer": "respond-async, handling=lenient", "Authorization": "Bearer x"}, 202, ""},
		{"_typeFilter parameter of another type", "/fhir/$export?_typeFilter=Patient%3Fcategory%3Dx", auth, 400, "not-supported"},
		{"_typeFilter modifier", "/fhir/$export?_typeFilter=Observation%3Fcode%3Atext%3Dx", auth, 400, "not-supported"},
		{"_typeFilter without ?", "/fhir/$export?_typeFilter=Observation", auth, 400, "invalid"},
		{"_typeFilter bad type", "/fhir/$export?_typeFilter=observation%3Fcode%3Dx", auth, 400, "invalid"},
		{"_typeFilter result parameter", "/fhir/$export?_typeFilter=Observation%3F_sort%3Ddate", auth, 400, "invalid"},
		{"_typeFilter bad date", "/fhir/$export?_typeFilter=Observation%3Fdate%3Dyesterday", auth, 400, "invalid"},
		{"_typeFilter bad date, lenient", "/fhir/$export?_typeFilter=Observation%3Fdate%3Dyesterday",
			map[string]string{"Prefer": "respond-async, handling=lenient", "Authorization": "Bearer x"}, 400, "invalid"},
		{"unknown parameter", "/fhir/$export?_foo=id", auth, 400, "not-supported"},
		{"unknown parameter, lenient", "/fhir/$export?_foo=id",
			map[string]string{"Prefer": "respond-async, handling=lenient", "Authorization": "Bearer x"}, 202, ""},
		{"no Accept", "/fhir/$export", map[string]string{"Prefer": "respond-async", "Authorization": "Bearer x", "Accept": ""}, 400, "not-supported"},
		{"Accept application/json", "/fhir/$export", map[string]string{"Prefer": "respond-async", "Authorization": "Bearer x", "Accept": "application/json"}, 400, "not-supported"},
		{"bad _type", "/fhir/$export?_type=obs%20ervation", auth, 400, "not-supported"},
		{"unknown _type", "/fhir/$export?_type=Patient,MissingType", auth, 400, "not-supported"},
		{"unknown _type, lenient", "/fhir/$export?_type=Patient,MissingType",
			map[string]string{"Prefer": "respond-async, handling=lenient", "Authorization": "Bearer x"}, 202, ""},
		{"future _since", "/fhir/$export?_since=2999-01-01T00:00:00Z", auth, 400, "invalid"},
		{"_elements", "/fhir/$export?_elements=id,Patient.name", auth, 202, ""},
		{"nested _elements", "/fhir/$export?_elements=Patient.name.given", auth, 400, "invalid"},
		{"includeAssociatedData", "/fhir/$export?includeAssociatedData=LatestProvenanceResources,RelevantProvenanceResources", auth, 202, ""},
		{"includeAssociatedData unknown", "/fhir/$export?includeAssociatedData=_custom", auth, 400, "not-supported"},
		{"patient in a GET", "/fhir/Patient/$export?patient=Patient/1", auth, 400, "invalid"},
		{"unknown group", "/fhir/Group/nope/$export", auth, 404, "not-found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := get(t, ts.URL+tc.path, tc.hdr)
			if resp.StatusCode != tc.want {
				t.Fatalf("GET %s = %d, want %d", tc.path, resp.StatusCode, tc.want)
			}
			if tc.want == 202 {
				if loc := resp.Header.Get("Content-Location"); !strings.HasPrefix(loc, ts.URL+"/fhir/$bulk-status/") {
					t.Errorf("Content-Location = %q", loc)
				}
				return
			}
			var oo struct {
				ResourceType string `json:"resourceType"`
				Issue        []struct {
					Code        string `json:"code"`
					Diagnostics string `json:"diagnostics"`
				} `json:"issue"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&oo); err != nil || oo.ResourceType != "OperationOutcome" || oo.Issue[0].Code != tc.code {
				t.Fatalf("body = %+v, %v; want an OperationOutcome with code %s", oo, err, tc.code)
			}
			// An unsupported parameter is named, so the client can drop it.
			if tc.code == "not-supported" && strings.Contains(tc.path, "_typeFilter") {
				q, _ := url.ParseQuery(strings.SplitN(tc.path, "?", 2)[1])
				f, _, _ := strings.Cut(q.Get("_typeFilter"), "=")
				name := strings.SplitN(f, "?", 2)[1]
				if !strings.Contains(oo.Issue[0].Diagnostics, name) {
					t.Errorf("diagnostics %q do not name %s", oo.Issue[0].Diagnostics, name)
				}
			}
		})
	}
}

func TestStatusFilesAndDelete(t *testing.T) {
	s, ts := newTest(t, Options{FileSize: 40, RetryAfter: 2 * time.Second})
	loc := get(t, ts.URL+"/fhir/$export", async).Header.Get("Content-Location")
	var resp *http.Response
	for i := 0; i < 100; i++ {
		resp = get(t, loc, nil)
		if resp.StatusCode == 200 {
			break
		}
		if resp.StatusCode != 202 || resp.Header.Get("Retry-After") != "2" || !strings.HasPrefix(resp.Header.Get("X-Progress"), "planning") {
			t.Fatalf("status = %d Retry-After %q X-Progress %q", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("X-Progress"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	var m struct {
		Output []struct {
			Type  string `json:"type"`
			URL   string `json:"url"`
			Count int    `json:"count"`
		} `json:"output"`
		RequiresAccessToken bool `json:"requiresAccessToken"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || len(m.Output) == 0 || m.RequiresAccessToken {
		t.Fatalf("manifest = %+v, %v", m, err)
	}
	for _, f := range m.Output {
		if f.Count > 40 {
			t.Errorf("file of %d resources, FileSize is 40", f.Count)
		}
	}
	body, _ := io.ReadAll(get(t, m.Output[0].URL, nil).Body)
	if n := strings.Count(string(body), "\n"); n != m.Output[0].Count {
		t.Errorf("file has %d lines, manifest says %d", n, m.Output[0].Count)
	}
	req, _ := http.NewRequest(http.MethodDelete, loc, nil)
	dr, err := http.DefaultClient.Do(req)
	if err != nil || dr.StatusCode != 202 {
		t.Fatalf("DELETE = %v, %v; want 202", dr, err)
	}
	dr.Body.Close()
	if got := get(t, loc, nil).StatusCode; got != 404 {
		t.Errorf("status after DELETE = %d, want 404", got)
	}
	if got := get(t, m.Output[0].URL, nil).StatusCode; got != 404 {
		t.Errorf("file after DELETE = %d, want 404", got)
	}
	if s.Stats().Deletes != 1 {
		t.Errorf("Deletes = %d", s.Stats().Deletes)
	}
}

func TestSinceUpdatedAndDeleted(t *testing.T) {
	gen := synth.New(synth.Options{Patients: 4, Seed: 1})
	at := gen.Now().Add(time.Hour)
	s := New(Options{Source: gen, Updated: func(i int) bool { return i == 2 }, UpdatedAt: at, Deleted: []string{"Patient/p00001"}})
	j := &job{since: gen.Now(), patients: nil}
	got := 0
	for k := 0; k < 4; k++ {
		for _, list := range s.resources(j, k) {
			for _, raw := range list {
				got++
				if !strings.Contains(string(raw), `"versionId":"2"`) || !strings.Contains(string(raw), at.Format(time.RFC3339)) {
					t.Fatalf("updated resource not bumped: %.120s", raw)
				}
			}
		}
	}
	if want := len(gen.Resources(2)); got != want {
		t.Errorf("resources after _since = %d, want %d (patient 2's)", got, want)
	}
}

func TestReplaceValue(t *testing.T) {
	in := []byte(`{"resourceType":"X","id":"a","meta":{"versionId":"1","lastUpdated":"2020-01-01T00:00:00Z"}}`)
	out := string(bump(in, time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)))
	if out != `{"resourceType":"X","id":"a","meta":{"versionId":"2","lastUpdated":"2026-07-01T00:00:00Z"}}` {
		t.Errorf("bump = %s", out)
	}
	if lu, ok := lastUpdated([]byte(out)); !ok || lu.Year() != 2026 {
		t.Errorf("lastUpdated = %v, %v", lu, ok)
	}
}

// manifestOf kicks off an export and polls its status URL until the
// manifest (or another final answer) comes.
func manifestOf(t *testing.T, ts *httptest.Server) (statusURL string, m bulk.Manifest) {
	t.Helper()
	loc := get(t, ts.URL+"/fhir/$export", async).Header.Get("Content-Location")
	for i := 0; i < 200; i++ {
		resp := get(t, loc, nil)
		if resp.StatusCode == 202 {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		mp, err := bulk.DecodeManifest(body)
		if resp.StatusCode != 200 || err != nil {
			t.Fatalf("status = %d, %v", resp.StatusCode, err)
		}
		return loc, *mp
	}
	t.Fatal("the manifest never came")
	return "", bulk.Manifest{}
}

// TestUngeneratedAndExpiredFiles: UngeneratedFile moves a file of the
// first job from output to error (an OperationOutcome naming it and its
// type); ExpireFile makes a file of the first job answer 410, and then its
// status URL too. Later jobs are whole.
func TestUngeneratedAndExpiredFiles(t *testing.T) {
	s, ts := newTest(t, Options{FileSize: 40, RetryAfter: -1, Faults: Faults{UngeneratedFile: 2, ExpireFile: 3}})
	loc, m := manifestOf(t, ts)
	if len(m.Error) != 1 || m.Error[0].Type != "OperationOutcome" {
		t.Fatalf("manifest error = %+v, want one OperationOutcome file", m.Error)
	}
	for _, f := range m.Output {
		if strings.HasSuffix(f.URL, "/2.ndjson") {
			t.Errorf("the ungenerated file is still in output: %s", f.URL)
		}
	}
	body, _ := io.ReadAll(get(t, m.Error[0].URL, nil).Body)
	var oo fhir.OperationOutcome
	if err := json.Unmarshal(body, &oo); err != nil || len(oo.Issue) != 1 || oo.Issue[0].Severity != "error" ||
		!strings.Contains(oo.Issue[0].Diagnostics, "Failed to export 2.") {
		t.Errorf("error file = %s, %v; want an error naming file 2", body, err)
	}
	var third string
	for _, f := range m.Output {
		if strings.HasSuffix(f.URL, "/3.ndjson") {
			third = f.URL
		}
	}
	if got := get(t, third, nil).StatusCode; got != http.StatusGone {
		t.Errorf("expired file = %d, want 410", got)
	}
	if got := get(t, loc, nil).StatusCode; got != http.StatusGone {
		t.Errorf("status URL after the expiry = %d, want 410", got)
	}
	if s.Stats().Faults != 2 {
		t.Errorf("faults = %d, want 2", s.Stats().Faults)
	}
	_, m2 := manifestOf(t, ts)
	if len(m2.Error) != 0 || len(m2.Output) != len(m.Output)+1 {
		t.Errorf("second job: %d output, %d error files; want %d and none", len(m2.Output), len(m2.Error), len(m.Output)+1)
	}
	for _, f := range m2.Output {
		if resp := get(t, f.URL, nil); resp.StatusCode != 200 {
			t.Errorf("second job's %s = %d", f.URL, resp.StatusCode)
		}
	}
}

// post kicks off with a FHIR Parameters body.
func post(t *testing.T, url, body string, hdr map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Prefer", "respond-async")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// finish polls a status URL until the manifest.
func finish(t *testing.T, loc string) manifest {
	t.Helper()
	for i := 0; i < 500; i++ {
		resp := get(t, loc, nil)
		if resp.StatusCode == 200 {
			var m manifest
			if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
				t.Fatal(err)
			}
			return m
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("export %s never finished", loc)
	return manifest{}
}

// lines downloads a file and returns its resources.
func lines(t *testing.T, url string) []map[string]any {
	t.Helper()
	resp := get(t, url, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s = %d", url, resp.StatusCode)
	}
	var out []map[string]any
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestPostKickoff(t *testing.T) {
	gen := synth.New(synth.Options{Patients: 4, Seed: 1})
	_, ts := newTest(t, Options{Source: gen, Groups: map[string][]int{"g": {1, 2}}})
	ref := func(i int) string {
		return `{"name":"patient","valueReference":{"reference":"Patient/` + gen.PatientID(i) + `"}}`
	}
	tests := []struct {
		name, path, body string
		want             int
		patients         []string // Patient ids exported
	}{
		{"system, _type", "/fhir/$export", `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Patient"}]}`, 202,
			[]string{gen.PatientID(0), gen.PatientID(1), gen.PatientID(2), gen.PatientID(3)}},
		{"patient parameter", "/fhir/Patient/$export", `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Patient"},` + ref(2) + `]}`, 202,
			[]string{gen.PatientID(2)}},
		{"patient parameter within a group", "/fhir/Group/g/$export", `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Patient"},` + ref(0) + `,` + ref(1) + `]}`, 202,
			[]string{gen.PatientID(1)}},
		{"unknown patients", "/fhir/Patient/$export", `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Patient"},{"name":"patient","valueReference":{"reference":"Patient/nope"}}]}`, 202,
			nil},
		{"system with patient", "/fhir/$export", `{"resourceType":"Parameters","parameter":[` + ref(0) + `]}`, 400, nil},
		{"future _since", "/fhir/$export", `{"resourceType":"Parameters","parameter":[{"name":"_since","valueInstant":"2999-01-01T00:00:00Z"}]}`, 400, nil},
		{"not Parameters", "/fhir/$export", `{"resourceType":"Bundle"}`, 400, nil},
		{"query and body", "/fhir/$export?_type=Patient", `{"resourceType":"Parameters"}`, 400, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(t, ts.URL+tc.path, tc.body, nil)
			if resp.StatusCode != tc.want {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("POST %s = %d %s, want %d", tc.path, resp.StatusCode, b, tc.want)
			}
			if tc.want != 202 {
				return
			}
			m := finish(t, resp.Header.Get("Content-Location"))
			var got []string
			for _, f := range m.Output {
				for _, r := range lines(t, f.URL) {
					got = append(got, r["id"].(string))
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.patients, ",") {
				t.Errorf("exported Patients %v, want %v", got, tc.patients)
			}
		})
	}
}

func TestElements(t *testing.T) {
	_, ts := newTest(t, Options{})
	m := export(t, ts.URL, "_type=Patient,Condition&_elements=id,Patient.gender", async)
	if len(m.Output) == 0 {
		t.Fatal("no output")
	}
	for _, f := range m.Output {
		for _, r := range lines(t, f.URL) {
			want := map[string]bool{"resourceType": true, "id": true, "meta": true}
			if r["resourceType"] == "Patient" {
				want["gender"] = true
			}
			for k := range r {
				if !want[k] {
					t.Errorf("%s %s has %s, not asked for", r["resourceType"], r["id"], k)
				}
			}
			meta, _ := r["meta"].(map[string]any)
			tags, _ := meta["tag"].([]any)
			found := false
			for _, tag := range tags {
				tm, _ := tag.(map[string]any)
				found = found || tm["code"] == "SUBSETTED"
			}
			if !found {
				t.Errorf("%s %s is not tagged SUBSETTED: meta %v", r["resourceType"], r["id"], meta)
			}
		}
	}
}

// TestKickoffLenientWarnings: what handling=lenient let through is named,
// one warning OperationOutcome per issue, in the file the manifest's error
// array lists.
func TestKickoffLenientWarnings(t *testing.T) {
	_, ts := newTest(t, Options{})
	m := export(t, ts.URL, "_type=Patient,MissingType&_typeFilter=Patient%3Fstatus%3Dactive&_foo=1",
		map[string]string{"Prefer": "respond-async, handling=lenient"})
	var text []string
	for _, f := range m.Error {
		if f.Type != "OperationOutcome" {
			t.Errorf("error entry of type %s", f.Type)
		}
		for _, r := range lines(t, f.URL) {
			b, _ := json.Marshal(r)
			text = append(text, string(b))
		}
	}
	all := strings.Join(text, "\n")
	for _, want := range []string{"MissingType", "_typeFilter", "_foo"} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings do not name %s:\n%s", want, all)
		}
	}
}
