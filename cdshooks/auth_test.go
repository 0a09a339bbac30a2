package cdshooks_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"ehrgate/cdshooks"
	"ehrgate/clients"
	"ehrgate/store"
)

// signer makes JWTs with a P-384 key and kid.
type signer struct {
	key *ecdsa.PrivateKey
	kid string
}

func newSigner(t *testing.T, kid string) signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signer{key: k, kid: kid}
}

func (s signer) jwks() []byte {
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: s.key.Public(), KeyID: s.kid, Algorithm: "ES384", Use: "sig"}}})
	return b
}

func (s signer) sign(t *testing.T, claims map[string]any, extraHeaders map[jose.HeaderKey]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	for k, v := range extraHeaders {
		opts = opts.WithHeader(k, v)
	}
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: jose.JSONWebKey{Key: s.key, KeyID: s.kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(sg).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestJWTFailuresAre401 sends a valid body with tokens that must each be
// refused: the service answers 401 and no cards.
func TestJWTFailuresAre401(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	good := newSigner(t, "k1")
	if _, err := e.reg.Add(ctx, clients.Client{ID: "epic-prod", CDS: true, JWKS: good.jwks()}); err != nil {
		t.Fatal(err)
	}
	other := newSigner(t, "k1") // same kid, another key
	aud := e.svc.ServiceURL(cdshooks.ServiceOrderSelect)
	now := time.Now()
	claims := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{"iss": "epic-prod", "sub": "epic-prod", "aud": aud, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
			"jti": base64.RawURLEncoding.EncodeToString([]byte(time.Now().String() + t.Name()))}
		if mod != nil {
			mod(c)
		}
		return c
	}
	body, _ := json.Marshal(map[string]any{"hook": "order-select", "hookInstance": "1", "context": orderContext(patPenicillin,
		draftOrder("d", patPenicillin, amoxicillin)), "prefetch": map[string]any{"allergies": json.RawMessage(`{"resourceType":"Bundle","type":"searchset"}`)}})
	call := func(tok string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, aud, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if st, b := call(good.sign(t, claims(nil), nil)); st != http.StatusOK {
		t.Fatalf("a good token = %d %s", st, b)
	}
	replayed := good.sign(t, claims(nil), nil)
	if st, b := call(replayed); st != http.StatusOK {
		t.Fatalf("first use = %d %s", st, b)
	}
	c := claims(nil)
	unsigned := b64(map[string]string{"alg": "none", "typ": "JWT", "kid": "k1"}) + "." + b64(c) + "."
	hmac := func() string {
		sg, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")},
			(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
		s, _ := jwt.Signed(sg).Claims(claims(nil)).Serialize()
		return s
	}()
	for _, tc := range []struct {
		name, token, reason string
	}{
		{"no token", "", "no bearer JWT"},
		{"not a JWT", "opaque", "not a JWT"},
		{"unsigned (alg none)", unsigned, "not a JWT"},
		{"HMAC", hmac, "not a JWT"},
		{"wrong key", other.sign(t, claims(nil), nil), "does not verify"},
		{"unknown iss", good.sign(t, claims(func(c map[string]any) { c["iss"] = "someone-else" }), nil), "no CDS client"},
		{"wrong aud", good.sign(t, claims(func(c map[string]any) { c["aud"] = e.cds.URL + "/cds-services/other" }), nil), "aud"},
		{"expired", good.sign(t, claims(func(c map[string]any) {
			c["iat"], c["exp"] = now.Add(-10*time.Minute).Unix(), now.Add(-5*time.Minute).Unix()
		}), nil), "expired"},
		{"exp too far ahead", good.sign(t, claims(func(c map[string]any) { c["exp"] = now.Add(2 * time.Hour).Unix() }), nil), "ahead"},
		{"iat in the future", good.sign(t, claims(func(c map[string]any) { c["iat"] = now.Add(time.Hour).Unix() }), nil), "future"},
		{"no jti", good.sign(t, claims(func(c map[string]any) { delete(c, "jti") }), nil), "no jti"},
		{"no sub", good.sign(t, claims(func(c map[string]any) { delete(c, "sub") }), nil), "no sub"},
		{"replayed jti", replayed, "used before"},
		{"jku not allowed", good.sign(t, claims(nil), map[jose.HeaderKey]any{"jku": "https://evil.example/jwks"}), "jku"},
		{"app client, not CDS", good.sign(t, claims(func(c map[string]any) { c["iss"] = "app" }), nil), "no CDS client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "app client, not CDS" {
				if _, err := e.reg.Add(ctx, clients.Client{ID: "app", JWKS: good.jwks()}); err != nil {
					t.Fatal(err)
				}
			}
			st, b := call(tc.token)
			if st != http.StatusUnauthorized || !strings.Contains(b, tc.reason) {
				t.Errorf("call = %d %s, want 401 saying %q", st, b, tc.reason)
			}
			if strings.Contains(b, "Penicillin") {
				t.Errorf("a refused call got patient data: %s", b)
			}
		})
	}
}

// TestJWKSByURLAndJKUAllowList: a client registered with a JWKS URL is
// verified with the keys fetched from it; a jku on the allow-list is used.
func TestJWKSByURLAndJKUAllowList(t *testing.T) {
	k1, k2 := newSigner(t, "url-key"), newSigner(t, "jku-key")
	jwksSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/registered":
			_, _ = w.Write(k1.jwks())
		case "/allowed":
			_, _ = w.Write(k2.jwks())
		default:
			http.NotFound(w, r)
		}
	}))
	defer jwksSrv.Close()
	e := newEnv(t, func(o *cdshooks.Options) {
		o.HTTPClient = jwksSrv.Client()
		o.JKUAllowList = []string{jwksSrv.URL + "/allowed"}
	})
	ctx := context.Background()
	if _, err := e.reg.Add(ctx, clients.Client{ID: "oracle", CDS: true, JWKSURL: jwksSrv.URL + "/registered"}); err != nil {
		t.Fatal(err)
	}
	aud := e.svc.ServiceURL(cdshooks.ServicePatientView)
	body := []byte(`{"hook":"patient-view","hookInstance":"x","context":{"userId":"Practitioner/1","patientId":"p1"},` +
		`"prefetch":{"allergies":{"resourceType":"Bundle","type":"searchset"}}}`)
	n := 0
	tok := func(s signer, hdr map[jose.HeaderKey]any) string {
		n++
		return s.sign(t, map[string]any{"iss": "oracle", "sub": "oracle", "aud": []string{aud}, "iat": time.Now().Unix(),
			"exp": time.Now().Add(time.Minute).Unix(), "jti": t.Name() + string(rune('a'+n))}, hdr)
	}
	for _, tc := range []struct {
		name  string
		token string
		want  int
	}{
		{"registered JWKS URL", tok(k1, nil), 200},
		{"jku on the allow-list", tok(k2, map[jose.HeaderKey]any{"jku": jwksSrv.URL + "/allowed"}), 200},
		{"jku key without jku", tok(k2, nil), 401},
	} {
		req, _ := http.NewRequest(http.MethodPost, aud, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tc.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s = %d %s, want %d", tc.name, resp.StatusCode, b, tc.want)
		}
	}
}

