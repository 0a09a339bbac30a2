package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"ehrgate/hl7"
	"ehrgate/hl7/hl7store"
)

// TestExportCarriesTheProvenanceOfHL7Conversions: an HL7 v2 message
// converted into the store leaves a Provenance targeting what it created;
// a backend-services client exporting through the gateway with
// includeAssociatedData=LatestProvenanceResources gets it in the
// Provenance file beside the Patient and Encounter it targets, and a
// client without Provenance in its scopes gets none and a warning.
func TestExportCarriesTheProvenanceOfHL7Conversions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := newAPIGateway(t, ctx, "system/Patient.rs", "system/Encounter.rs", "system/Provenance.rs")
	msg, err := hl7.Parse([]byte("MSH|^~\\&|ADT|HOSP|EHRGATE|HOSP|20260105120000||ADT^A01|MSG0001|P|2.5\r"+
		"EVN|A01|20260105120000\r"+
		"PID|1||MRN123^^^HOSP^MR||DOE^JANE||19800101|F\r"+
		"PV1|1|I|W1^101^1||||1234^SMITH^JOHN|||||||||||V100^^^HOSP^VN\r"), hl7.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := hl7store.New(a.st, hl7store.Options{Connection: "clinic"}).HandleMessage(ctx, msg); err != nil {
		t.Fatalf("converting the message: %v", err)
	}

	tok := a.token(t, "system/Patient.rs", "system/Encounter.rs", "system/Provenance.rs").AccessToken
	files, errs := a.export(t, tok, "$export?_type=Patient,Encounter&includeAssociatedData=LatestProvenanceResources")
	if len(errs) != 0 {
		t.Errorf("manifest error = %v, want none", errs)
	}
	exported := map[string]bool{}
	for _, typ := range []string{"Patient", "Encounter"} {
		for _, r := range files[typ] {
			exported[typ+"/"+r["id"].(string)] = true
		}
	}
	provs := files["Provenance"]
	if len(provs) != 1 {
		t.Fatalf("Provenance file holds %d, want the message's one", len(provs))
	}
	var targets []string
	for _, tg := range provs[0]["target"].([]any) {
		ref := tg.(map[string]any)["reference"].(string)
		targets = append(targets, ref)
		if !exported[ref] {
			t.Errorf("the Provenance targets %s, which the export does not hold", ref)
		}
	}
	if !slices.ContainsFunc(targets, func(s string) bool { return strings.HasPrefix(s, "Patient/") }) ||
		!slices.ContainsFunc(targets, func(s string) bool { return strings.HasPrefix(s, "Encounter/") }) {
		t.Errorf("the Provenance targets %v, want the message's Patient and Encounter", targets)
	}

	tok = a.token(t, "system/Patient.rs", "system/Encounter.rs").AccessToken
	files, errs = a.export(t, tok, "$export?_type=Patient,Encounter&includeAssociatedData=LatestProvenanceResources")
	if len(files["Provenance"]) != 0 || len(files["Patient"]) == 0 {
		t.Errorf("without Provenance scope: %d Provenance, %d Patients; want none and some", len(files["Provenance"]), len(files["Patient"]))
	}
	if len(errs) != 1 || !strings.Contains(errs[0], "do not allow reading Provenance") {
		t.Errorf("without Provenance scope, the error file = %q, want a warning that none was added", errs)
	}
}

// export runs a Bulk Data export on the gateway's API: the resources of
// each output file by type, and the diagnostics of the error files.
func (a *apiGateway) export(t *testing.T, tok, path string) (map[string][]map[string]any, []string) {
	t.Helper()
	do := func(u string, hdr ...string) *http.Response {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := do(a.base+"/"+path, "Accept", "application/fhir+json", "Prefer", "respond-async")
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("kick-off %s = %d", path, resp.StatusCode)
	}
	code, m := get(t, tok, resp.Header.Get("Content-Location"))
	if code != http.StatusOK {
		t.Fatalf("status = %d %v", code, m)
	}
	read := func(u string) []map[string]any {
		resp := do(u)
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("file %s = %d", u, resp.StatusCode)
		}
		var out []map[string]any
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r map[string]any
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("file %s: a line is not JSON: %v", u, err)
			}
			out = append(out, r)
		}
		return out
	}
	files := map[string][]map[string]any{}
	for _, o := range m["output"].([]any) {
		f := o.(map[string]any)
		files[f["type"].(string)] = append(files[f["type"].(string)], read(f["url"].(string))...)
	}
	var errs []string
	for _, o := range m["error"].([]any) {
		for _, oo := range read(o.(map[string]any)["url"].(string)) {
			for _, is := range oo["issue"].([]any) {
				errs = append(errs, is.(map[string]any)["diagnostics"].(string))
			}
		}
	}
	return files, errs
}
