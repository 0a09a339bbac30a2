package cdshooks_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ehrgate/cdshooks"
)

// TestSpecExampleRequestsThroughTheService sends every request of the
// specification's examples, and a request built from every hook page's
// context example, to ehrgate's service over HTTP with a signed JWT, with
// fhirServer pointed at the local simulator (the examples name hosts on
// the internet). Each is sent twice: as given (no allergy list in the
// prefetch, no usable fhirAuthorization: 412, or 400 for the example
// without a patient), and with the patient's allergy list prefetched (a
// penicillin allergy, or one recorded as text only): 200 with the cards
// worked out by hand below, each answer valid by CDS Hooks 2.0's rules.
func TestSpecExampleRequestsThroughTheService(t *testing.T) {
	dir := filepath.Join(cdshooks.FixturesDir(t), "spec-examples")
	e := newEnv(t)
	serviceFor := map[string]string{"patient-view": cdshooks.ServicePatientView, "order-select": cdshooks.ServiceOrderSelect,
		"order-sign": cdshooks.ServiceOrderSign, "medication-prescribe": cdshooks.ServicePrescribe}
	const patient = "1288992" // every example's patient
	penicillin := `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":` +
		allergyJSON("a1", patient, penicillinCode, activeConfirmed+`,"category":["medication"],"criticality":"high"`) + `}]}`
	textOnly := `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":` +
		allergyJSON("a2", patient, `{"text":"Keflex rash"}`, activeConfirmed+`,"category":["medication"]`) + `}]}`

	for _, tc := range []struct {
		file string
		// asGiven is the status of the example as given; allergies the
		// prefetched allergy list; cards the number of cards expected with
		// it, each summary containing words.
		asGiven   int
		allergies string
		cards     int
		words     []string
	}{
		// patient-view: a coded penicillin allergy can be checked
		// against (no card); one recorded as text cannot (one card).
		{"quickstart.02.request.json", 412, penicillin, 0, nil},
		{"spec.04.request.json", 412, textOnly, 1, []string{"could not be checked", "not coded"}},
		// patient-view without context.patientId: refused however sent.
		{"spec.30.request.json", 400, "", 0, nil},
		{"patient-view.00.context.json", 412, penicillin, 0, nil},
		{"patient-view.01.context.json", 412, textOnly, 1, []string{"could not be checked", "not coded"}},
		// Amoxicillin/clavulanate (RxNorm 617993) is a penicillin; the
		// NutritionOrder beside it is not a medication and not checked.
		{"order-select.00.context.json", 412, penicillin, 1, []string{"Allergy to Penicillin", "Amoxicillin", "same class"}},
		{"order-sign.00.context.json", 412, penicillin, 1, []string{"Allergy to Penicillin", "Amoxicillin", "same class"}},
		// The same, plus azithromycin [Zithromax] (RxNorm 211307), a
		// macrolide: no card for it.
		{"medication-prescribe.00.context.json", 412, penicillin, 1, []string{"Allergy to Penicillin", "Amoxicillin", "same class"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var req map[string]any
			if err := json.Unmarshal(raw, &req); err != nil {
				t.Fatal(err)
			}
			if hook, ok := strings.CutSuffix(tc.file, ".00.context.json"); ok {
				req["hook"], req["hookInstance"] = hook, "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"
			} else if hook, ok := strings.CutSuffix(tc.file, ".01.context.json"); ok {
				req["hook"], req["hookInstance"] = hook, "d1577c69-dfbe-44ad-ba6d-3e05e953b2eb"
			}
			req["fhirServer"] = e.fhir
			svc := serviceFor[req["hook"].(string)]

			st, body := postSigned(t, e, svc, req)
			if st != tc.asGiven {
				t.Fatalf("as given: %d %s, want %d", st, body, tc.asGiven)
			}
			if st != http.StatusOK && !strings.Contains(body, `"resourceType":"OperationOutcome"`) {
				t.Errorf("as given: %d without an OperationOutcome: %s", st, body)
			}
			if tc.allergies == "" {
				return
			}
			pf, _ := req["prefetch"].(map[string]any)
			if pf == nil {
				pf = map[string]any{}
			}
			pf["allergies"] = json.RawMessage(tc.allergies)
			req["prefetch"] = pf
			st, body = postSigned(t, e, svc, req)
			if st != http.StatusOK {
				t.Fatalf("with the allergy list: %d %s", st, body)
			}
			if err := cdshooks.ValidateResponse([]byte(body)); err != nil {
				t.Errorf("the answer breaks CDS Hooks 2.0's rules: %v\n%s", err, body)
			}
			var resp struct{ Cards []struct{ Summary string } }
			_ = json.Unmarshal([]byte(body), &resp)
			if len(resp.Cards) != tc.cards {
				t.Fatalf("cards = %+v, want %d with %q", resp.Cards, tc.cards, tc.words)
			}
			for _, c := range resp.Cards {
				for _, w := range tc.words {
					if !strings.Contains(c.Summary, w) {
						t.Errorf("card %q lacks %q", c.Summary, w)
					}
				}
			}
		})
	}
}

// postSigned posts req to service id with a fresh JWT from the simulated
// EHR and returns the status and body.
func postSigned(t *testing.T, e *env, id string, req map[string]any) (int, string) {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	u := e.svc.ServiceURL(id)
	tok, err := e.sim.Token(u)
	if err != nil {
		t.Fatal(err)
	}
	return postRaw(t, u, tok, string(b))
}

// postRaw posts body to u with the bearer token tok ("" = none).
func postRaw(t *testing.T, u, tok, body string) (int, string) {
	t.Helper()
	hr, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	hr.Header.Set("Content-Type", "application/json")
	if tok != "" {
		hr.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}
