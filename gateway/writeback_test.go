package gateway_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ehrgate/config"
	"ehrgate/ehrsim"
	"ehrgate/fhir"
	"ehrgate/gateway"
	"ehrgate/secrets"
	"ehrgate/smart"
	"ehrgate/store"
	"ehrgate/writeback"
)

func TestWritesOf(t *testing.T) {
	tests := []struct {
		name string
		w    *config.Write
		want map[string]smart.Perm
	}{
		{"no block", nil, nil},
		{"switched off", &config.Write{Types: []string{"Flag"}, Operations: []string{"create"}}, nil},
		{"create and update", &config.Write{Enabled: true, Types: []string{"Flag"}, Operations: []string{"create", "update"}},
			map[string]smart.Perm{"Flag": smart.PermCreate | smart.PermUpdate, "Provenance": smart.PermCreate}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := gateway.WritesOf(config.Connection{Name: "c", Write: tt.w})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("WritesOf() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestGatewayWriter writes a Flag through the gateway's writer: the
// connection's client, its vendor's rules, the gateway's store and audit
// trail.
func TestGatewayWriter(t *testing.T) {
	ctx := context.Background()
	sim := ehrsim.New(ehrsim.Options{})
	if err := sim.Load(json.RawMessage(`{"resourceType":"Patient","id":"p1"}`)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	st, err := store.Open(ctx, "sqlite:"+t.TempDir(), store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kek, err := secrets.GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}
	kr := secrets.NewKeyring(kek)
	conn := config.Connection{Name: "clinic", BaseURL: srv.URL + "/fhir", Vendor: "generic",
		Write: &config.Write{Enabled: true, Types: []string{"Flag"}, Operations: []string{"create"}, Approval: config.ApprovalAuto}}
	g, err := gateway.New(ctx, gateway.Options{Config: config.Config{Connections: []config.Connection{conn}}, Store: st, Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	w, err := g.Writer(ctx, kr, writeback.Options{Sleep: func(context.Context, time.Duration) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := w.Propose(ctx, writeback.Proposal{Connection: "clinic", ResourceType: "Flag", Operation: writeback.OpCreate,
		Resource:   json.RawMessage(`{"resourceType":"Flag","status":"active","code":{"text":"gap"},"subject":{"reference":"Patient/p1"}}`),
		Identifier: fhir.Identifier{System: "urn:test", Value: "p1-gap"}, Patient: "p1", Rule: writeback.Rule{Name: "test", Version: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	rec, err = w.Send(ctx, rec.ID)
	if err != nil || rec.State != writeback.StateConfirmed {
		t.Fatalf("Send = %v, %v; want confirmed", rec.State, err)
	}
	entries, err := st.QueryAudit(ctx, store.AuditQuery{Connection: "clinic", Patient: "p1"})
	if err != nil || len(entries) != 1 || entries[0].Action != "C" || entries[0].Agent != "ehrgate" {
		t.Errorf("audit trail = %+v, %v; want one create by ehrgate", entries, err)
	}
}
