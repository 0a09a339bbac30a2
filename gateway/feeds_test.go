package gateway_test

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"ehrgate/config"
	"ehrgate/gateway"
	"ehrgate/secrets"
	"ehrgate/store"
)

// TestHL7FeedPageAndMetrics: the configured HL7 listener's feed has its
// dashboard page, and /metrics exports its state.
func TestHL7FeedPageAndMetrics(t *testing.T) {
	ctx := context.Background()
	st := storeWithARefusedMessage(t, ctx)
	kek, _ := secrets.GenerateKEK()
	cfg := config.Config{HL7: config.HL7{MLLPAddr: "127.0.0.1:0", Connection: "north"}}
	g, err := gateway.New(ctx, gateway.Options{Config: cfg, Store: st, Keyring: secrets.NewKeyring(kek)})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	h := g.Handler()
	for path, want := range map[string][]string{
		"/feeds/north": {"HL7 feed north", "C1", "Replay"},
		"/":            {`href="/feeds/north"`},
		"/metrics": {`ehrgate_hl7_last_message_timestamp_seconds{connection="north"}`,
			`ehrgate_hl7_recent_rejected_messages{connection="north",reason="101"} 1`,
			`ehrgate_hl7_messages_24h{ack="AE",connection="north"} 1`},
	} {
		rr := httptest.NewRecorder()
		req := httptest.NewRequest("GET", path, nil)
		req.Host = "127.0.0.1:8080" // a loopback name: what the server admits by default
		h.ServeHTTP(rr, req)
		b, _ := io.ReadAll(rr.Body)
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				t.Errorf("GET %s (%d) lacks %q", path, rr.Code, w)
			}
		}
	}
}

// TestHL7FeedAlertThresholdsFromConfig: hl7.alerts tunes the feed's alerts:
// one refused message raises "rejects rising" only when min_rejects allows
// it (the default asks for three).
func TestHL7FeedAlertThresholdsFromConfig(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		alerts config.HL7Alerts
		want   bool
	}{
		{"defaults", config.HL7Alerts{}, false},
		{"min_rejects 1", config.HL7Alerts{MinRejects: 1, RejectRatio: 0.5}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := storeWithARefusedMessage(t, ctx)
			kek, _ := secrets.GenerateKEK()
			cfg := config.Config{HL7: config.HL7{MLLPAddr: "127.0.0.1:0", Connection: "north", Alerts: tc.alerts}}
			g, err := gateway.New(ctx, gateway.Options{Config: cfg, Store: st, Keyring: secrets.NewKeyring(kek)})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			rr := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/feeds/north", nil)
			req.Host = "127.0.0.1:8080"
			g.Handler().ServeHTTP(rr, req)
			if got := strings.Contains(rr.Body.String(), "EhrgateHL7RejectsRising"); got != tc.want {
				t.Errorf("rejects-rising alert shown = %v, want %v (status %d)", got, tc.want, rr.Code)
			}
		})
	}
}

// storeWithARefusedMessage is a store whose HL7 feed "north" refused one
// message (AE, HL7 error 101) a minute ago.
func storeWithARefusedMessage(t *testing.T, ctx context.Context) store.Backend {
	t.Helper()
	st, err := store.Open(ctx, "sqlite:"+t.TempDir(), store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m := store.HL7Message{Connection: "north", SendingApp: "ADT", SendingFacility: "F", ControlID: "C1", MessageType: "ADT^A01",
		Raw: []byte("MSH|^~\\&|ADT|F|||||ADT^A01|C1|P|2.5\r"), ReceivedAt: time.Now().Add(-time.Minute),
		Error: "refused: PID-3 (HL7 101 Required field missing)", Ack: "AE"}
	if _, err := st.PutHL7(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	return st
}
