package clients_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"ehrgate/clients"
	"ehrgate/store"
	_ "ehrgate/store/sqlite"
)

func jwks(t *testing.T, private bool) json.RawMessage {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var key any = &k.PublicKey
	if private {
		key = k
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key, KeyID: "k1", Algorithm: "ES384", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValidate(t *testing.T) {
	pub := jwks(t, false)
	tests := []struct {
		name string
		c    clients.Client
		want string // "" = valid
	}{
		{"public app", clients.Client{ID: "growth-chart", Public: true, RedirectURIs: []string{"https://app.example.org/cb"},
			Scopes: []string{"launch/patient", "patient/Observation.rs"}}, ""},
		{"public app on loopback http", clients.Client{ID: "dev", Public: true, RedirectURIs: []string{"http://127.0.0.1:9000/cb"}}, ""},
		{"backend service", clients.Client{ID: "analytics", JWKS: pub, Scopes: []string{"system/*.rs"}}, ""},
		{"backend by URL", clients.Client{ID: "analytics2", JWKSURL: "https://analytics.example.org/jwks.json"}, ""},
		{"CDS client", clients.Client{ID: "epic-cds", CDS: true, Issuer: "https://fhir.epic.example/", JWKS: pub}, ""},
		{"bad id", clients.Client{ID: "no spaces", Public: true, RedirectURIs: []string{"https://a.example/cb"}}, "client id"},
		{"public without redirect", clients.Client{ID: "a", Public: true}, "redirect-uri"},
		{"public with keys", clients.Client{ID: "a", Public: true, RedirectURIs: []string{"https://a.example/cb"}, JWKS: pub}, "no keys"},
		{"confidential without keys", clients.Client{ID: "a"}, "needs its keys"},
		{"http redirect", clients.Client{ID: "a", Public: true, RedirectURIs: []string{"http://app.example.org/cb"}}, "https"},
		{"redirect with fragment", clients.Client{ID: "a", Public: true, RedirectURIs: []string{"https://app.example.org/cb#x"}}, "fragment"},
		{"private key in JWKS", clients.Client{ID: "a", JWKS: jwks(t, true)}, "private key"},
		{"JWKS not JSON", clients.Client{ID: "a", JWKS: json.RawMessage(`{"keys": 1}`)}, "JSON Web Key Set"},
		{"bad scope", clients.Client{ID: "a", JWKS: pub, Scopes: []string{"system/*.frobnicate"}}, "scopes"},
		{"CDS public", clients.Client{ID: "a", CDS: true, Public: true, RedirectURIs: []string{"https://a.example/cb"}}, "cannot be public"},
		{"iss without CDS", clients.Client{ID: "a", JWKS: pub, Issuer: "https://x.example"}, "--iss"},
	}
	for _, tc := range tests {
		err := tc.c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: Validate = %v, want nil", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: Validate = %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestRegistry(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+t.TempDir(), store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := clients.NewRegistry(st)
	app := clients.Client{ID: "growth-chart", Public: true, RedirectURIs: []string{"https://app.example.org/cb"}}
	if _, err := r.Add(ctx, app); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Add(ctx, app); !errors.Is(err, clients.ErrExists) {
		t.Errorf("second Add = %v, want ErrExists", err)
	}
	if _, err := r.Add(ctx, clients.Client{ID: "analytics", JWKS: jwks(t, false)}); err != nil {
		t.Fatal(err)
	}
	list, err := r.List(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "analytics" || list[1].ID != "growth-chart" || list[1].Created.IsZero() {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := r.Remove(ctx, "analytics"); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(ctx, "analytics"); !errors.Is(err, clients.ErrNotFound) {
		t.Errorf("second Remove = %v, want ErrNotFound", err)
	}
	if _, err := r.Get(ctx, "analytics"); !errors.Is(err, clients.ErrNotFound) {
		t.Errorf("Get after Remove = %v, want ErrNotFound", err)
	}
}
