package gateway_test

import (
	"context"
	"testing"

	"ehrgate/config"
	"ehrgate/gateway"
	"ehrgate/secrets"
	"ehrgate/store"
)

// newClinicGateway returns a gateway on a fresh embedded store with one
// connection, "clinic", to the simulated EHR at ehrURL; both are closed
// when t ends.
func newClinicGateway(t *testing.T, ctx context.Context, ehrURL string) (*gateway.Gateway, store.Backend, config.Connection) {
	t.Helper()
	st, err := store.Open(ctx, "sqlite:"+t.TempDir(), store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kek, err := secrets.GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}
	conn := config.Connection{Name: "clinic", BaseURL: ehrURL + "/fhir", Vendor: "generic"}
	g, err := gateway.New(ctx, gateway.Options{Config: config.Config{Connections: []config.Connection{conn}},
		Store: st, Keyring: secrets.NewKeyring(kek)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g, st, conn
}
