package ehrsim

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestSearch(t *testing.T) {
	_, ts := startSmall(t, Options{})
	tests := []struct {
		query        string // type?params
		wantMatches  []string
		wantIncludes []string
	}{
		// Enumeration and _id.
		{"Patient", []string{"Patient/p1", "Patient/p2", "Patient/p3"}, nil},
		{"Patient?_id=p2", []string{"Patient/p2"}, nil},
		{"Patient?_id=p3,p1,nope", []string{"Patient/p1", "Patient/p3"}, nil},
		{"Observation?_id=p1", nil, nil},
		// patient and subject in every reference form.
		{"Observation?patient=p1", []string{"Observation/o1", "Observation/o2", "Observation/o3"}, nil},
		{"Observation?patient=Patient/p1", []string{"Observation/o1", "Observation/o2", "Observation/o3"}, nil},
		{"Observation?patient=" + url.QueryEscape("https://ehr.example/fhir/Patient/p1"), []string{"Observation/o1", "Observation/o2", "Observation/o3"}, nil},
		{"Observation?patient=p1,p2", []string{"Observation/o1", "Observation/o2", "Observation/o3", "Observation/o4", "Observation/o5"}, nil},
		{"Observation?subject=Patient/p2", []string{"Observation/o4", "Observation/o5"}, nil},
		{"Observation?subject=p2", []string{"Observation/o4", "Observation/o5"}, nil},
		{"Observation?subject:Patient=p2", []string{"Observation/o4", "Observation/o5"}, nil},
		{"Observation?subject=Group/g1", []string{"Observation/o6"}, nil},
		{"Observation?patient=Group/g1", nil, nil},
		{"Observation?patient=nobody", nil, nil},
		{"AllergyIntolerance?patient=p1", []string{"AllergyIntolerance/a1"}, nil},
		{"Immunization?patient=p1", []string{"Immunization/im1"}, nil},
		{"CarePlan?patient=p2", []string{"CarePlan/cp1"}, nil},
		// Tokens.
		{"Observation?category=laboratory", []string{"Observation/o2", "Observation/o3", "Observation/o5", "Observation/o6"}, nil},
		{"Observation?patient=p1&category=laboratory", []string{"Observation/o2", "Observation/o3"}, nil},
		{"Observation?patient=p1&category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs", []string{"Observation/o1"}, nil},
		{"Observation?category=urn:wrong|vital-signs", nil, nil},
		{"Observation?category=vital-signs,laboratory&patient=p2", []string{"Observation/o4", "Observation/o5"}, nil},
		{"Observation?code=http://loinc.org|8867-4", []string{"Observation/o1", "Observation/o4"}, nil},
		{"Observation?code=urn:local|A1C", []string{"Observation/o3"}, nil},
		{"Observation?code=urn:local|", []string{"Observation/o3"}, nil},
		{"Observation?code=|8867-4", nil, nil},
		{"Observation?code=8867-4,4548-4&patient=p1", []string{"Observation/o1", "Observation/o3"}, nil},
		{"Observation?code=8867-4&code=http://loinc.org|8867-4&patient=p2", []string{"Observation/o4"}, nil},
		{"Observation?status=amended", []string{"Observation/o3"}, nil},
		{"Observation?status=final,preliminary&patient=p2", []string{"Observation/o4", "Observation/o5"}, nil},
		{"Condition?clinical-status=active", []string{"Condition/c1"}, nil},
		{"Condition?clinical-status=http://terminology.hl7.org/CodeSystem/condition-clinical|resolved", []string{"Condition/c2"}, nil},
		{"Condition?category=problem-list-item&patient=p1", []string{"Condition/c1"}, nil},
		{"AllergyIntolerance?clinical-status=active&category=medication", []string{"AllergyIntolerance/a1"}, nil},
		{"MedicationRequest?status=active", []string{"MedicationRequest/mr1"}, nil},
		{"MedicationRequest?code=197361", []string{"MedicationRequest/mr2"}, nil},
		{"Medication?code=http://www.nlm.nih.gov/research/umls/rxnorm|860975", []string{"Medication/m1"}, nil},
		{"Patient?gender=female", []string{"Patient/p2", "Patient/p3"}, nil},
		{"Patient?identifier=urn:mrn|222", []string{"Patient/p2"}, nil},
		{"Patient?identifier=999", []string{"Patient/p2"}, nil},
		{"Patient?identifier=urn:mrn|999", nil, nil},
		{"Encounter?class=AMB", []string{"Encounter/e1"}, nil},
		{"Immunization?vaccine-code=http://hl7.org/fhir/sid/cvx|208", []string{"Immunization/im1"}, nil},
		{"DocumentReference?type=34133-9", []string{"DocumentReference/d1"}, nil},
		// Strings.
		{"Patient?family=smith", []string{"Patient/p1", "Patient/p3"}, nil},
		{"Patient?family:exact=Smith", []string{"Patient/p1"}, nil},
		{"Patient?family:exact=smith", nil, nil},
		{"Patient?name=mar", []string{"Patient/p2"}, nil},
		{"Patient?name=dr", []string{"Patient/p2"}, nil},
		{"Patient?name:contains=ither", []string{"Patient/p3"}, nil},
		{"Patient?given=q", []string{"Patient/p1"}, nil},
		{"Patient?name=jo,ann", []string{"Patient/p1", "Patient/p2", "Patient/p3"}, nil},
		// Dates: prefixes and precisions.
		{"Patient?birthdate=1970-01-01", []string{"Patient/p1"}, nil},
		{"Patient?birthdate=1985", []string{"Patient/p2"}, nil},
		{"Patient?birthdate=lt1980", []string{"Patient/p1"}, nil},
		{"Patient?birthdate=ge1985-06-15", []string{"Patient/p2", "Patient/p3"}, nil},
		{"Patient?birthdate=2001-12-05", nil, nil},                      // a month-precise birthDate is not within one day
		{"Patient?birthdate=ap2001-12-05", []string{"Patient/p3"}, nil}, // but overlaps it
		{"Observation?date=2024-01-15", []string{"Observation/o1", "Observation/o4"}, nil},
		{"Observation?date=eq2024-01-15T10:00:00Z", []string{"Observation/o1"}, nil},
		{"Observation?date=2024-01-15T21:30:00Z", []string{"Observation/o4"}, nil}, // +02:00 normalised
		{"Observation?date=2024-01", []string{"Observation/o1", "Observation/o4"}, nil},
		{"Observation?date=2023", []string{"Observation/o3"}, nil},
		{"Observation?date=gt2024-01-15", []string{"Observation/o2", "Observation/o6"}, nil},
		{"Observation?date=ge2024-01-15", []string{"Observation/o1", "Observation/o2", "Observation/o4", "Observation/o6"}, nil},
		{"Observation?date=lt2023-12-15", []string{"Observation/o3", "Observation/o5"}, nil},
		{"Observation?date=le2022-06", []string{"Observation/o5"}, nil},
		{"Observation?date=ne2024-02-01&patient=p1", []string{"Observation/o1", "Observation/o3"}, nil},
		{"Observation?date=sa2023-12-31", []string{"Observation/o1", "Observation/o2", "Observation/o4", "Observation/o6"}, nil},
		{"Observation?date=eb2024-01-01", []string{"Observation/o3", "Observation/o5"}, nil},
		{"Observation?date=eb2023-12-31", []string{"Observation/o5"}, nil},
		{"Observation?date=ge2024-01-01&date=lt2024-02-01", []string{"Observation/o1", "Observation/o4"}, nil},
		{"Observation?date=2023-12-15", nil, nil}, // the period is not within one day
		{"Observation?date=ap2023-12-15", []string{"Observation/o3"}, nil},
		{"Condition?onset-date=2015", []string{"Condition/c1"}, nil},
		{"Condition?date=ge2020", []string{"Condition/c2"}, nil},
		{"Condition?recorded-date=2015-03-02", []string{"Condition/c1"}, nil},
		{"AllergyIntolerance?date=2019", []string{"AllergyIntolerance/a1"}, nil},
		{"MedicationRequest?authoredon=lt2022", []string{"MedicationRequest/mr2"}, nil},
		{"MedicationRequest?date=2024-01-10", []string{"MedicationRequest/mr1"}, nil},
		{"Encounter?date=2024-01-15", []string{"Encounter/e1"}, nil},
		{"Encounter?date=2024-01-15T10:00", nil, nil}, // a two-hour visit is not within one minute
		{"Encounter?date=ap2024-01-15T10:00", []string{"Encounter/e1"}, nil},
		{"Procedure?date=2020-05", []string{"Procedure/pr1"}, nil},
		{"Immunization?date=2021-04-01", []string{"Immunization/im1"}, nil},
		{"DocumentReference?date=gt2024-01-16T11:00:00Z", []string{"DocumentReference/d1"}, nil},
		{"DiagnosticReport?date=2024-02-01", []string{"DiagnosticReport/dr1"}, nil},
		{"Observation?_lastUpdated=2025-01-02&patient=p1", []string{"Observation/o1", "Observation/o2", "Observation/o3"}, nil},
		{"Observation?_lastUpdated=gt2025-01-03", nil, nil},
		{"Patient?_lastUpdated=lt2025", []string{"Patient/p1"}, nil}, // p1 was loaded with its own lastUpdated
		// Includes.
		{"DiagnosticReport?_include=DiagnosticReport:result", []string{"DiagnosticReport/dr1"}, []string{"Observation/o2", "Observation/o3"}},
		{"DiagnosticReport?_include=DiagnosticReport:result:Observation&_include=DiagnosticReport:patient", []string{"DiagnosticReport/dr1"}, []string{"Observation/o2", "Observation/o3", "Patient/p1"}},
		{"MedicationRequest?_include=MedicationRequest:medication", []string{"MedicationRequest/mr1", "MedicationRequest/mr2"}, []string{"Medication/m1"}},
		{"Observation?patient=p1&_include=Observation:patient", []string{"Observation/o1", "Observation/o2", "Observation/o3"}, []string{"Patient/p1"}},
		{"Observation?subject=Group/g1&_include=Observation:subject", []string{"Observation/o6"}, nil}, // Group not loaded
		{"Observation?code=8867-4&_include=Observation:subject", []string{"Observation/o1", "Observation/o4"}, []string{"Patient/p1", "Patient/p2"}},
		{"Observation?encounter=e1&_include=Observation:encounter", []string{"Observation/o1"}, []string{"Encounter/e1"}},
		{"Observation?encounter=Encounter/e2", nil, nil},
		{"DiagnosticReport?issued=2024", nil, nil},
		// Empty values are ignored; _format json is accepted.
		{"Condition?code=&_format=json", []string{"Condition/c1", "Condition/c2"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			resp, body := get(t, ts.Client(), ts.URL+"/fhir/"+tt.query)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: status %d: %s", tt.query, resp.StatusCode, body)
			}
			if got := resp.Header.Get("Content-Type"); got != contentType {
				t.Errorf("Content-Type = %q", got)
			}
			b, matches, includes := decodeBundle(t, body)
			if b.Type != "searchset" || b.Total == nil || *b.Total != len(tt.wantMatches) {
				t.Errorf("bundle type %q total %v, want searchset total %d", b.Type, b.Total, len(tt.wantMatches))
			}
			if diff := cmp.Diff(tt.wantMatches, matches, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("GET %s matches (-want +got):\n%s", tt.query, diff)
			}
			if diff := cmp.Diff(tt.wantIncludes, includes, cmpopts.EquateEmpty(), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
				t.Errorf("GET %s includes (-want +got):\n%s", tt.query, diff)
			}
			if b.LinkURL("self") == "" {
				t.Error("no self link")
			}
		})
	}
}

