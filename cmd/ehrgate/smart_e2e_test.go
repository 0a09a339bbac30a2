package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"ehrgate/ehrsim/smartauth"
	"ehrgate/refresh"
	"ehrgate/secrets"
	"ehrgate/smart"
	"ehrgate/store"
	"ehrgate/store/sqlite"
)

// TestSyncWithANarrowedGrantDegrades: the EHR grants ehrgate's backend
// client fewer types than it asks for. `ehrgate sync` must not fail on the
// 403s it would get: it completes without errors, and each type not granted
// is recorded per patient as not available, with a reason saying so (never
// as "none recorded").
func TestSyncWithANarrowedGrantDegrades(t *testing.T) {
	tests := []struct {
		name    string
		refused []string
	}{
		{"no Immunization", []string{"Immunization"}},
		{"no Immunization nor DocumentReference", []string{"Immunization", "DocumentReference"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			data := t.TempDir()
			jwks := firstSigningKey(t, data)

			// The EHR registers ehrgate's backend client for every chart type
			// but the refused ones (both scope syntaxes).
			var scopes []string
			for _, typ := range refresh.ChartTypes {
				if !slices.Contains(tc.refused, typ) {
					scopes = append(scopes, "system/"+typ+".rs", "system/"+typ+".read")
				}
			}
			f := simFlags{patients: 3, seed: 1, pageSize: 50, vendor: "generic", accessTTL: time.Hour}
			sim, err := f.newSim(slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			ep, err := f.start(ctx, sim, "127.0.0.1:0", []smartauth.Client{{ID: "ehrgate-narrow", JWKS: jwks,
				TokenEndpointAuth: "private_key_jwt", Scopes: scopes}}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer ep.stop()

			cfg := filepath.Join(t.TempDir(), "ehrgate.yaml")
			yaml := "data: " + data + "\nconnections:\n  - name: narrow\n    base_url: " + ep.base +
				"\n    auth:\n      type: backend-services\n      client_id: ehrgate-narrow\n"
			if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			out, stderr, err := run(t, ctx, "sync", "--config", cfg, "--connection", "narrow", "--json", "--log-level", "warn")
			if err != nil {
				t.Fatalf("sync with a narrowed grant = %v; want success (exit 0)\n%s", err, stderr)
			}
			sum := decodeSummary(t, out)
			if sum.Errors != 0 || sum.Patients != 3 {
				t.Errorf("summary = %+v; want 3 patients and 0 errors", sum)
			}
			want := sim.Counts()
			for _, typ := range refresh.ChartTypes {
				switch {
				case slices.Contains(tc.refused, typ) && sum.Resources[typ] != 0:
					t.Errorf("pulled %d %s, which was not granted", sum.Resources[typ], typ)
				case !slices.Contains(tc.refused, typ) && sum.Resources[typ] != want[typ]:
					t.Errorf("pulled %d %s; the simulator serves %d", sum.Resources[typ], typ, want[typ])
				}
			}
			if !strings.Contains(stderr, "not granted") {
				t.Errorf("the sync did not warn about the types not granted:\n%s", stderr)
			}

			st, err := sqlite.OpenDir(ctx, data)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			for _, pid := range sim.PatientIDs() {
				states, err := st.FetchStates(ctx, "narrow", pid)
				if err != nil {
					t.Fatal(err)
				}
				byType := map[string]store.FetchState{}
				for _, s := range states {
					byType[s.Type] = s
				}
				for _, typ := range refresh.ChartTypes[1:] { // Patient is listed, not fetched per patient
					s, ok := byType[typ]
					if slices.Contains(tc.refused, typ) {
						if !ok || s.Availability != store.NotAvailable || !strings.Contains(s.Detail, "not granted") {
							t.Errorf("patient %s %s fetch state = %+v (recorded %v); want not available, \"not granted\"", pid, typ, s, ok)
						}
					} else if !ok || s.Availability != store.Available {
						t.Errorf("patient %s %s fetch state = %+v (recorded %v); want available", pid, typ, s, ok)
					}
				}
			}
		})
	}
}

// ehrLaunchOverHTTP launches ehrgate from the simulated EHR for patient as a
// browser would (a cookie-keeping HTTP client: launch page, login, consent,
// ehrgate's callback) and checks that it ends on ehrgate's launched view of
// the patient. It returns the authorization code ehrgate received.
func ehrLaunchOverHTTP(t *testing.T, d *launchDemo, patient string) (code string) {
	t.Helper()
	// An EHR launch with a cookie-keeping HTTP client; the authorization
	// code is taken from the redirect to ehrgate's callback.
	jar, _ := cookiejar.New(nil)
	b := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasSuffix(req.URL.Path, "/smart/callback") && req.URL.Query().Get("code") != "" {
			code = req.URL.Query().Get("code")
		}
		return nil
	}}
	send := func(method, u string, form url.Values) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, u, strings.NewReader(form.Encode()))
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := b.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, u, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	fields := func(page string) url.Values {
		v := url.Values{}
		for _, m := range formFieldRE.FindAllStringSubmatch(page, -1) {
			v.Set(m[1], m[2])
		}
		return v
	}
	_, page := send(http.MethodGet, d.launchURL, nil)
	form := fields(page)
	form.Set("launch", demoLaunchClient+" "+patient)
	resp, page := send(http.MethodPost, d.launchURL, form)
	for range 4 {
		if strings.HasPrefix(resp.Request.URL.String(), d.base+"/patients/") {
			break
		}
		form := fields(page)
		switch resp.Request.URL.Path {
		case "/auth/login":
			form.Set("username", "dr.smith")
			form.Set("password", "password")
		case "/auth/consent":
			form.Set("decision", "allow")
		default:
			t.Fatalf("the launch reached %s (%d): %.300s", resp.Request.URL, resp.StatusCode, page)
		}
		resp, page = send(http.MethodPost, d.simOrigin+resp.Request.URL.Path, form)
	}
	if want := "/patients/" + demoLaunchConnection + "/" + patient; resp.StatusCode != 200 || resp.Request.URL.Path != want {
		t.Fatalf("the EHR launch ended at %s (%d), want %s", resp.Request.URL, resp.StatusCode, want)
	}

	return code
}

