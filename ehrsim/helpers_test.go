package ehrsim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"ehrgate/fhir"
)

// fixedClock is the test clock: 2025-01-02T03:04:05Z.
func fixedClock() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) }

// loadSmall loads testdata/small.json into s.
func loadSmall(t testing.TB, s *Server) {
	t.Helper()
	data, err := os.ReadFile("testdata/small.json")
	if err != nil {
		t.Fatal(err)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		t.Fatal(err)
	}
	for _, r := range raws {
		if err := s.Load(r); err != nil {
			t.Fatalf("Load(%s) = %v", r, err)
		}
	}
}

// startSmall serves testdata/small.json with opts over real HTTP.
func startSmall(t *testing.T, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	if opts.Clock == nil {
		opts.Clock = fixedClock
	}
	s := New(opts)
	loadSmall(t, s)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts
}

// generate loads patients × perPatient resources spread over several types,
// plus shared Medications, and returns how many it loaded.
func generate(t testing.TB, s *Server, patients, perPatient int) int {
	t.Helper()
	n := 0
	load := func(format string, args ...any) {
		if err := s.Load(json.RawMessage(fmt.Sprintf(format, args...))); err != nil {
			t.Fatalf("Load: %v", err)
		}
		n++
	}
	for m := range 5 {
		load(`{"resourceType":"Medication","id":"med%d","code":{"coding":[{"system":"%s","code":"%d"}]}}`, m, fhir.SystemRxNorm, 1000+m)
	}
	for p := range patients {
		pid := fmt.Sprintf("pat%03d", p)
		load(`{"resourceType":"Patient","id":"%s","name":[{"family":"Fam%d","given":["Giv%d"]}],"gender":"female","birthDate":"19%02d-01-01"}`, pid, p, p, p%100)
		for i := range perPatient - 1 {
			id := fmt.Sprintf("%s-%04d", pid, i)
			day := fmt.Sprintf("2024-%02d-%02d", i%12+1, i%28+1)
			switch i % 4 {
			case 0, 1:
				cat := []string{"laboratory", "vital-signs"}[i%2]
				load(`{"resourceType":"Observation","id":"%s","status":"final","category":[{"coding":[{"system":"%s","code":"%s"}]}],"code":{"coding":[{"system":"%s","code":"%d-1"}]},"subject":{"reference":"Patient/%s"},"effectiveDateTime":"%sT10:00:00Z","valueQuantity":{"value":%d}}`,
					id, fhir.SystemObsCat, cat, fhir.SystemLOINC, i%20, pid, day, i)
			case 2:
				load(`{"resourceType":"Condition","id":"%s","clinicalStatus":{"coding":[{"system":"%s","code":"active"}]},"code":{"coding":[{"system":"%s","code":"%d"}]},"subject":{"reference":"Patient/%s"},"onsetDateTime":"%s"}`,
					id, fhir.SystemCondClin, fhir.SystemSNOMED, i, pid, day)
			case 3:
				load(`{"resourceType":"MedicationRequest","id":"%s","status":"active","intent":"order","medicationReference":{"reference":"Medication/med%d"},"subject":{"reference":"Patient/%s"},"authoredOn":"%s"}`,
					id, i%5, pid, day)
			}
		}
	}
	return n
}

// get fetches url and returns the response with its body read.
func get(t testing.TB, client *http.Client, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp, body
}

// decodeBundle decodes a searchset and returns it with the match and include
// entry keys ("Type/id") in order.
func decodeBundle(t testing.TB, body []byte) (b fhir.Bundle, matches, includes []string) {
	t.Helper()
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatalf("decoding bundle: %v\n%s", err, body)
	}
	for _, e := range b.Entry {
		h, err := fhir.ParseHeader(e.Resource)
		if err != nil {
			t.Fatalf("entry %s: %v", e.FullURL, err)
		}
		key := h.ResourceType + "/" + h.ID
		if e.Search == nil {
			t.Fatalf("entry %s has no search mode", key)
		}
		switch e.Search.Mode {
		case "match":
			matches = append(matches, key)
		case "include":
			includes = append(includes, key)
		default:
			t.Fatalf("entry %s has search mode %q", key, e.Search.Mode)
		}
	}
	return b, matches, includes
}

// decodeOutcome decodes an OperationOutcome body.
func decodeOutcome(t testing.TB, body []byte) fhir.OperationOutcome {
	t.Helper()
	var oo fhir.OperationOutcome
	if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		t.Fatalf("body is not an OperationOutcome (%v): %s", err, body)
	}
	return oo
}

// newHTTPServer serves s over real HTTP until the test ends.
func newHTTPServer(t testing.TB, s *Server) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}
