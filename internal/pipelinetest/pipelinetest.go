// Package pipelinetest holds the population pipeline's end-to-end test kit
// (issue 17): simulated EHRs with a vendor personality, Bulk Data over their
// live data and a write log; the Flags a test expects, computed from the
// simulators' raw FHIR JSON alone (without packages normalize or risk); and
// the checks of an EHR's end state. It is used by the tests of package
// gateway and of the ehrgate command (the kill -9 test).
package pipelinetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ehrgate/config"
	"ehrgate/ehrsim"
	"ehrgate/ehrsim/bulkexport"
	"ehrgate/ehrsim/personality"
	"ehrgate/pipeline"
	"ehrgate/synth"
)

// AsOf is the rules' evaluation date: the synthetic data's "today".
var AsOf = synth.New(synth.Options{}).Now()

// EHR is a simulated EHR with a vendor personality, its Bulk Data
// server over its live data, and its write log.
type EHR struct {
	Name, Vendor string
	Sim          *ehrsim.Server
	URL          string // the server's root; the FHIR base is URL + "/fhir"

	writeDelay atomic.Int64 // nanoseconds each write waits before it is served
}

// SetWriteDelay makes every later write request (POST other than a search,
// PUT) wait d before it is served, so that a test can stop a writer in
// the middle of a run.
func (v *EHR) SetWriteDelay(d time.Duration) { v.writeDelay.Store(int64(d)) }

// NewEHR starts a simulated EHR with the vendor's personality over
// patients synthetic patients (seed), and its Bulk Data server over the
// simulator's live data; it stops when t ends.
func NewEHR(t testing.TB, name, vendor string, patients int, seed int64) *EHR {
	t.Helper()
	sim := ehrsim.New(ehrsim.Options{BulkExport: true})
	gen := synth.New(synth.Options{Patients: patients, Seed: seed})
	if err := gen.Each(func(_ string, raw json.RawMessage) error { return sim.Load(raw) }); err != nil {
		t.Fatal(err)
	}
	rest, err := personality.Wrap(vendor, nil, sim.Handler())
	if err != nil {
		t.Fatal(err)
	}
	e := &EHR{Name: name, Vendor: vendor, Sim: sim}
	mux := http.NewServeMux()
	mux.Handle("/", sim.RecordWrites(rest))
	bulkexport.New(bulkexport.Options{Source: bulkexport.Live(sim.Population()), RetryAfter: -1}).Register(mux)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := e.writeDelay.Load(); d > 0 && (r.Method == http.MethodPut ||
			r.Method == http.MethodPost && !strings.HasSuffix(r.URL.Path, "/_search") && !strings.Contains(r.URL.Path, "$export")) {
			time.Sleep(time.Duration(d))
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	e.URL = srv.URL
	return e
}

// Connection is the EHR as an ehrgate connection whose write policy allows
// Flag and Observation creates and updates, approved by the policy, with a
// "derived" tag.
func (v *EHR) Connection() config.Connection {
	return config.Connection{Name: v.Name, BaseURL: v.URL + "/fhir", Vendor: v.Vendor,
		Write: &config.Write{Enabled: true, Types: []string{"Flag", "Observation"}, Operations: []string{"create", "update"},
			Approval: config.ApprovalAuto, Rate: 100000,
			Tags: []config.WriteTag{{System: "urn:ehrgate:tag", Code: "derived"}}}}
}

// ---- The expected Flags, computed from the simulator's data alone (raw
// FHIR JSON, without packages normalize or risk).

type rawCoding struct{ System, Code, Display string }

type rawResource struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	BirthDate    string `json:"birthDate"`
	Gender       string `json:"gender"`
	Status       string `json:"status"`
	Subject      struct{ Reference string }
	Code         struct {
		Coding []rawCoding
		Text   string
	}
	MedCC        struct{ Coding []rawCoding } `json:"medicationCodeableConcept"`
	Clinical     struct{ Coding []rawCoding } `json:"clinicalStatus"`
	Verification struct{ Coding []rawCoding } `json:"verificationStatus"`
	Abatement    string                       `json:"abatementDateTime"`
	Effective    string                       `json:"effectiveDateTime"`
	Value        *struct{ Value float64 }     `json:"valueQuantity"`
	Identifier   []rawCoding                  `json:"identifier"`
}

func codeOf(cs []rawCoding, system string) string {
	for _, c := range cs {
		if c.System == system {
			return c.Code
		}
	}
	return ""
}

const (
	sysICD = "http://hl7.org/fhir/sid/icd-10-cm"
	sysSCT = "http://snomed.info/sct"
)