// firstSigningKey creates ehrgate's first client-assertion key in data (as
// `ehrgate keys rotate` would) and returns the public JWKS to register with
// the EHR.
func firstSigningKey(t *testing.T, data string) json.RawMessage {
	t.Helper()
	ctx := context.Background()
	src, err := secrets.Load(os.Getenv, data)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.OpenDir(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	km := smart.NewKeyManager(st, src.Ring, smart.KeyOptions{})
	if _, err := km.Rotate(ctx, smart.ES384); err != nil {
		t.Fatal(err)
	}
	set, err := km.JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// demoSecrets is everything secret a full demo run produced.
type demoSecrets struct {
	tokens map[string]string // what → value: access, refresh and id tokens per connection, the authorization code
	kek    []string          // the key-encryption keys (base64, as in DATA/kek)
	keyD   []string          // the private signing keys' "d" parameters
	files  map[string][]byte // every file under DATA, read while the demo ran and again after it stopped
	logs   string            // stderr of the whole run, at debug level
}

var formFieldRE = regexp.MustCompile(`name="(csrf|req)" value="([^"]*)"`)

// runDemoWithLaunch runs the demo at debug level (the backend-services sync)
// and an EHR launch through ehrgate as a browser would, then collects the
// tokens ehrgate holds, its keys, its data files and its logs.
func runDemoWithLaunch(t *testing.T) *demoSecrets {
	t.Helper()
	ctx := context.Background()
	const patients = 4
	d := startLaunchDemo(t, patients, "--log-level", "debug", "--log-format", "json")
	patient, _ := demoPatient(t, "sqlite:"+d.data, patients)
	out := &demoSecrets{tokens: map[string]string{}, files: map[string][]byte{}}

	out.tokens["authorization code"] = ehrLaunchOverHTTP(t, d, patient)

	readFiles := func(when string) {
		t.Helper()
		err := filepath.WalkDir(d.data, func(path string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil && !os.IsNotExist(err) { // -wal/-shm may vanish at close
				return err
			}
			rel, _ := filepath.Rel(d.data, path)
			out.files[rel+" ("+when+")"] = b
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	readFiles("running")
	if _, ok := out.files["ehrgate.db-wal (running)"]; !ok {
		t.Logf("no WAL file while the demo ran; files: %v", keys(out.files))
	}

	// What ehrgate holds, decrypted with its own KEK: every connection's
	// tokens and every private signing key.
	src, err := secrets.Load(os.Getenv, d.data)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.OpenDir(ctx, d.data)
	if err != nil {
		t.Fatal(err)
	}
	encrypted, err := st.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vault := smart.NewVault(st, src.Ring, nil)
	for _, et := range encrypted {
		tok, _, err := vault.Load(ctx, et.Connection)
		if err != nil {
			t.Fatalf("loading the tokens of %s: %v", et.Connection, err)
		}
		for what, v := range map[string]smart.Secret{"access token": tok.AccessToken, "refresh token": tok.RefreshToken, "id_token": tok.IDToken} {
			if v != "" {
				out.tokens[et.Connection+" "+what] = string(v)
			}
		}
	}
	signing, err := st.ListSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range signing {
		priv, err := src.Ring.Open(secrets.Sealed(k.Private), secrets.AAD(k.KID, "signing-key"))
		if err != nil {
			t.Fatalf("decrypting signing key %s: %v", k.KID, err)
		}
		var jwk struct{ D string }
		if err := json.Unmarshal(priv, &jwk); err != nil || len(jwk.D) < 32 {
			t.Fatalf("signing key %s has no private d parameter: %v", k.KID, err)
		}
		out.keyD = append(out.keyD, jwk.D)
	}
	st.Close()
	if src.File == "" {
		t.Skip("EHRGATE_KEK is set in the environment: the KEK file check needs DATA/kek")
	}
	kekFile, err := os.ReadFile(src.File)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(kekFile), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			out.kek = append(out.kek, line)
		}
	}

	d.stop(t)
	readFiles("stopped")
	out.logs = d.logs.String()

	// The run must have produced what the tests look for, or they prove nothing.
	for _, want := range []string{demoConnection + " access token", "authorization code"} {
		if len(out.tokens[want]) < 20 {
			t.Fatalf("the run produced no %s to look for (have %v)", want, keys(out.tokens))
		}
	}
	var launchRefresh bool
	for what := range out.tokens {
		launchRefresh = launchRefresh || (strings.HasPrefix(what, demoLaunchConnection) && strings.HasSuffix(what, "refresh token"))
	}
	if !launchRefresh || len(out.kek) == 0 || len(out.keyD) == 0 {
		t.Fatalf("the run produced no launch refresh token (%v), KEK (%d) or signing key (%d) to look for", keys(out.tokens), len(out.kek), len(out.keyD))
	}
	if !strings.Contains(out.logs, `"component":"ehrsim-auth"`) {
		t.Fatalf("the simulated authorization server's logs were not captured:\n%.500s", out.logs)
	}
	if !strings.Contains(out.logs, `"level":"DEBUG"`) {
		t.Fatalf("the logs were not captured at debug level:\n%.500s", out.logs)
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// encodings are the forms a secret could leak in: as is, and (for the
// binary-looking KEK) the bytes behind its base64.
func encodings(s string) [][]byte {
	out := [][]byte{[]byte(s)}
	if raw, err := base64.StdEncoding.DecodeString(s); err == nil && len(raw) >= 16 {
		out = append(out, raw, []byte(base64.RawURLEncoding.EncodeToString(raw)))
	}
	return out
}

// TestDemoStoresNoTokenInPlaintext opens the store's files after a full
// demo run (backend-services sync plus an EHR launch) and finds none of the
// tokens ehrgate holds, the authorization code, or its private keys, in the
// database, its WAL and shared-memory files or any other file under DATA;
// and the KEK nowhere but in DATA/kek.
func TestDemoStoresNoTokenInPlaintext(t *testing.T) {
	s := runDemoWithLaunch(t)
	if len(s.files) == 0 {
		t.Fatal("no data files read")
	}
	for name, content := range s.files {
		for what, v := range s.tokens {
			for _, enc := range encodings(v) {
				if bytes.Contains(content, enc) {
					t.Errorf("%s holds the %s in plaintext", name, what)
				}
			}
		}
		for _, d := range s.keyD {
			if bytes.Contains(content, []byte(d)) {
				t.Errorf("%s holds a private signing key's d parameter in plaintext", name)
			}
		}
		if strings.HasPrefix(name, secrets.DefaultKEKFile+" ") {
			continue
		}
		for _, k := range s.kek {
			for _, enc := range encodings(k) {
				if bytes.Contains(content, enc) {
					t.Errorf("%s holds the KEK", name)
				}
			}
		}
	}
	t.Logf("checked %d files for %d tokens, %d KEKs and %d private keys: %v", len(s.files), len(s.tokens), len(s.kek), len(s.keyD), keys(s.files))
}

// TestDemoLogsHoldNoTokenOrSecret captures every log line of a full demo
// run at debug level (the simulated EHR's included) and finds no token,
// authorization code, KEK or private key in it.
func TestDemoLogsHoldNoTokenOrSecret(t *testing.T) {
	s := runDemoWithLaunch(t)
	secretsFound := 0
	check := func(what, v string) {
		for _, enc := range encodings(v) {
			if bytes.Contains([]byte(s.logs), enc) {
				t.Errorf("the logs contain the %s", what)
			}
			secretsFound++
		}
	}
	for what, v := range s.tokens {
		check(what, v)
	}
	for _, k := range s.kek {
		check("KEK", k)
	}
	for _, d := range s.keyD {
		check("private signing key (d)", d)
	}
	// Parts of the id_token (header.payload.signature) must not leak either.
	for what, v := range s.tokens {
		if strings.HasSuffix(what, "id_token") {
			parts := strings.Split(v, ".")
			if len(parts) == 3 {
				check(what+" signature", parts[2])
			}
		}
	}
	t.Logf("looked for %d secret encodings in %d bytes of logs", secretsFound, len(s.logs))
}
