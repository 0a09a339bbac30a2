package personality_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"ehrgate/ehr"
	"ehrgate/ehrsim"
	"ehrgate/ehrsim/personality"
	"ehrgate/fhir"
)

// TestWrites checks that each personality takes the writes its vendor's
// ehr.Profile.Write lists, refuses the others in the vendor's error shape
// before the core sees them, and that the write log kept in front of the
// personality records the refusals too.
func TestWrites(t *testing.T) {
	bodies := map[string]string{
		"Flag":          `{"resourceType":"Flag","status":"active","code":{"text":"gap"},"subject":{"reference":"Patient/x"}}`,
		"Task":          `{"resourceType":"Task","status":"requested","intent":"order"}`,
		"Communication": `{"resourceType":"Communication","status":"completed"}`,
	}
	tests := []struct {
		vendor, typ string
		wantStatus  int
		wantCode    string // OperationOutcome issue code of a refusal
	}{
		{"epic", "Flag", http.StatusCreated, ""},
		{"epic", "Task", http.StatusBadRequest, "not-supported"},
		{"oracle", "Task", http.StatusCreated, ""},
		{"oracle", "Communication", http.StatusForbidden, "forbidden"},
		{"athena", "Flag", http.StatusMethodNotAllowed, "not-supported"}, // no write rules: accepts nothing
	}
	for _, tt := range tests {
		t.Run(tt.vendor+"/"+tt.typ, func(t *testing.T) {
			sim := ehrsim.New(ehrsim.Options{})
			h, err := personality.Wrap(tt.vendor, nil, sim.Handler())
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(sim.RecordWrites(h))
			t.Cleanup(srv.Close)
			resp, err := http.Post(srv.URL+"/fhir/"+tt.typ, "application/fhir+json", strings.NewReader(bodies[tt.typ]))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("POST %s on %s = %d %s, want %d", tt.typ, tt.vendor, resp.StatusCode, body, tt.wantStatus)
			}
			if tt.wantCode != "" {
				var oo fhir.OperationOutcome
				if json.Unmarshal(body, &oo) != nil || len(oo.Issue) == 0 || oo.Issue[0].Code != tt.wantCode {
					t.Errorf("refusal = %s, want an OperationOutcome with code %s", body, tt.wantCode)
				}
				if n := sim.Counts()[tt.typ]; n != 0 {
					t.Errorf("core holds %d %s after a refusal, want 0", n, tt.typ)
				}
			} else {
				var created struct{ ID string }
				_ = json.Unmarshal(body, &created)
				r, err := http.Get(srv.URL + "/fhir/" + tt.typ + "/" + created.ID)
				if err != nil {
					t.Fatal(err)
				}
				r.Body.Close()
				if r.StatusCode != http.StatusOK {
					t.Errorf("reading back %s/%s on %s = %d, want 200", tt.typ, created.ID, tt.vendor, r.StatusCode)
				}
			}
			if w := sim.Writes(); len(w) != 1 || w[0].Status != tt.wantStatus {
				t.Errorf("Writes() = %+v, want the one request with status %d", w, tt.wantStatus)
			}
		})
	}
}

// TestWriteCapabilities checks that a personality advertises exactly the
// writes its vendor accepts.
func TestWriteCapabilities(t *testing.T) {
	sim := ehrsim.New(ehrsim.Options{})
	base := serveVendor(t, sim, "epic", nil)
	resp, err := http.Get(base + "/metadata")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var cs struct {
		Rest []struct {
			Resource []struct {
				Type        string
				Interaction []struct{ Code string }
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&cs); err != nil {
		t.Fatal(err)
	}
	a, _ := ehr.Lookup("epic")
	rules := a.Profile().Write
	for _, res := range cs.Rest[0].Resource {
		for _, it := range res.Interaction {
			if (it.Code == "create" || it.Code == "update") && !rules.Accepts(res.Type, it.Code) {
				t.Errorf("epic advertises %s of %s, which its profile does not accept", it.Code, res.Type)
			}
		}
	}
}
