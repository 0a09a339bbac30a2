package smart_test

import (
	"context"
	"log/slog"
	"net/http"
	"os"

	"ehrgate/fhir"
	"ehrgate/secrets"
	"ehrgate/smart"
	"ehrgate/store"
)

// A backend-services connection: signing keys and tokens in the store,
// encrypted under the KEK, and a FHIR client authorized by the token
// source. The JWKS handler is what the EHR was given as the JWKS URL.
func ExampleNewTokenSource() {
	ctx := context.Background()
	var st store.TokenStore // e.g. *sqlite.Store from sqlite.OpenDir(ctx, dataDir)
	src, err := secrets.Load(os.Getenv, "/var/lib/ehrgate")
	if err != nil {
		panic(err)
	}
	keys := smart.NewKeyManager(st, src.Ring, smart.KeyOptions{})
	http.Handle("GET /.well-known/jwks.json", keys.JWKSHandler())

	ts, err := smart.NewTokenSource(smart.TokenSourceOptions{
		Client: smart.ClientConfig{
			Connection:  "hospital-a",
			FHIRBaseURL: "https://fhir.hospital-a.example/api/FHIR/R4",
			ClientID:    "ehrgate-backend",
			AuthMethod:  smart.AuthPrivateKeyJWT,
			Scopes:      smart.ScopeRequest{Context: smart.ContextSystem, Types: []string{"Patient", "Observation"}},
		},
		Grant:      smart.GrantClientCredentials,
		Vault:      smart.NewVault(st, src.Ring, nil),
		Discoverer: smart.NewDiscoverer(nil, nil),
		Keys:       keys,
		Logger:     slog.Default(),
	})
	if err != nil {
		panic(err)
	}
	client, err := fhir.NewClient("https://fhir.hospital-a.example/api/FHIR/R4", fhir.Options{Connection: "hospital-a", Authorizer: ts})
	if err != nil {
		panic(err)
	}
	_, _ = client.Read(ctx, "Patient", "123")
}

// EHR and standalone launches: register the connection, mount the three
// handlers at the URLs given to the EHR.
func ExampleNewLauncher() {
	var st store.TokenStore
	src, _ := secrets.Load(os.Getenv, "/var/lib/ehrgate")
	disc := smart.NewDiscoverer(nil, nil)
	l, err := smart.NewLauncher(smart.LauncherOptions{
		Clients: []smart.ClientConfig{{
			Connection:  "hospital-a",
			FHIRBaseURL: "https://fhir.hospital-a.example/api/FHIR/R4",
			ClientID:    "ehrgate",
			AuthMethod:  smart.AuthNone,
			RedirectURL: "https://ehrgate.example/smart/callback",
			Scopes:      smart.ScopeRequest{Types: []string{"Patient", "Observation"}, Extra: []string{"openid", "fhirUser", "offline_access"}},
		}},
		Vault:      smart.NewVault(st, src.Ring, nil),
		Discoverer: disc,
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /smart/launch", l.LaunchHandler())
	mux.Handle("GET /smart/login", l.StandaloneHandler())
	mux.Handle("GET /smart/callback", l.CallbackHandler())
}
