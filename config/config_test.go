package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ehrgate.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadLayers(t *testing.T) {
	p := writeFile(t, `
data: /from/file
http_addr: 127.0.0.1:9000
sync_every: 5m
connections:
  - name: hospital-a
    base_url: https://fhir.example.org/R4
    workers: 4
`)
	cfg, err := Load(p, []string{"EHRGATE_HTTP_ADDR=127.0.0.2:7000", "OTHER=x"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Data != "/from/file" || cfg.HTTPAddr != "127.0.0.2:7000" || time.Duration(cfg.SyncEvery) != 5*time.Minute {
		t.Errorf("Load() = %+v; want data from file, addr from env, sync_every 5m", cfg)
	}
	if c, ok := cfg.Connection("hospital-a"); !ok || c.Workers != 4 {
		t.Errorf("Connection(hospital-a) = %+v, %v", c, ok)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
}

func TestLoadEmptyFileGivesDefaults(t *testing.T) {
	cfg, err := Load(writeFile(t, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != DefaultHTTPAddr || cfg.Data != DefaultDataDir {
		t.Errorf("Load(empty) = %+v, want defaults", cfg)
	}
}

func TestLoadRejectsUnknownKeys(t *testing.T) {
	_, err := Load(writeFile(t, "datadir: /x\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "datadir") {
		t.Errorf("Load with an unknown key = %v, want an error naming it", err)
	}
}

func TestValidateReportsEverything(t *testing.T) {
	cfg := Default()
	cfg.HTTPAddr = "nope"
	cfg.LogLevel = "loud"
	cfg.Connections = []Connection{
		{Name: "A B", BaseURL: "ftp://x"},
		{Name: "ok", BaseURL: "https://x/fhir", Workers: 1000},
		{Name: "ok", BaseURL: "https://y/fhir"},
		{Name: "a_b", BaseURL: "https://y/fhir"},
		{Name: "a-b", BaseURL: "https://y/fhir"},
	}
	cfg.API = API{BaseURL: "ehrgate/fhir", External: &ExternalAuth{Issuer: "https://idp", JWKSURL: "nope"}}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	for _, want := range []string{"http_addr", "log_level", "connections[0].name", "connections[0].base_url",
		"connections[1].workers", "connections[2].name", "connections[4].name", "api.base_url", "api.external.jwks_url"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() error lacks %q:\n%v", want, err)
		}
	}
}

func TestBadEnvDurationIsReported(t *testing.T) {
	cfg, err := Load("", []string{"EHRGATE_SYNC_EVERY=soon"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "sync_every") {
		t.Errorf("Validate() = %v, want a sync_every error", err)
	}
}

func TestValidateAuth(t *testing.T) {
	base := func(a *Auth) Config {
		cfg := Default()
		cfg.Connections = []Connection{{Name: "c", BaseURL: "https://x/fhir", Auth: a}}
		return cfg
	}
	tests := []struct {
		auth *Auth
		want string // "" = valid
	}{
		{nil, ""},
		{&Auth{Type: "none"}, ""},
		{&Auth{Type: AuthBackendServices, ClientID: "id"}, ""},
		{&Auth{Type: AuthBackendServices}, "client_id"},
		{&Auth{Type: AuthBackendServices, ClientID: "id", Method: "none"}, "confidential"},
		{&Auth{Type: AuthBackendServices, ClientID: "id", Method: "client_secret_basic"}, "client_secret_env"},
		{&Auth{Type: AuthBackendServices, ClientID: "id", Method: "magic"}, "method"},
		{&Auth{Type: AuthLaunch, ClientID: "id", RedirectURL: "https://gw/smart/callback"}, ""},
		{&Auth{Type: AuthLaunch, ClientID: "id"}, "redirect_url"},
		{&Auth{Type: AuthLaunch, ClientID: "id", RedirectURL: "https://gw/cb", Context: "system"}, "context"},
		{&Auth{Type: "password"}, "type"},
	}
	for _, tc := range tests {
		err := base(tc.auth).Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Validate(%+v) = %v, want nil", tc.auth, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Validate(%+v) = %v, want an error mentioning %q", tc.auth, err, tc.want)
		}
	}
}

func TestDashboardStaysOnLoopbackByDefault(t *testing.T) {
	for addr, ok := range map[string]bool{"127.0.0.1:8080": true, "localhost:8080": true, "[::1]:8080": true,
		"0.0.0.0:8080": false, ":8080": false, "10.1.2.3:8080": false} {
		cfg := Default()
		cfg.HTTPAddr = addr
		err := cfg.Validate()
		if ok != (err == nil) {
			t.Errorf("Validate(http_addr %s) = %v, want ok=%v", addr, err, ok)
		}
		if !ok {
			cfg.Login.Mode = LoginLocal
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "http_hosts") {
				t.Errorf("Validate(http_addr %s, login local, no http_hosts) = %v, want an error naming http_hosts", addr, err)
			}
			cfg.HTTPHosts = []string{"ehrgate.example.org"}
			if err := cfg.Validate(); err != nil {
				t.Errorf("Validate(http_addr %s, login local, http_hosts) = %v, want nil", addr, err)
			}
		}
	}
}

func TestAllowRemoteDashboardIsGone(t *testing.T) {
	cfg, err := Parse([]byte("allow_remote_dashboard: true\nhttp_hosts: [ehrgate.example.org]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "login.mode") {
		t.Errorf("Validate(allow_remote_dashboard) = %v, want an error pointing at login.mode", err)
	}
}

func TestLoginValidate(t *testing.T) {
	const good = `
http_addr: 0.0.0.0:8443
http_hosts: [ehrgate.example.org]
login:
  mode: oidc
  session_idle: 20m
  session_max: 8h
  secure_cookies: true
  oidc:
    issuer: https://idp.example.org/realms/h
    client_id: ehrgate
    client_secret_env: EHRGATE_OIDC_SECRET
    redirect_url: https://ehrgate.example.org/login/callback
    role_claim: realm_access.roles
    role_map: {ehrgate-admins: admin, doctors: clinician, privacy-office: auditor}
`
	cfg, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate(good login) = %v, want nil", err)
	}
	if !cfg.Login.On() || cfg.Login.OIDC.RoleMap["doctors"] != "clinician" || time.Duration(cfg.Login.SessionIdle) != 20*time.Minute {
		t.Errorf("Parse(good login) = %+v", cfg.Login)
	}
	bad := cfg
	bad.Login = Login{Mode: "saml", SessionIdle: Duration(time.Hour), SessionMax: Duration(time.Minute)}
	err = bad.Validate()
	for _, want := range []string{"login.mode", "session_idle", "http_addr"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(bad login) = %v, want it to mention %q", err, want)
		}
	}
	bad = cfg
	bad.Login.OIDC = LoginOIDC{Issuer: "http://idp.example.org", RedirectURL: "https://ehrgate.example.org/smart/callback",
		RoleMap: map[string]string{"x": "superuser"}}
	err = bad.Validate()
	for _, want := range []string{"login.oidc.issuer", "login.oidc.client_id", "login.oidc.redirect_url", "login.oidc.role_map"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(bad oidc) = %v, want it to mention %q", err, want)
		}
	}
}

func TestBulkMaxReexports(t *testing.T) {
	tests := []struct {
		yaml string
		want int // -1: unset
		ok   bool
	}{
		{"", -1, true},
		{"bulk:\n  max_reexports: 0\n", 0, true},
		{"bulk:\n  max_reexports: 3\n", 3, true},
		{"bulk:\n  max_reexports: 11\n", 11, false},
		{"bulk:\n  max_reexports: -1\n", -1, false},
	}
	for _, tc := range tests {
		cfg, err := Load(writeFile(t, tc.yaml), nil)
		if err != nil {
			t.Fatal(err)
		}
		got := -1
		if cfg.Bulk.MaxReexports != nil {
			got = *cfg.Bulk.MaxReexports
		}
		err = cfg.Validate()
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("Load(%q) = max_reexports %d, Validate %v; want %d, ok %v", tc.yaml, got, err, tc.want, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "bulk.max_reexports") {
			t.Errorf("Validate error %q does not name bulk.max_reexports", err)
		}
	}
}

func TestHTTPHosts(t *testing.T) {
	cfg, err := Load("", []string{EnvHTTPHosts + "=ehrgate.example.org, dash.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.HTTPHosts) != 2 || cfg.HTTPHosts[1] != "dash.example.org" {
		t.Errorf("HTTPHosts from %s = %q", EnvHTTPHosts, cfg.HTTPHosts)
	}
	for _, bad := range []string{"https://ehrgate.example.org", "ehrgate.example.org:8443", "a/b", ""} {
		cfg := Default()
		cfg.HTTPHosts = []string{bad}
		if err := cfg.Validate(); err == nil {
			t.Errorf("Validate(http_hosts %q) = nil, want an error", bad)
		}
	}
}

func TestSMARTLaunchSettings(t *testing.T) {
	cfg, err := Parse([]byte("smart:\n  launch_ttl: 5m\n  max_pending_per_address: 5\n  trusted_proxies: [10.0.0.0/8, 192.0.2.7, '2001:db8::/32']\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := cfg.SMART.TrustedProxyPrefixes()
	if err != nil || len(p) != 3 || p[1].String() != "192.0.2.7/32" || time.Duration(cfg.SMART.LaunchTTL) != 5*time.Minute {
		t.Errorf("SMART settings = %+v, %v, %v", cfg.SMART, p, err)
	}
	cfg.SMART.TrustedProxies = []string{"proxy.example.org"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "trusted_proxies") {
		t.Errorf("Validate(trusted_proxies: a host name) = %v, want an error", err)
	}
}

// TestValidateVendorNames: a connection's vendor may be any accepted name
// (Oracle Health is the former Cerner); anything else is reported with the
// accepted names.
func TestValidateVendorNames(t *testing.T) {
	for _, tc := range []struct {
		vendor string
		wantOK bool
	}{
		{"", true}, {"oracle", true}, {"cerner", true}, {"Cerner", true}, {"epic", true}, {"generic", true},
		{"millennium", false}, {"epic-hyperspace", false},
	} {
		t.Run(tc.vendor, func(t *testing.T) {
			cfg := Default()
			cfg.Connections = []Connection{{Name: "a", BaseURL: "https://x/fhir", Vendor: tc.vendor}}
			err := cfg.Validate()
			if (err == nil) != tc.wantOK {
				t.Fatalf("Validate(vendor %q) = %v, want ok %v", tc.vendor, err, tc.wantOK)
			}
			if err != nil && (!strings.Contains(err.Error(), "connections[0].vendor") || !strings.Contains(err.Error(), "oracle (cerner)")) {
				t.Errorf("Validate(vendor %q) = %v, want connections[0].vendor and the accepted names", tc.vendor, err)
			}
		})
	}
}

func TestPipelineSection(t *testing.T) {
	tests := []struct {
		yaml  string
		every time.Duration
		group string
		ok    bool
	}{
		{"", 0, "", true},
		{"pipeline:\n  every: 24h\n  group: all\n", 24 * time.Hour, "all", true},
		{"pipeline:\n  every: -1h\n", -time.Hour, "", false},
	}
	for _, tc := range tests {
		cfg, err := Load(writeFile(t, tc.yaml), nil)
		if err != nil {
			t.Fatal(err)
		}
		err = cfg.Validate()
		if (err == nil) != tc.ok || time.Duration(cfg.Pipeline.Every) != tc.every || cfg.Pipeline.Group != tc.group {
			t.Errorf("Load(%q) = %+v, Validate %v; want every %v group %q ok %v", tc.yaml, cfg.Pipeline, err, tc.every, tc.group, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "pipeline.every") {
			t.Errorf("Validate error %q does not name pipeline.every", err)
		}
	}
}

func TestHL7Alerts(t *testing.T) {
	tests := []struct {
		yaml string
		ok   bool
	}{
		{"", true},
		{"hl7:\n  alerts:\n    silent_after: 5m\n    busy_per_hour: 2\n    reject_ratio: 0.2\n    min_rejects: 1\n", true},
		{"hl7:\n  alerts:\n    reject_ratio: 1.5\n", false},
		{"hl7:\n  alerts:\n    min_rejects: -1\n", false},
		{"hl7:\n  alerts:\n    silent_after: -5m\n", false},
	}
	for _, tc := range tests {
		cfg, err := Load(writeFile(t, tc.yaml), nil)
		if err != nil {
			t.Fatalf("Load(%q): %v", tc.yaml, err)
		}
		err = cfg.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("Load(%q): Validate = %v, want ok %v", tc.yaml, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "hl7.alerts") {
			t.Errorf("Validate error %q does not name hl7.alerts", err)
		}
	}
	cfg, _ := Load(writeFile(t, tests[1].yaml), nil)
	if a := cfg.HL7.Alerts; time.Duration(a.SilentAfter) != 5*time.Minute || a.BusyPerHour != 2 || a.RejectRatio != 0.2 || a.MinRejects != 1 {
		t.Errorf("hl7.alerts = %+v", a)
	}
}
