package dashboard_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"ehrgate/dashboard"
	"ehrgate/normalize"
)

// get serves one request and returns the status and body.
func get(t *testing.T, h http.Handler, target string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	res := rec.Result()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading body of %s: %v", target, err)
	}
	return res, string(b)
}

// sectionHTML returns the markup of the chart section with the given id.
func sectionHTML(t *testing.T, page, id string) string {
	t.Helper()
	start := strings.Index(page, `<section id="`+id+`"`)
	if start < 0 {
		t.Fatalf("section %q not found in page", id)
	}
	end := strings.Index(page[start:], "</section>")
	return page[start : start+end]
}

func TestHeaders(t *testing.T) {
	h := newDashboard(fixture()).Handler()
	for _, target := range []string{"/", "/patients?q=ada", "/patients?birthdate=bad", "/patients/sim-epic/" + adaID,
		"/patients/sim-epic/nobody", "/no/such/page", "/static/style.css"} {
		t.Run(target, func(t *testing.T) {
			res, _ := get(t, h, target)
			for name, want := range map[string]string{
				"X-Content-Type-Options": "nosniff",
				"Cache-Control":          "no-store",
				"Referrer-Policy":        "no-referrer",
			} {
				if got := res.Header.Get(name); got != want {
					t.Errorf("GET %s: %s = %q, want %q", target, name, got, want)
				}
			}
			if csp := res.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self'") {
				t.Errorf("GET %s: Content-Security-Policy = %q, want default-src 'self' first", target, csp)
			}
		})
	}
}

func TestOverview(t *testing.T) {
	res, body := get(t, newDashboard(fixture()).Handler(), "/")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET / status = %d, want 200", res.StatusCode)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	for _, want := range []string{
		`<form class="search" method="get" action="/patients"`, `<label for="q">`,
		"sim-epic", "sim-cerner", "needs re-authorization", "The refresh token expired",
		`<th scope="row">Observation</th>`, "quarantined inputs",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET / lacks %q", want)
		}
	}
}

func TestOverviewStatsFailure(t *testing.T) {
	f := fixture()
	f.fail["Stats"] = true
	res, body := get(t, newDashboard(f).Handler(), "/")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET / status = %d, want 200 (the search still works)", res.StatusCode)
	}
	if !strings.Contains(body, "Store statistics are unavailable") || strings.Contains(body, "hunter2") {
		t.Errorf("GET / with failing Stats: want a generic message and no internal error; got\n%s", body)
	}
}

func TestSearch(t *testing.T) {
	h := newDashboard(fixture()).Handler()
	tests := []struct {
		name       string
		query      url.Values
		wantStatus int
		want       []string
		wantNot    []string
	}{
		{"by name", url.Values{"q": {"lovelace"}}, 200,
			[]string{`href="/patients/sim-epic/p-ada"`, "Ada Lovelace", "MRN-1001", "1980-12-10", "Female", "1 patient matches"},
			[]string{"Grace Hopper"}},
		{"by MRN", url.Values{"q": {"C-42"}}, 200,
			[]string{`href="/patients/sim-cerner/g-7"`, "Grace Hopper"}, []string{"Ada Lovelace"}},
		{"by birth date", url.Values{"birthdate": {"1906-12-09"}}, 200,
			[]string{"Grace Hopper"}, []string{"Ada Lovelace"}},
		{"name and birth date", url.Values{"q": {"a"}, "birthdate": {"1980-12-10"}}, 200,
			[]string{"Ada Lovelace"}, []string{"Grace Hopper"}},
		{"connection filter", url.Values{"q": {"a"}, "connection": {"sim-cerner"}}, 200,
			[]string{"Grace Hopper", `<option value="sim-cerner" selected>`}, []string{"Ada Lovelace"}},
		{"no match", url.Values{"q": {"Zebulon"}}, 200,
			[]string{"No patients match", `value="Zebulon"`}, []string{"<table"}},
		{"no criteria", url.Values{}, 200,
			[]string{"Enter part of a name"}, []string{"No patients match", "<table"}},
		{"malformed birth date", url.Values{"birthdate": {"12/10/1980"}}, 400,
			[]string{"Birth date must be a valid date written as YYYY-MM-DD", `value="12/10/1980"`, `aria-invalid="true"`}, []string{"<table"}},
		{"impossible birth date", url.Values{"birthdate": {"1980-02-30"}}, 400,
			[]string{"Birth date must be a valid date"}, nil},
		{"query too long", url.Values{"q": {strings.Repeat("x", 201)}}, 400,
			[]string{"too long"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := "/patients?" + tt.query.Encode()
			res, body := get(t, h, target)
			if res.StatusCode != tt.wantStatus {
				t.Errorf("GET %s status = %d, want %d", target, res.StatusCode, tt.wantStatus)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("GET %s lacks %q", target, w)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(body, w) {
					t.Errorf("GET %s contains %q, want it absent", target, w)
				}
			}
		})
	}
}