// has reports whether a condition's codes fall in an ICD-10-CM prefix list
// or a SNOMED CT list.
func has(cs []rawCoding, icd []string, sct []string) bool {
	i := strings.ReplaceAll(codeOf(cs, sysICD), ".", "")
	for _, p := range icd {
		if i != "" && strings.HasPrefix(i, p) {
			return true
		}
	}
	return slices.Contains(sct, codeOf(cs, sysSCT)) && codeOf(cs, sysSCT) != ""
}

// Expected is a Flag the test expects: its identifier value and, for
// the AF rule, the score.
type Expected struct {
	Key   string
	Score int
}

// ExpectFlags computes the open gaps of every patient of e from its raw
// resources: AF (I48.0-I48.2, I48.91 / SNOMED 49436004) with CHA2DS2-VASc
// at or above 2 (men) or 3 (women) and no active warfarin or DOAC order;
// active diabetes (E08-E13 / SNOMED) with no HbA1c dated within a year.
func ExpectFlags(t testing.TB, e *EHR, asOf time.Time) map[string]Expected {
	t.Helper()
	flags, _ := expect(t, e, asOf)
	return flags
}

// ExpectScores computes the CHA2DS2-VASc score of every patient of e with
// atrial fibrillation, a full birth date and a sex of male or female, by
// score Observation identifier ("cha2ds2-vasc/patient id").
func ExpectScores(t testing.TB, e *EHR, asOf time.Time) map[string]int {
	t.Helper()
	_, scores := expect(t, e, asOf)
	return scores
}

func expect(t testing.TB, e *EHR, asOf time.Time) (map[string]Expected, map[string]int) {
	pop := e.Sim.Population()
	out := map[string]Expected{}
	scores := map[string]int{}
	for i := range pop.Patients() {
		var pat rawResource
		var conds, meds, obs []rawResource
		pop.Compartment(i, func(_ string, raw json.RawMessage) {
			var v rawResource
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			switch v.ResourceType {
			case "Patient":
				pat = v
			case "Condition":
				if s := codeOf(v.Verification.Coding, "http://terminology.hl7.org/CodeSystem/condition-ver-status"); s != "refuted" && s != "entered-in-error" {
					conds = append(conds, v)
				}
			case "MedicationRequest":
				meds = append(meds, v)
			case "Observation":
				obs = append(obs, v)
			}
		})
		active := func(c rawResource) bool {
			s := codeOf(c.Clinical.Coding, "http://terminology.hl7.org/CodeSystem/condition-clinical")
			return (s == "active" || s == "recurrence" || s == "relapse") && c.Abatement == ""
		}
		any := func(activeOnly bool, icd, sct []string) bool {
			for _, c := range conds {
				if (!activeOnly || active(c)) && has(c.Code.Coding, icd, sct) {
					return true
				}
			}
			return false
		}
		dmICD, dmSCT := []string{"E08", "E09", "E10", "E11", "E13"}, []string{"73211009", "44054006", "46635009"}
		if any(true, []string{"I480", "I481", "I482", "I4891"}, []string{"49436004"}) && pat.BirthDate != "" {
			born, err := time.Parse("2006-01-02", pat.BirthDate)
			if err != nil {
				t.Fatalf("patient %s birth date %q", pat.ID, pat.BirthDate)
			}
			age := asOf.Year() - born.Year()
			if asOf.YearDay() < born.YearDay() && !(asOf.Month() > born.Month() || asOf.Month() == born.Month() && asOf.Day() >= born.Day()) {
				age--
			}
			score := 0
			if age >= 75 {
				score += 2
			} else if age >= 65 {
				score++
			}
			if pat.Gender == "female" {
				score++
			}
			for _, item := range []struct {
				icd, sct []string
				points   int
			}{
				{[]string{"I099", "I110", "I130", "I132", "I255", "I420", "I425", "I426", "I427", "I428", "I429", "I43", "I50"}, []string{"84114007", "42343007"}, 1},
				{[]string{"I10", "I11", "I12", "I13", "I15", "I16"}, []string{"38341003", "59621000"}, 1},
				{dmICD, dmSCT, 1},
				{[]string{"I63", "I64", "G450", "G451", "G452", "G458", "G459", "I74", "Z8673"}, []string{"230690007", "266257000"}, 2},
				{[]string{"I21", "I22", "I252", "I70", "I739"}, []string{"22298006"}, 1},
			} {
				if any(false, item.icd, item.sct) {
					score += item.points
				}
			}
			need := 2
			if pat.Gender == "female" {
				need = 3
			}
			treated := false
			for _, m := range meds {
				rx := codeOf(m.MedCC.Coding, "http://www.nlm.nih.gov/research/umls/rxnorm")
				if m.Status == "active" && slices.Contains([]string{"855332", "11289", "1364430", "1037042", "1599538", "1114195"}, rx) {
					treated = true
				}
			}
			if pat.Gender == "male" || pat.Gender == "female" {
				scores["cha2ds2-vasc/"+pat.ID] = score
			}
			if (pat.Gender == "male" || pat.Gender == "female") && score >= need && !treated {
				k := "af-anticoagulation/" + pat.ID
				out[k] = Expected{Key: k, Score: score}
			}
		}
		if any(true, dmICD, dmSCT) {
			recent := false
			for _, o := range obs {
				// HbA1c: LOINC 4548-4, or a local code or text-only
				// code whose label names it (the synthetic data's messy
				// labs; ehrgate maps those through its terminology chain).
				label := o.Code.Text
				for _, c := range o.Code.Coding {
					label += " " + c.Display
				}
				isA1c := codeOf(o.Code.Coding, "http://loinc.org") == "4548-4" ||
					(codeOf(o.Code.Coding, "http://loinc.org") == "" && strings.Contains(strings.ToLower(label), "a1c"))
				if !isA1c || o.Value == nil || o.Status == "entered-in-error" {
					continue
				}
				at, err := time.Parse(time.RFC3339, o.Effective)
				if err == nil && !at.After(asOf) && !at.Before(asOf.AddDate(-1, 0, 0)) {
					recent = true
				}
			}
			if !recent {
				k := "diabetes-hba1c/" + pat.ID
				out[k] = Expected{Key: k}
			}
		}
	}
	return out, scores
}