func TestSearchPost(t *testing.T) {
	_, ts := startSmall(t, Options{})
	form := url.Values{"patient": {"p1"}, "category": {"laboratory"}}
	resp, err := ts.Client().PostForm(ts.URL+"/fhir/Observation/_search?_count=1", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST _search: status %d: %s", resp.StatusCode, body)
	}
	b, matches, _ := decodeBundle(t, body)
	if diff := cmp.Diff([]string{"Observation/o2"}, matches); diff != "" {
		t.Errorf("page 1 (-want +got):\n%s", diff)
	}
	// The next link is a GET carrying the form parameters.
	_, next := get(t, ts.Client(), b.LinkURL("next"))
	_, matches, _ = decodeBundle(t, next)
	if diff := cmp.Diff([]string{"Observation/o3"}, matches); diff != "" {
		t.Errorf("page 2 (-want +got):\n%s", diff)
	}
}

func TestSearchErrors(t *testing.T) {
	_, ts := startSmall(t, Options{})
	tests := []struct {
		query     string
		wantCode  string
		wantInMsg string
	}{
		{"Observation?foo=bar", "not-supported", `"foo"`},
		{"Observation?patient=p1&bogus=1", "not-supported", `"bogus"`},
		{"Patient?patient=p1", "not-supported", `"patient"`},
		{"Medication?patient=p1", "not-supported", `"patient"`},
		{"Observation?code:text=heart", "not-supported", "code:text"},
		{"Observation?subject.name=smith", "not-supported", "subject.name"},
		{"Observation?_sort=date", "not-supported", "_sort"},
		{"Observation?_revinclude=Provenance:target", "not-supported", "_revinclude"},
		{"Observation?_include=DiagnosticReport:result", "not-supported", "DiagnosticReport:result"},
		{"Observation?_include=Observation:code", "not-supported", "Observation:code"},
		{"Observation?_format=xml", "not-supported", "xml"},
		{"Observation?_summary=true", "not-supported", "_summary"},
		{"Observation?date=yesterday", "invalid", "date"},
		{"Observation?date=xx2024", "invalid", "xx"},
		{"Observation?_count=-1", "invalid", "_count"},
		{"Observation?_count=ten", "invalid", "_count"},
		{"Observation?_cursor=***", "invalid", "cursor"},
		{"Observation?subject:Patient=Group/g1", "invalid", "subject"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			resp, body := get(t, ts.Client(), ts.URL+"/fhir/"+tt.query)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("GET %s: status %d, want 400: %s", tt.query, resp.StatusCode, body)
			}
			oo := decodeOutcome(t, body)
			if oo.Issue[0].Code != tt.wantCode || !strings.Contains(oo.Issue[0].Diagnostics, tt.wantInMsg) {
				t.Errorf("GET %s: issue %+v, want code %q naming %s", tt.query, oo.Issue[0], tt.wantCode, tt.wantInMsg)
			}
		})
	}
}

