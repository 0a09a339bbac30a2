package cdsclient

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"ehrgate/ehrsim"
)

// fakeCDS is a CDS service that records what it receives and answers one
// card.
type fakeCDS struct {
	mu     sync.Mutex
	bodies []map[string]any
	auths  []string
	paths  []string
}

func (f *fakeCDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		_, _ = io.WriteString(w, `{"services":[{"hook":"order-select","id":"svc","description":"d","prefetch":{`+
			`"patient":"Patient/{{context.patientId}}","allergies":"AllergyIntolerance?patient={{context.patientId}}",`+
			`"user":"Practitioner/{{userPractitionerId}}","role":"PractitionerRole/{{userPractitionerRoleId}}"}}]}`)
		return
	}
	var body map[string]any
	_ = json.NewDecoder(r.Body).Decode(&body)
	f.mu.Lock()
	f.bodies = append(f.bodies, body)
	f.auths = append(f.auths, r.Header.Get("Authorization"))
	f.paths = append(f.paths, r.URL.Path)
	f.mu.Unlock()
	_, _ = io.WriteString(w, `{"cards":[{"uuid":"c1","summary":"s","indicator":"info","source":{"label":"l"},`+
		`"suggestions":[{"label":"x","uuid":"s1","actions":[{"type":"delete","description":"d","resourceId":"MedicationRequest/1"}]}],"selectionBehavior":"at-most-one"}]}`)
}

func TestInvokeSignsFillsPrefetchAndSendsFeedback(t *testing.T) {
	sim := ehrsim.New(ehrsim.Options{})
	for _, r := range []string{
		`{"resourceType":"Patient","id":"p1"}`,
		`{"resourceType":"AllergyIntolerance","id":"a1","patient":{"reference":"Patient/p1"},"code":{"text":"Penicillin"}}`,
	} {
		if err := sim.Load(json.RawMessage(r)); err != nil {
			t.Fatal(err)
		}
	}
	ehr := httptest.NewServer(sim.Handler())
	defer ehr.Close()
	fake := &fakeCDS{}
	cds := httptest.NewServer(fake)
	defer cds.Close()

	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c, err := New(Options{Issuer: "https://sim.example", FHIRServer: ehr.URL + "/fhir", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	svcs, err := c.Discover(ctx, cds.URL)
	if err != nil || len(svcs) != 1 {
		t.Fatalf("Discover = %v, %v", svcs, err)
	}
	resp, err := c.Invoke(ctx, cds.URL, svcs[0], Call{FillPrefetch: true,
		Context: map[string]any{"userId": "PractitionerRole/r1", "patientId": "p1"}})
	if err != nil || resp.Status != 200 || len(resp.Cards) != 1 || resp.Cards[0].Suggestions[0].UUID != "s1" {
		t.Fatalf("Invoke = %+v, %v", resp, err)
	}
	body := fake.bodies[0]
	pf, _ := body["prefetch"].(map[string]any)
	// Patient and allergies are filled; "user" needs a Practitioner user
	// and is left out; "role" names a PractitionerRole the simulator does
	// not have (404), so it is left out too.
	if _, ok := pf["patient"]; !ok {
		t.Errorf("prefetch patient missing: %v", pf)
	}
	if b, ok := pf["allergies"].(map[string]any); !ok || b["resourceType"] != "Bundle" {
		t.Errorf("prefetch allergies = %v", pf["allergies"])
	}
	for _, k := range []string{"user", "role"} {
		if _, ok := pf[k]; ok {
			t.Errorf("prefetch %s sent although it could not be satisfied", k)
		}
	}
	if body["fhirServer"] != ehr.URL+"/fhir" || body["hook"] != "order-select" || body["hookInstance"] == "" {
		t.Errorf("request = %v", body)
	}

	// The JWT verifies with the published JWKS and carries what CDS Hooks
	// asks for.
	tok := strings.TrimPrefix(fake.auths[0], "Bearer ")
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES384})
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(c.JWKS(), &set); err != nil || set.Keys[0].IsPublic() == false {
		t.Fatalf("JWKS = %s, %v", c.JWKS(), err)
	}
	if parsed.Headers[0].KeyID != set.Keys[0].KeyID {
		t.Errorf("kid %q is not the JWKS key's %q", parsed.Headers[0].KeyID, set.Keys[0].KeyID)
	}
	var cl jwt.Claims
	if err := parsed.Claims(set.Keys[0].Key, &cl); err != nil {
		t.Fatal(err)
	}
	if err := cl.Validate(jwt.Expected{Issuer: "https://sim.example", Subject: "https://sim.example",
		AnyAudience: jwt.Audience{cds.URL + "/cds-services/svc"}, Time: now}); err != nil || cl.ID == "" {
		t.Errorf("claims %+v: %v", cl, err)
	}
	if cl.Expiry.Time().Sub(now) > 5*time.Minute {
		t.Errorf("exp %v is more than 5 minutes ahead", cl.Expiry.Time())
	}

	st, err := c.Feedback(ctx, cds.URL, "svc", "c1", []string{"s1"}, nil)
	if err != nil || st != 200 || fake.paths[1] != "/cds-services/svc/feedback" {
		t.Fatalf("Feedback = %d, %v (%v)", st, err, fake.paths)
	}
	fb := fake.bodies[1]["feedback"].([]any)[0].(map[string]any)
	if fb["outcome"] != "accepted" || fb["card"] != "c1" {
		t.Errorf("feedback = %v", fb)
	}
	if fake.auths[1] == fake.auths[0] {
		t.Error("the feedback reused the call's JWT")
	}
}