func TestChartSections(t *testing.T) {
	res, body := get(t, newDashboard(fixture()).Handler(), "/patients/sim-epic/"+adaID)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("chart status = %d, want 200", res.StatusCode)
	}
	banner := body[:strings.Index(body, `<nav class="toc"`)]
	for _, want := range []string{"Ada Lovelace", "MRN-1001", "1980-12-10", "(45 years)", "Female", "English"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q", want)
		}
	}
	fresh := "Last updated 2 hours ago <span class=\"muted\">(2026-11-23T10:00:00Z)</span>"
	tests := []struct {
		section string
		want    []string
		wantNot []string
	}{
		{"problems", []string{"Essential hypertension", "SNOMED CT 38341003", "2019-04-01", fresh, "1 inactive or resolved problem not shown"},
			[]string{"Acute bronchitis", "None recorded"}},
		{"medications", []string{"Lisinopril 10 mg tablet", "1 tablet by mouth daily", "2024-02-01"}, nil},
		{"allergies", []string{"None recorded", fresh}, []string{"<table"}},
		{"vitals", []string{"Blood pressure", "120/80 mm[Hg]", "2026-11-20 09:30", "Heart rate", "72 /min"},
			[]string{"150/95"}},
		{"labs", []string{"Hemoglobin A1c", "7.1 %", "4.0–5.6 %", `<span class="badge alert">High</span>`, "13.2 g/dL"}, nil},
		{"encounters", []string{"2026-11-20 09:00", "Ambulatory", "Office visit"}, nil},
		{"immunizations", []string{"Not available from this source", "does not expose immunizations", fresh},
			[]string{"None recorded", "<table"}},
		{"procedures", []string{"Could not be fetched", "503 Service Unavailable", "Last attempted 2 hours ago"},
			[]string{"None recorded", "<table"}},
		{"reports", []string{"Chest X-ray", "Narrative only", "No acute findings."}, nil},
		{"documents", []string{"Not yet fetched"}, []string{"None recorded", "Last updated", "<table"}},
	}
	for _, tt := range tests {
		t.Run(tt.section, func(t *testing.T) {
			s := sectionHTML(t, body, tt.section)
			for _, w := range tt.want {
				if !strings.Contains(s, w) {
					t.Errorf("section %s lacks %q:\n%s", tt.section, w, s)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(s, w) {
					t.Errorf("section %s contains %q, want it absent:\n%s", tt.section, w, s)
				}
			}
		})
	}
	// Labs come newest first.
	labs := sectionHTML(t, body, "labs")
	if strings.Index(labs, "A1c") > strings.Index(labs, "13.2") {
		t.Errorf("labs not newest first:\n%s", labs)
	}
}

func TestChartLabLimit(t *testing.T) {
	f := fixture()
	for i := range 25 {
		f.add(connEpic, "Observation", "lab-"+string(rune('a'+i)), adaID, map[string]any{
			"category": []string{"laboratory"}, "code": map[string]string{"text": "Sodium"},
			"effective": "2025-01-01", "value": map[string]any{"kind": "quantity", "number": 140, "unit": "mmol/L"},
		})
	}
	_, body := get(t, newDashboard(f).Handler(), "/patients/sim-epic/"+adaID)
	labs := sectionHTML(t, body, "labs")
	if n := strings.Count(labs, "<tr>") - 1; n != 20 {
		t.Errorf("labs rows = %d, want 20", n)
	}
	if !strings.Contains(labs, "7 more results not shown") {
		t.Errorf("labs lacks the count of hidden rows:\n%s", labs)
	}
}