// Flag is what an EHR holds under one pipeline identifier (a Flag, or a
// score Observation: then Value is its valueInteger).
type Flag struct {
	ID, Status, Text, Version string
	Value                     int
	N                         int // resources carrying the identifier
}

// FlagsIn reads every pipeline Flag e holds, by identifier value.
func FlagsIn(t testing.TB, e *EHR) map[string]*Flag {
	t.Helper()
	return resourcesIn(t, e, "Flag", pipeline.SystemFlag)
}

// ScoresIn reads every pipeline score Observation e holds, by identifier
// value.
func ScoresIn(t testing.TB, e *EHR) map[string]*Flag {
	t.Helper()
	return resourcesIn(t, e, "Observation", pipeline.SystemScore)
}

// resourcesIn reads the resources of typ carrying an identifier of system
// from the simulator's patient compartments (not over HTTP, where a vendor
// personality may refuse a search without a patient).
func resourcesIn(t testing.TB, e *EHR, typ, system string) map[string]*Flag {
	t.Helper()
	out := map[string]*Flag{}
	pop := e.Sim.Population()
	for i := range pop.Patients() {
		pop.Compartment(i, func(rt string, raw json.RawMessage) {
			if rt != typ {
				return
			}
			var f struct {
				ID     string
				Meta   struct{ VersionID string }
				Status string
				Code   struct{ Text string }
				Value  int                              `json:"valueInteger"`
				Ident  []struct{ System, Value string } `json:"identifier"`
			}
			if err := json.Unmarshal(raw, &f); err != nil {
				t.Fatal(err)
			}
			for _, id := range f.Ident {
				if id.System == system {
					if x, ok := out[id.Value]; ok {
						x.N++
					} else {
						out[id.Value] = &Flag{ID: f.ID, Status: f.Status, Text: f.Code.Text, Version: f.Meta.VersionID, Value: f.Value, N: 1}
					}
				}
			}
		})
	}
	return out
}

