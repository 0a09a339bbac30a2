package fhirapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"ehrgate/identity"
	"ehrgate/refresh"
	"ehrgate/store"
)

// post sends a JSON body to the API.
func (e *env) post(tok, path, body string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/fhir/"+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestPatientMatch(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// a population across the two connections, so the matcher has data
	pop := identity.Generate(identity.GenOptions{People: 400, Seed: 3, Sources: []string{"epic_a", "cerner"}})
	var recs []store.Record
	for _, r := range pop.Records {
		raw, err := identity.PatientJSON(r, identity.MRNSystem(r.Key.Source))
		if err != nil {
			t.Fatal(err)
		}
		rec, err := refresh.NewRecord(r.Key.Source, raw, e.gen.Now(), "test")
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	if _, err := e.st.PutResources(ctx, recs); err != nil {
		t.Fatal(err)
	}
	// the query: a stored record under another MRN
	q := pop.Records[0]
	q.Key = identity.Key{Source: "elsewhere", ID: "x"}
	q.Identifiers = []identity.Identifier{{System: "urn:other", Value: "1"}}
	raw, _ := identity.PatientJSON(q, "urn:other")
	body := `{"resourceType":"Parameters","parameter":[{"name":"resource","resource":` + string(raw) + `},{"name":"count","valueInteger":3}]}`

	before := e.auditCount()
	status, b := e.post(e.token("user/Patient.rs", ""), "Patient/$match", body)
	if status != http.StatusOK || b["type"] != "searchset" {
		t.Fatalf("$match = %d %v, want a searchset", status, b)
	}
	entries, _ := b["entry"].([]any)
	if len(entries) == 0 || len(entries) > 3 {
		t.Fatalf("$match returned %d entries, want 1 to 3", len(entries))
	}
	first := entries[0].(map[string]any)
	res := first["resource"].(map[string]any)
	want := pop.Records[0].Key
	if !strings.HasSuffix(first["fullUrl"].(string), "/Patient/"+strings.ReplaceAll(want.Source, "_", "-")+"."+want.ID) || res["resourceType"] != "Patient" {
		t.Errorf("best match %v, want %v", first["fullUrl"], want)
	}
	search := first["search"].(map[string]any)
	ext := search["extension"].([]any)[0].(map[string]any)
	if score, _ := search["score"].(float64); score < 0.99 || ext["valueCode"] != "certain" || search["mode"] != "match" {
		t.Errorf("best match search = %v, want score near 1, grade certain", search)
	}
	if e.auditCount() != before+1 {
		t.Errorf("audit events %d -> %d, want one more", before, e.auditCount())
	}

	// without Patient search: refused
	if status, _ := e.post(e.token("user/Observation.rs", ""), "Patient/$match", body); status != http.StatusForbidden {
		t.Errorf("$match without Patient.s = %d, want 403", status)
	}
	// not Parameters: a 400
	if status, _ := e.post(e.token("user/Patient.rs", ""), "Patient/$match", `{"resourceType":"Patient"}`); status != http.StatusBadRequest {
		t.Errorf("$match with a bare Patient = %d, want 400", status)
	}
	// a patient token sees only its own patient
	other := pop.Records[len(pop.Records)-1].Key
	status, b = e.post(e.token("patient/Patient.rs", strings.ReplaceAll(other.Source, "_", "-")+"."+other.ID), "Patient/$match", body)
	if status != http.StatusOK {
		t.Fatalf("$match with a patient token = %d", status)
	}
	if entries, _ := b["entry"].([]any); len(entries) != 0 && pop.Person[0] != pop.Person[len(pop.Person)-1] {
		t.Errorf("a patient token got %d other patients", len(entries))
	}
}
