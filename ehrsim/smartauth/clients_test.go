package smartauth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadClients(t *testing.T) {
	keys(t)
	jwks := string(jwksOf(t, rsaKey, "k1", "RS384"))
	tests := []struct {
		name, file, content string
		wantIDs             []string
		wantErr             []string // substrings of the error
	}{
		{"json list", "c.json", `[{"client_id":"a","public":true,"redirect_uris":["https://app/cb"],"launch_url":"https://app/launch","scopes":["launch","patient/*.rs"]},
			{"client_id":"b","jwks":` + jwks + `}]`, []string{"a", "b"}, nil},
		{"json wrapper", "c.json", `{"clients":[{"client_id":"a","client_secret":"x"}]}`, []string{"a"}, nil},
		{"yaml", "c.yaml", "clients:\n  - client_id: a\n    token_endpoint_auth_method: client_secret_post\n    client_secret: x\n    redirect_uris: [\"https://app/cb\"]\n  - client_id: b\n    jwks_uri: https://app/jwks\n  - client_id: c\n    jwks: '" + jwks + "'\n",
			[]string{"a", "b", "c"}, nil},
		{"yaml jwks mapping", "c.yml", "- client_id: k\n  jwks:\n    keys:\n      - kty: EC\n        crv: P-384\n        x: " + ecX(t) + "\n        y: " + ecY(t) + "\n", []string{"k"}, nil},
		{"unknown key", "c.json", `[{"client_id":"a","public":true,"colour":"red"}]`, nil, []string{"colour"}},
		{"every problem", "c.json", `[{"client_id":"a"},{"client_id":"b","token_endpoint_auth_method":"private_key_jwt"},{"client_id":"c","public":true,"scopes":["nonsense"]},{"client_id":"d","public":true,"redirect_uris":["/relative"]},{"client_id":"d","public":true}]`,
			nil, []string{"client_secret is required", "jwks or jwks_uri", "nonsense", "/relative", "duplicate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tt.file)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := LoadClients(path)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("LoadClients = %v, want an error", got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("LoadClients error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadClients: %v", err)
			}
			var ids []string
			for _, c := range got {
				ids = append(ids, c.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tt.wantIDs, ",") {
				t.Errorf("LoadClients ids = %v, want %v", ids, tt.wantIDs)
			}
			if _, err := New(Options{Issuer: "http://127.0.0.1:1/fhir", Clients: got, SigningKey: serverKey}); err != nil {
				t.Errorf("New with the loaded clients: %v", err)
			}
		})
	}
	if _, err := LoadClients(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("LoadClients(missing) = nil error")
	}
}

func ecX(t *testing.T) string { return ecCoord(t, "x") }
func ecY(t *testing.T) string { return ecCoord(t, "y") }

func ecCoord(t *testing.T, k string) string {
	var m map[string][]map[string]any
	if err := jsonUnmarshal(jwksOf(t, ecKey, "e", "ES384"), &m); err != nil {
		t.Fatal(err)
	}
	return m["keys"][0][k].(string)
}

func TestNewValidates(t *testing.T) {
	keys(t)
	tests := []struct {
		name string
		opts Options
	}{
		{"no issuer", Options{}},
		{"relative issuer", Options{Issuer: "/fhir"}},
		{"auth base without path", Options{Issuer: "http://h/fhir", AuthBase: "http://h"}},
		{"bad client", Options{Issuer: "http://h/fhir", Clients: []Client{{ID: "x", TokenEndpointAuth: "magic"}}}},
		{"public with secret", Options{Issuer: "http://h/fhir", Clients: []Client{{ID: "x", Public: true, TokenEndpointAuth: AuthClientSecretBasic, Secret: "s"}}}},
	}
	for _, tt := range tests {
		tt.opts.SigningKey = serverKey
		if _, err := New(tt.opts); err == nil {
			t.Errorf("New(%s) = nil error", tt.name)
		}
	}
	s, err := New(Options{Issuer: "http://h/fhir", SigningKey: serverKey})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterClient(Client{ID: "x", TokenEndpointAuth: AuthPrivateKeyJWT}); err == nil {
		t.Error("RegisterClient(private_key_jwt without keys) = nil error")
	}
	if err := s.RegisterClient(Client{ID: "late", Secret: "s"}); err != nil {
		t.Fatalf("RegisterClient: %v", err)
	}
	if c := s.client("late"); c == nil || c.TokenEndpointAuth != AuthClientSecretBasic || c.Name != "late" {
		t.Errorf("registered client = %+v", c)
	}
}