// CheckScores checks that e holds exactly one score Observation per
// patient ExpectScores finds, with that value, and no other.
func CheckScores(t testing.TB, e *EHR, asOf time.Time) {
	t.Helper()
	want := ExpectScores(t, e, asOf)
	got := ScoresIn(t, e)
	for k, v := range want {
		switch g, ok := got[k]; {
		case !ok:
			t.Errorf("%s: no score Observation %s", e.Name, k)
		case g.N != 1 || g.Value != v || g.Status != "final":
			t.Errorf("%s: score Observation %s = %+v, want one, final, value %d", e.Name, k, g, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected score Observation %s", e.Name, k)
		}
	}
}

func getJSON(t testing.TB, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// Check checks e's end state: exactly one Flag per expected key, active,
// and the withdrawn ones (not expected) inactive; the score in the text;
// every write in the log within the policy (Flag create and update,
// Provenance create); every Flag version written has its Provenance.
func Check(t testing.TB, e *EHR, want map[string]Expected, withdrawn map[string]string) {
	t.Helper()
	got := FlagsIn(t, e)
	for k, w := range want {
		f, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s: no Flag %s", e.Name, k)
			continue
		case f.N != 1:
			t.Errorf("%s: %d Flags %s, want 1", e.Name, f.N, k)
		case f.Status != "active":
			t.Errorf("%s: Flag %s is %s, want active", e.Name, k, f.Status)
		}
		if strings.HasPrefix(k, "af-") && !strings.Contains(f.Text, fmt.Sprintf("CHA2DS2-VASc %d ", w.Score)) {
			t.Errorf("%s: Flag %s says %q, want CHA2DS2-VASc %d", e.Name, k, f.Text, w.Score)
		}
	}
	for k, f := range got {
		if _, ok := want[k]; ok {
			continue
		}
		if withdrawn[k] == "" || f.Status != withdrawn[k] || f.N != 1 {
			t.Errorf("%s: unexpected Flag %s (%s, %d of them), want withdrawn %q", e.Name, k, f.Status, f.N, withdrawn[k])
		}
	}
	for k := range withdrawn {
		if _, ok := got[k]; !ok {
			t.Errorf("%s: withdrawn Flag %s is gone", e.Name, k)
		}
	}
	CheckPolicyAndProvenance(t, e)
}

// CheckPolicyAndProvenance checks that e's write log holds only writes the
// policy allows (POST Flag, PUT Flag, POST Provenance), and that every
// Flag version in the EHR written by ehrgate has a Provenance naming it.
func CheckPolicyAndProvenance(t testing.TB, e *EHR) {
	t.Helper()
	for _, w := range e.Sim.Writes() {
		written := w.Type == "Flag" || w.Type == "Observation"
		ok := (w.Method == http.MethodPost && (written || w.Type == "Provenance") && w.ID == "") ||
			(w.Method == http.MethodPut && written)
		if !ok {
			t.Errorf("%s: a write outside the policy was sent: %s %s/%s", e.Name, w.Method, w.Type, w.ID)
		}
		if w.Method == http.MethodPost && written && w.IfNoneExist == "" {
			t.Errorf("%s: an unconditional %s create was sent", e.Name, w.Type)
		}
		if w.Method == http.MethodPut && w.IfMatch == "" {
			t.Errorf("%s: a %s update without If-Match was sent", e.Name, w.Type)
		}
	}
	targets := map[string]bool{}
	url := e.URL + "/fhir/Provenance?_count=200"
	for url != "" {
		var page struct {
			Link  []struct{ Relation, URL string }
			Entry []struct {
				Resource struct {
					Target []struct{ Reference string }
				}
			}
		}
		getJSON(t, url, &page)
		url = ""
		for _, l := range page.Link {
			if l.Relation == "next" {
				url = l.URL
			}
		}
		for _, en := range page.Entry {
			for _, tg := range en.Resource.Target {
				targets[tg.Reference] = true
			}
		}
	}
	for typ, got := range map[string]map[string]*Flag{"Flag": FlagsIn(t, e), "Observation": ScoresIn(t, e)} {
		for _, f := range got {
			ref := typ + "/" + f.ID + "/_history/" + f.Version
			if !targets[ref] {
				t.Errorf("%s: %s has no Provenance", e.Name, ref)
			}
		}
	}
}

// Keys returns a map's keys, sorted.
func Keys[M ~map[string]V, V any](m M) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// WritesSince counts e's write requests of method and type from the
// from-th on.
func WritesSince(e *EHR, method, typ string, from int) int {
	n := 0
	for _, w := range e.Sim.Writes()[from:] {
		if w.Method == method && w.Type == typ {
			n++
		}
	}
	return n
}

// ConfigYAML returns the connections of ehrs, as Connection gives them, as
// the connections: block of an ehrgate configuration file.
func ConfigYAML(ehrs ...*EHR) string {
	var b strings.Builder
	b.WriteString("connections:\n")
	for _, e := range ehrs {
		c := e.Connection()
		fmt.Fprintf(&b, "  - name: %s\n    base_url: %s\n    vendor: %s\n    write:\n      enabled: true\n", c.Name, c.BaseURL, c.Vendor)
		fmt.Fprintf(&b, "      types: [%s]\n      operations: [%s]\n      approval: %s\n      rate: %d\n",
			strings.Join(c.Write.Types, ", "), strings.Join(c.Write.Operations, ", "), c.Write.Approval, c.Write.Rate)
		b.WriteString("      tags:\n")
		for _, tg := range c.Write.Tags {
			fmt.Fprintf(&b, "        - {system: %q, code: %q}\n", tg.System, tg.Code)
		}
	}
	return b.String()
}

// Patients scales a test population: half of n under the race
// detector, which makes the pipeline about ten times slower (the checks
// stay the same; the full size runs in the non-race build).
func Patients(n int) int {
	if raceEnabled {
		return n / 2
	}
	return n
}
