package gateway_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ehrgate/audit"
	"ehrgate/config"
	"ehrgate/gateway"
	"ehrgate/secrets"
	"ehrgate/store"
)

// TestRunCopiesTheAuditTrailToTheSIEM: with audit.siem.file set, an access
// recorded while serving reaches the file through the job queue.
func TestRunCopiesTheAuditTrailToTheSIEM(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := store.Open(ctx, "sqlite:"+t.TempDir(), store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kek, _ := secrets.GenerateKEK()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	cfg := config.Config{Audit: config.Audit{SIEM: config.SIEM{File: path, Every: config.Duration(200 * time.Millisecond)}}}
	g, err := gateway.New(ctx, gateway.Options{Config: cfg, Store: st, Keyring: secrets.NewKeyring(kek)})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ev := audit.Read(audit.Agent{UserID: "nurse-1"}, audit.PatientRef{Connection: "c", ID: "p1"})
	ev.Outcome = audit.OutcomeSuccess
	if err := g.Audit().Record(ctx, ev); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- g.Run(runCtx, gateway.RunOptions{HTTPAddr: "127.0.0.1:0"}) }()
	defer func() { stop(); <-done }()
	for {
		b, _ := os.ReadFile(path)
		if bytes.Contains(b, []byte("nurse-1")) && bytes.Count(b, []byte("\n")) == 1 {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("the SIEM file holds %q, want the one recorded event", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
