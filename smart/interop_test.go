package smart

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"ehrgate/ehrsim/smartauth"
	"ehrgate/fhir"
)

// TestInteropBackendServicesWithSimulator runs backend services against the
// simulated EHR's authorization server (ehrsim/smartauth), which fetches
// ehrgate's JWKS over HTTP and verifies the client assertion itself.
func TestInteropBackendServicesWithSimulator(t *testing.T) {
	ctx := context.Background()
	st, ring := newMemStore(), newRing(t)
	keys := NewKeyManager(st, ring, KeyOptions{})
	if _, err := keys.Rotate(ctx, RS384); err != nil {
		t.Fatal(err)
	}
	app := httptest.NewServer(keys.JWKSHandler())
	defer app.Close()

	var h http.Handler = http.NotFoundHandler()
	ehr := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	defer ehr.Close()
	fhirH := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		if r.URL.Path == "/fhir/Patient/p1" {
			fmt.Fprint(w, `{"resourceType":"Patient","id":"p1"}`)
			return
		}
		if r.URL.Path == "/fhir/Patient" {
			fmt.Fprint(w, `{"resourceType":"Bundle","type":"searchset","entry":[]}`)
			return
		}
		http.NotFound(w, r)
	})
	as, err := smartauth.New(smartauth.Options{
		Issuer:   ehr.URL + "/fhir",
		Clients:  []smartauth.Client{{ID: "ehrgate-backend", JWKSURL: app.URL, Scopes: []string{"system/*.rs"}}},
		Patients: func() []smartauth.PatientChoice { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	h = smartauth.WithSMART(fhirH, as)

	ts, err := NewTokenSource(TokenSourceOptions{
		Client: ClientConfig{Connection: "sim", FHIRBaseURL: ehr.URL + "/fhir", ClientID: "ehrgate-backend", AuthMethod: AuthPrivateKeyJWT,
			Scopes: ScopeRequest{Context: ContextSystem, Types: []string{"Patient", "Observation"}}},
		Grant: GrantClientCredentials, Vault: NewVault(st, ring, nil), Discoverer: NewDiscoverer(nil, nil), Keys: keys,
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ts.Token(ctx)
	if err != nil {
		t.Fatalf("client_credentials against the simulator: %v", err)
	}
	granted, _ := ParseScopes(tok.Scope)
	if ok, _ := granted.CanSearch(ContextSystem, "Patient"); !ok {
		t.Errorf("granted %q does not allow Patient", tok.Scope)
	}
	c, err := fhir.NewClient(ehr.URL+"/fhir", fhir.Options{Authorizer: ts})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(ctx, "Patient", "p1"); err != nil {
		t.Errorf("protected read with the simulator's token: %v", err)
	}
}

// TestEnsureTypesRenewsANarrowToken: a still-valid token stored for fewer
// types (the connection's types were widened since) is replaced by a new
// grant before use; what the simulated authorization server then still
// refuses (the client is not registered for Condition) is reported.
func TestEnsureTypesRenewsANarrowToken(t *testing.T) {
	ctx := context.Background()
	st, ring := newMemStore(), newRing(t)
	keys := NewKeyManager(st, ring, KeyOptions{})
	if _, err := keys.Rotate(ctx, RS384); err != nil {
		t.Fatal(err)
	}
	app := httptest.NewServer(keys.JWKSHandler())
	defer app.Close()
	var h http.Handler = http.NotFoundHandler()
	ehr := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	defer ehr.Close()
	as, err := smartauth.New(smartauth.Options{
		Issuer:   ehr.URL + "/fhir",
		Clients:  []smartauth.Client{{ID: "ehrgate-backend", JWKSURL: app.URL, Scopes: []string{"system/Patient.rs", "system/Observation.rs"}}},
		Patients: func() []smartauth.PatientChoice { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	h = smartauth.WithSMART(http.NotFoundHandler(), as)
	vault := NewVault(st, ring, nil)
	source := func(types ...string) *TokenSource {
		ts, err := NewTokenSource(TokenSourceOptions{
			Client: ClientConfig{Connection: "sim", FHIRBaseURL: ehr.URL + "/fhir", ClientID: "ehrgate-backend", AuthMethod: AuthPrivateKeyJWT,
				Scopes: ScopeRequest{Context: ContextSystem, Types: types}},
			Grant: GrantClientCredentials, Vault: vault, Discoverer: NewDiscoverer(nil, nil), Keys: keys,
		})
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	old, err := source("Patient").Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ng, err := source("Patient").EnsureTypes(ctx, []string{"Patient"}); err != nil || len(ng) != 0 {
		t.Fatalf("EnsureTypes(Patient) = %v, %v; want all granted", ng, err)
	}
	if again, _ := source("Patient").Token(ctx); again.AccessToken != old.AccessToken {
		t.Error("a token covering the request was renewed")
	}

	// The configuration now lists more types; the stored token (valid for an
	// hour) was granted Patient only.
	wide := source("Patient", "Observation", "Condition")
	ng, err := wide.EnsureTypes(ctx, []string{"Patient", "Observation", "Condition"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ng) != 1 || ng[0] != "Condition" {
		t.Errorf("EnsureTypes = not granted %v, want [Condition] (the client is not registered for it)", ng)
	}
	tok, err := wide.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	granted, _ := ParseScopes(tok.Scope)
	if tok.AccessToken == old.AccessToken {
		t.Fatal("the narrow token was kept")
	}
	if ok, _ := granted.CanSearch(ContextSystem, "Observation"); !ok {
		t.Errorf("renewed token scope %q does not cover Observation", tok.Scope)
	}
	stored, _, _ := vault.Load(ctx, "sim")
	if stored == nil || stored.AccessToken != tok.AccessToken {
		t.Error("the renewed token was not stored for the next process")
	}
}