// TestReplayAcrossReplicas: two services on one store (two replicas)
// refuse a JWT the other accepted.
func TestReplayAcrossReplicas(t *testing.T) {
	e := newEnv(t)
	other, err := cdshooks.New(cdshooks.Options{BaseURL: e.cds.URL, Store: e.st, Audit: e.rec})
	if err != nil {
		t.Fatal(err)
	}
	otherSrv := httptest.NewServer(serverFor(other))
	defer otherSrv.Close()
	aud := e.svc.ServiceURL(cdshooks.ServicePatientView)
	tok, err := e.sim.Token(aud)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"hook":"patient-view","hookInstance":"x","context":{"userId":"Practitioner/1","patientId":"p1"},` +
		`"prefetch":{"allergies":{"resourceType":"Bundle","type":"searchset"}}}`)
	for i, base := range []string{e.cds.URL, otherSrv.URL} {
		req, _ := http.NewRequest(http.MethodPost, base+"/cds-services/"+cdshooks.ServicePatientView, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := []int{200, 401}[i]; resp.StatusCode != want {
			t.Errorf("replica %d = %d, want %d", i, resp.StatusCode, want)
		}
	}
	// Expired records are pruned.
	n, err := cdshooks.PruneJTIs(context.Background(), e.st, time.Now().Add(time.Hour))
	if err != nil || n != 1 {
		t.Errorf("PruneJTIs = %d, %v, want 1", n, err)
	}
	if names, _ := e.st.ListDocuments(context.Background(), cdshooks.DocJTI); len(names) != 0 {
		t.Errorf("left after pruning: %v", names)
	}
	var _ store.Documents = e.st
}