func TestPaging(t *testing.T) {
	s := New(Options{PageSize: 7, MaxPageSize: 25, Clock: fixedClock})
	generate(t, s, 30, 9)
	ts := newHTTPServer(t, s)
	// The reference serves the same data in one page.
	ref := New(Options{MaxPageSize: 1 << 20, Clock: fixedClock})
	generate(t, ref, 30, 9)
	refTS := newHTTPServer(t, ref)
	queries := []string{"Patient", "Observation", "Observation?category=laboratory", "MedicationRequest?_include=MedicationRequest:medication", "Condition?patient=pat003,pat004"}
	for _, q := range queries {
		// The whole result set in one page is the reference.
		_, body := get(t, refTS.Client(), refTS.URL+"/fhir/"+withParam(q, "_count=100000"))
		all, want, _ := decodeBundle(t, body)
		if all.LinkURL("next") != "" || len(want) != *all.Total || len(want) < 2 {
			t.Fatalf("reference %s: %d of %d matches in one page", q, len(want), *all.Total)
		}
		for _, count := range []string{"", "1", "2", "3", "7", "25", "1000"} {
			t.Run(q+" _count="+count, func(t *testing.T) {
				u := ts.URL + "/fhir/" + q
				if count != "" {
					u = ts.URL + "/fhir/" + withParam(q, "_count="+count)
				}
				var got []string
				seen := map[string]bool{}
				pages := 0
				total := -1
				for u != "" {
					resp, body := get(t, ts.Client(), u)
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
					}
					b, matches, _ := decodeBundle(t, body)
					if total >= 0 && *b.Total != total {
						t.Fatalf("total changed from %d to %d between pages", total, *b.Total)
					}
					total = *b.Total
					for _, m := range matches {
						if seen[m] {
							t.Fatalf("%s returned twice", m)
						}
						seen[m] = true
					}
					got = append(got, matches...)
					u = b.LinkURL("next")
					// Retrying a page returns the same page.
					if u != "" && pages == 0 {
						_, first, _ := decodeBundle(t, mustGet(t, ts.Client(), u))
						_, second, _ := decodeBundle(t, mustGet(t, ts.Client(), u))
						if diff := cmp.Diff(first, second); diff != "" {
							t.Fatalf("retried page differs (-first +retry):\n%s", diff)
						}
					}
					pages++
					if pages > 1000 {
						t.Fatal("paging does not end")
					}
				}
				if len(got) != total {
					t.Errorf("collected %d matches, total says %d", len(got), total)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("paged matches differ from one page (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func mustGet(t *testing.T, client *http.Client, u string) []byte {
	t.Helper()
	_, body := get(t, client, u)
	return body
}

func withParam(q, p string) string {
	if strings.Contains(q, "?") {
		return q + "&" + p
	}
	return q + "?" + p
}

func TestCountZero(t *testing.T) {
	_, ts := startSmall(t, Options{})
	_, body := get(t, ts.Client(), ts.URL+"/fhir/Observation?_count=0&patient=p1")
	b, matches, _ := decodeBundle(t, body)
	if *b.Total != 3 || len(matches) != 0 || b.LinkURL("next") != "" {
		t.Errorf("_count=0: total %d, %d entries, next %q; want total 3, no entries, no next", *b.Total, len(matches), b.LinkURL("next"))
	}
}

func TestLenientHandling(t *testing.T) {
	_, ts := startSmall(t, Options{})
	_, body := get(t, ts.Client(), ts.URL+"/fhir/Observation?patient=p1&foo=bar&_count=2", "Prefer", "handling=lenient")
	b, matches, _ := decodeBundle(t, body)
	if diff := cmp.Diff([]string{"Observation/o1", "Observation/o2"}, matches); diff != "" {
		t.Errorf("lenient search (-want +got):\n%s", diff)
	}
	for _, rel := range []string{"self", "next"} {
		if u := b.LinkURL(rel); strings.Contains(u, "foo") || !strings.Contains(u, "patient=p1") {
			t.Errorf("%s link %q should keep patient and drop the ignored foo", rel, u)
		}
	}
	// Bad values stay errors under lenient handling.
	resp, _ := get(t, ts.Client(), ts.URL+"/fhir/Observation?date=never", "Prefer", "handling=lenient")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("lenient bad date: status %d, want 400", resp.StatusCode)
	}
	// _summary=count is the total only.
	_, body = get(t, ts.Client(), ts.URL+"/fhir/Observation?patient=p1&_summary=count")
	if b, matches, _ := decodeBundle(t, body); *b.Total != 3 || len(matches) != 0 {
		t.Errorf("_summary=count: total %d, %d entries; want 3, 0", *b.Total, len(matches))
	}
}

func TestPageSizeCapped(t *testing.T) {
	s := New(Options{PageSize: 5, MaxPageSize: 10})
	generate(t, s, 40, 1)
	ts := newHTTPServer(t, s)
	for q, want := range map[string]int{"Patient": 5, "Patient?_count=8": 8, "Patient?_count=500": 10} {
		_, body := get(t, ts.Client(), ts.URL+"/fhir/"+q)
		if _, matches, _ := decodeBundle(t, body); len(matches) != want {
			t.Errorf("GET %s: %d entries, want %d", q, len(matches), want)
		}
	}
}