func TestChartFetchFailedWithStoredData(t *testing.T) {
	f := fixture()
	f.state(connEpic, adaID, "MedicationRequest", "error", 0, now.Add(-5*time.Minute), "Timed out talking to the EHR.")
	_, body := get(t, newDashboard(f).Handler(), "/patients/sim-epic/"+adaID)
	meds := sectionHTML(t, body, "medications")
	for _, want := range []string{"Lisinopril", "The latest fetch failed", "Timed out talking to the EHR.", "Showing data stored earlier"} {
		if !strings.Contains(meds, want) {
			t.Errorf("medications lacks %q:\n%s", want, meds)
		}
	}
}

func TestChartObservationCategoryStates(t *testing.T) {
	f := newFakeStore()
	f.addPatient(connEpic, "q", normalize.Patient{Name: "Quinn Category"})
	f.state(connEpic, "q", "Observation?category=vital-signs", "available", 0, fetched, "")
	f.state(connEpic, "q", "Observation?category=laboratory", "not_available", 0, fetched, "Labs are not exposed.")
	_, body := get(t, newDashboard(f).Handler(), "/patients/sim-epic/q")
	if s := sectionHTML(t, body, "vitals"); !strings.Contains(s, "None recorded") {
		t.Errorf("vitals want None recorded:\n%s", s)
	}
	if s := sectionHTML(t, body, "labs"); !strings.Contains(s, "Not available from this source") || !strings.Contains(s, "Labs are not exposed.") {
		t.Errorf("labs want Not available:\n%s", s)
	}
}

func TestNotFound(t *testing.T) {
	h := newDashboard(fixture()).Handler()
	for _, target := range []string{"/patients/sim-epic/nobody", "/patients/nowhere/" + adaID, "/nothing-here"} {
		res, body := get(t, h, target)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s status = %d, want 404", target, res.StatusCode)
		}
		if !strings.Contains(body, "not found") {
			t.Errorf("GET %s: want a not-found page, got\n%s", target, body)
		}
	}
}

func TestInternalErrorsHidden(t *testing.T) {
	for _, method := range []string{"Get", "SearchPatients", "FetchStates", "ListByPatient:Condition"} {
		t.Run(method, func(t *testing.T) {
			f := fixture()
			f.fail[method] = true
			var logs bytes.Buffer
			d := dashboard.New(f, dashboard.Options{
				Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
				RequestID: func(ctx context.Context) string { return "req-123" },
			})
			target := "/patients/sim-epic/" + adaID
			if method == "SearchPatients" {
				target = "/patients?q=ada"
			}
			_, body := get(t, d.Handler(), target)
			if strings.Contains(body, "hunter2") || strings.Contains(body, method+":") {
				t.Errorf("GET %s with failing %s shows the internal error:\n%s", target, method, body)
			}
			if !strings.Contains(body, "req-123") {
				t.Errorf("GET %s with failing %s lacks the request id", target, method)
			}
			if !strings.Contains(logs.String(), "hunter2") || !strings.Contains(logs.String(), "req-123") {
				t.Errorf("log lacks the cause and reference: %s", logs.String())
			}
		})
	}
}

func TestEscaping(t *testing.T) {
	h := newDashboard(fixture()).Handler()
	for _, target := range []string{"/patients?q=mallory", "/patients/sim-epic/evil", "/patients?q=" + url.QueryEscape(`"><script>x</script>`)} {
		_, body := get(t, h, target)
		if strings.Contains(body, "<script") {
			t.Errorf("GET %s contains an unescaped <script", target)
		}
		if !strings.Contains(body, "&lt;script&gt;") {
			t.Errorf("GET %s lacks the escaped name", target)
		}
	}
}

func TestStylesheet(t *testing.T) {
	res, body := get(t, newDashboard(fixture()).Handler(), "/static/style.css")
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/css") || !strings.Contains(body, ".card") {
		t.Errorf("GET /static/style.css = %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
}

func TestMethodNotAllowed(t *testing.T) {
	rec := httptest.NewRecorder()
	newDashboard(fixture()).Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/patients", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /patients status = %d, want 405", rec.Code)
	}
}
