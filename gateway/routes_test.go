package gateway_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ehrgate/config"
	"ehrgate/gateway"
	"ehrgate/secrets"
	"ehrgate/store"
)

var update = flag.Bool("update", false, "rewrite testdata/routes.golden")

// TestRouteTable is the gateway's whole HTTP surface with who may call
// each route. A route added (or an access rule changed) without updating
// testdata/routes.golden fails here, so every change to what ehrgate
// serves is seen and its access rule reviewed (go test -run RouteTable
// -update ./gateway rewrites the file).
func TestRouteTable(t *testing.T) {
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
		Events: config.Events{Webhooks: []config.Webhook{{URL: "https://hooks.example.org/", SecretEnv: "HOOK_SECRET"}},
			Subscriptions: config.Subscriptions{BaseURL: "https://ehrgate.example.org", Connections: []string{"none"}}},
		API: config.API{BaseURL: "https://ehrgate.example.org/fhir"},
		CDS: config.CDS{BaseURL: "https://ehrgate.example.org"},
		Login: config.Login{Mode: config.LoginOpenID, OIDC: config.LoginOIDC{Issuer: "https://idp.example.org", ClientID: "ehrgate",
			ClientSecretEnv: "OIDC_SECRET", RedirectURL: "https://ehrgate.example.org/login/callback"}}}
	g, err := gateway.New(ctx, gateway.Options{Config: cfg, Store: st, Keyring: secrets.NewKeyring(kek),
		Getenv: func(string) string { return "secret" }})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.SetupLaunches(g.Connections()); err != nil {
		t.Fatal(err)
	}
	ev, err := g.StartEvents(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.StartSubscriptions(ctx, ev.Bus); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range g.Routes() {
		fmt.Fprintf(&b, "%-28s %-13s %s\n", r.Pattern, r.Access, r.Serves)
	}
	golden := filepath.Join("testdata", "routes.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("the route table changed; review each route's access rule, then run with -update.\ngot:\n%s\nwant:\n%s", b.String(), want)
	}
}
