package gateway_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"ehrgate/config"
	"ehrgate/gateway"
	"ehrgate/secrets"
	"ehrgate/server"
	"ehrgate/store"
)

// TestNoRouteServesPatientDataWithoutAuthentication walks the whole route
// table of a gateway with everything on (login, the API and its
// authorization server, CDS services, SMART launches, events) and calls
// every route that is neither public nor operator without credentials:
// none may answer 2xx.
func TestNoRouteServesPatientDataWithoutAuthentication(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, "sqlite:"+t.TempDir(), store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kek, _ := secrets.GenerateKEK()
	launch := config.Connection{Name: "clinicians", BaseURL: "https://ehr.example.org/fhir",
		Auth: &config.Auth{Type: config.AuthLaunch, ClientID: "app", Method: "none", RedirectURL: "http://127.0.0.1:8080/smart/callback"}}
	cfg := config.Config{Connections: []config.Connection{launch},
		Login: config.Login{Mode: config.LoginLocal},
		API:   config.API{BaseURL: "http://127.0.0.1/fhir"},
		CDS:   config.CDS{BaseURL: "http://127.0.0.1"}}
	g, err := gateway.New(ctx, gateway.Options{Config: cfg, Store: st, Keyring: secrets.NewKeyring(kek), LoginParams: cheapHash})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.SetupLaunches(g.Connections()); err != nil {
		t.Fatal(err)
	}
	if _, err := g.StartEvents(ctx, nil); err != nil {
		t.Fatal(err)
	}
	h := g.Handler()
	checked := 0
	for _, rt := range g.Routes() {
		if rt.Access == server.Public || rt.Access == server.Operator || rt.Access == server.SignIn {
			continue
		}
		method, path, ok := strings.Cut(rt.Pattern, " ")
		if !ok {
			method, path = "GET", rt.Pattern
		}
		// Fill the wildcards with plausible values.
		r := strings.NewReplacer("{type}", "Patient", "{id}", "clinicians.p1", "{vid}", "1", "{op}", "$everything",
			"{job}", "0123456789abcdef", "{file}", "Patient.ndjson", "{$}", "")
		path = r.Replace(path)
		if strings.HasSuffix(path, "/") {
			path += "patients"
		}
		req := httptest.NewRequest(method, "http://127.0.0.1"+path, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checked++
		if rec.Code < 300 {
			t.Errorf("%s (%s) without credentials = %d, want a refusal or a redirect to sign in", rt.Pattern, rt.Access, rec.Code)
		}
	}
	if checked < 20 {
		t.Errorf("checked %d routes; the table should have more", checked)
	}
}
