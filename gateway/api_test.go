package gateway_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"ehrgate/authz"
	"ehrgate/clients"
	"ehrgate/config"
	"ehrgate/gateway"
	"ehrgate/refresh"
	"ehrgate/secrets"
	"ehrgate/store"
	"ehrgate/synth"
)

// apiGateway serves a gateway whose API is protected by ehrgate's own
// authorization server, with two synthetic patients on connection
// "clinic", and registers a backend-services client with the scopes.
type apiGateway struct {
	base, issuer string
	key          *ecdsa.PrivateKey
	st           store.Backend
}

func newAPIGateway(t *testing.T, ctx context.Context, scopes ...string) *apiGateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	st, err := store.Open(ctx, "sqlite:"+t.TempDir(), store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	gen := synth.New(synth.Options{Patients: 2, Seed: 3})
	var recs []store.Record
	for i := 0; i < 2; i++ {
		for _, raw := range gen.Patient(i) {
			rec, err := refresh.NewRecord("clinic", raw, gen.Now(), "test")
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, rec)
		}
	}
	if _, err := st.PutResources(ctx, recs); err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES384", Use: "sig"}}})
	if _, err := clients.NewRegistry(st).Add(ctx, clients.Client{ID: "analytics", JWKS: jwks, Scopes: scopes}); err != nil {
		t.Fatal(err)
	}
	kek, _ := secrets.GenerateKEK()
	cfg := config.Config{
		Connections: []config.Connection{{Name: "clinic", BaseURL: "https://clinic.test/fhir"}},
		API:         config.API{BaseURL: issuer + "/fhir"},
	}
	g, err := gateway.New(ctx, gateway.Options{Config: cfg, Store: st, Keyring: secrets.NewKeyring(kek)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- g.Serve(sctx, ln) }()
	t.Cleanup(func() { stop(); <-done })
	return &apiGateway{base: issuer + "/fhir", issuer: issuer, key: key, st: st}
}

// assertion signs a client assertion for aud.
func (a *apiGateway) assertion(t *testing.T, aud string) string {
	t.Helper()
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: a.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	jti := make([]byte, 12)
	rand.Read(jti)
	s, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: "analytics", Subject: "analytics", Audience: jwt.Audience{aud},
		ID: hex.EncodeToString(jti), IssuedAt: jwt.NewNumericDate(time.Now()), Expiry: jwt.NewNumericDate(time.Now().Add(3 * time.Minute))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (a *apiGateway) token(t *testing.T, scopes ...string) *oauth2.Token {
	t.Helper()
	cc := clientcredentials.Config{ClientID: "analytics", TokenURL: a.issuer + authz.PathToken, Scopes: scopes, AuthStyle: oauth2.AuthStyleInParams,
		EndpointParams: url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion": {a.assertion(t, a.issuer+authz.PathToken)}}}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatalf("backend services token: %v", err)
	}
	return tok
}

func get(t *testing.T, tok, u string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// TestBackendServicesClientSearchesTheAPI: a backend-services client gets
// a token from ehrgate's authorization server (private_key_jwt, ES384) and
// searches; fhir-kit-client (npm) pages through the same search; scopes
// the client lacks are refused; a revoked token stops working.
func TestBackendServicesClientSearchesTheAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := newAPIGateway(t, ctx, "system/Patient.rs", "system/Observation.rs")
	code, smartCfg := get(t, "", a.base+"/.well-known/smart-configuration")
	if code != 200 || smartCfg["token_endpoint"] != a.issuer+authz.PathToken {
		t.Fatalf("smart-configuration = %d %v", code, smartCfg)
	}
	tok := a.token(t, "system/Observation.rs", "system/Condition.rs")
	if strings.Contains(tok.Extra("scope").(string), "Condition") {
		t.Errorf("granted %q: Condition is beyond the registration", tok.Extra("scope"))
	}
	code, b := get(t, tok.AccessToken, a.base+"/Observation?patient=clinic.p00000&_count=5")
	if code != 200 || b["resourceType"] != "Bundle" || len(b["entry"].([]any)) != 5 {
		t.Fatalf("search = %d %v", code, b["resourceType"])
	}
	if code, _ := get(t, tok.AccessToken, a.base+"/Condition?patient=clinic.p00000"); code != 403 {
		t.Errorf("Condition search without its scope = %d, want 403", code)
	}
	// Every page, as the Go client sees them.
	var want []string
	for u := a.base + "/Observation?patient=clinic.p00000&_count=7"; u != ""; {
		_, b := get(t, tok.AccessToken, u)
		entries, _ := b["entry"].([]any)
		for _, e := range entries {
			r := e.(map[string]any)["resource"].(map[string]any)
			want = append(want, r["resourceType"].(string)+"/"+r["id"].(string))
		}
		u = ""
		for _, l := range b["link"].([]any) {
			if l.(map[string]any)["relation"] == "next" {
				u = l.(map[string]any)["url"].(string)
			}
		}
	}
	// The same through fhir-kit-client.
	t.Run("fhir-kit-client", func(t *testing.T) {
		dir, _ := filepath.Abs("../interop/fhirapi")
		node, err := exec.LookPath("node")
		if err != nil {
			t.Skip("node is not installed (make test installs the interop clients)")
		}
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "fhir-kit-client")); err != nil {
			t.Skip("fhir-kit-client is not installed: run scripts/install-test-deps.sh (npm ci in interop/fhirapi)")
		}
		cmd := exec.CommandContext(ctx, node, "page.mjs", a.base, "Observation", "patient=clinic.p00000&_count=7")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "EHRGATE_TOKEN="+tok.AccessToken)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("node page.mjs: %v\n%s", err, stderr.String())
		}
		var got struct {
			Pages   int
			IDs     []string
			Refused any
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("page.mjs printed %s", out)
		}
		if strings.Join(got.IDs, ",") != strings.Join(want, ",") || got.Pages < 2 {
			t.Errorf("fhir-kit-client paged %d pages, %d resources; the API has %d", got.Pages, len(got.IDs), len(want))
		}
		if got.Refused != float64(401) {
			t.Errorf("fhir-kit-client with a forged token: %v, want 401", got.Refused)
		}
	})
	// Revoked: refused.
	resp, err := http.PostForm(a.issuer+authz.PathRevoke, url.Values{"token": {tok.AccessToken},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {a.assertion(t, a.issuer+authz.PathRevoke)}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code, _ := get(t, tok.AccessToken, a.base+"/Observation?patient=clinic.p00000"); code != 401 {
		t.Errorf("after revocation (%d): search = %d, want 401", resp.StatusCode, code)
	}
}
