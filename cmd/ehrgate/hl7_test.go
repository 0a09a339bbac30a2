package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ehrgate/events"
	"ehrgate/fhir"
	"ehrgate/gateway"
	"ehrgate/store"
	"ehrgate/store/sqlite"
)

func runHL7(t *testing.T, ctx context.Context, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &app{stdout: &out, stderr: &errOut}
	cmd := newHL7Cmd(a)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

func TestHL7SendToStoreBackedListener(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bus := events.NewBus(events.BusOptions{})
	addrCh := make(chan string, 1)
	lctx, stopListener := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- gateway.RunMLLP(lctx, slog.New(slog.DiscardHandler), st, gateway.MLLPOptions{Addr: "127.0.0.1:0", Connection: "hl7"}, bus,
			func(a net.Addr) { addrCh <- a.String() })
	}()
	addr := <-addrCh

	dir := t.TempDir()
	msg := func(id, mrn string) string {
		return "MSH|^~\\&|CLI|TEST|||20260101120000||ADT^A04^ADT_A01|" + id + "|P|2.5.1\rPID|1||" + mrn + "^^^TEST^MR||Doe^Jan||19800101|F\rPV1|1|O\r"
	}
	batch := "FHS|^~\\&|CLI|TEST\rBHS|^~\\&|CLI|TEST\r" + msg("B1", "1") + msg("B2", "2") + "BTS|2\rFTS|1\r"
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "a-batch.hl7"), []byte(batch), 0o600))
	must(os.MkdirAll(filepath.Join(dir, "sub"), 0o700))
	must(os.WriteFile(filepath.Join(dir, "sub", "b.hl7"), []byte(strings.ReplaceAll(msg("S1", "3"), "\r", "\n")), 0o600))
	single := filepath.Join(t.TempDir(), "c.hl7")
	must(os.WriteFile(single, []byte(msg("C1", "4")+msg("C2", "5")), 0o600))

	type summary struct {
		Sent, Accepted, Rejected int
	}
	for round := 0; round < 2; round++ { // the second round is all duplicates: ACKed, not stored
		out, err := runHL7(t, ctx, "send", dir, single, "--to", addr, "--json")
		if err != nil {
			t.Fatalf("hl7 send: %v\n%s", err, out)
		}
		var s summary
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("output: %v\n%s", err, out)
		}
		if s != (summary{5, 5, 0}) {
			t.Errorf("round %d: summary = %+v, want 5 sent and accepted", round, s)
		}
	}
	var c store.HL7Counts
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err = st.HL7Counts(ctx, "hl7"); err != nil {
			t.Fatal(err)
		}
		if c.Processed == 5 {
			break
		}
	}
	if c.Messages != 5 || c.Processed != 5 {
		t.Errorf("HL7Counts = %+v, want 5 stored once and processed", c)
	}
	if got := bus.LastID(); got != 5 {
		t.Errorf("events = %d, want 5 (none for duplicates)", got)
	}
	if _, err := runHL7(t, ctx, "send", filepath.Join(dir, "missing.hl7"), "--to", addr); err == nil {
		t.Error("sending a missing file succeeded")
	}
	stopListener()
	if err := <-done; err != nil {
		t.Errorf("runMLLP: %v", err)
	}
}

func TestHL7SendOverTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	st, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	addrCh := make(chan string, 1)
	lctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- gateway.RunMLLP(lctx, slog.New(slog.DiscardHandler), st,
			gateway.MLLPOptions{Addr: "127.0.0.1:0", Connection: "hl7", TLSCert: certFile, TLSKey: keyFile}, nil,
			func(a net.Addr) { addrCh <- a.String() })
	}()
	addr := <-addrCh
	msgFile := filepath.Join(dir, "m.hl7")
	if err := os.WriteFile(msgFile, []byte("MSH|^~\\&|CLI|TLS|||20260101||ADT^A28^ADT_A05|T1|P|2.5.1\rPID|1||9^^^TLS^MR||Doe^Jo\r"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runHL7(t, ctx, "send", msgFile, "--to", addr, "--tls-ca", certFile, "--tls-server-name", "localhost")
	if err != nil || !strings.Contains(out, "AA T1") {
		t.Fatalf("send over TLS: %v\n%s", err, out)
	}
	if _, err := runHL7(t, ctx, "send", msgFile, "--to", addr, "--max-attempts", "1", "--ack-timeout", "2s"); err == nil {
		t.Error("plain MLLP to a TLS listener succeeded")
	}
	stop()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

// writeSelfSigned writes a self-signed certificate for localhost and its key.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

type fakeSearcher struct {
	query  string
	bundle string
}

func (f *fakeSearcher) SearchAll(ctx context.Context, typ string, q *fhir.Query, fn fhir.PageFunc) error {
	f.query = typ + "?" + q.Encode()
	var b fhir.Bundle
	if err := json.Unmarshal([]byte(f.bundle), &b); err != nil {
		return err
	}
	return fn(ctx, &b, "")
}

func TestRefreshByIdentifier(t *testing.T) {
	src := &fakeSearcher{bundle: `{"resourceType":"Bundle","type":"searchset","entry":[
		{"resource":{"resourceType":"Patient","id":"p7"},"search":{"mode":"match"}},
		{"resource":{"resourceType":"OperationOutcome","id":"x"},"search":{"mode":"outcome"}}]}`}
	var refreshed []string
	err := gateway.RefreshByIdentifier(context.Background(), src, func(ctx context.Context, id string) error {
		refreshed = append(refreshed, id)
		return nil
	}, fhir.Identifier{System: "http://hospital.example.org/mrn", Value: "MRN7"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "Patient?identifier=http%3A%2F%2Fhospital.example.org%2Fmrn%7CMRN7"; src.query != want {
		t.Errorf("query = %s, want %s", src.query, want)
	}
	if len(refreshed) != 1 || refreshed[0] != "p7" {
		t.Errorf("refreshed %v, want [p7]", refreshed)
	}
}

// TestEventsChain: a message through the listener raises an event that
// reaches the refresher (with the patient identifier) and an SSE client.
func TestEventsChain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got := make(chan fhir.Identifier, 4)
	ev := gateway.NewEvents(ctx, slog.New(slog.DiscardHandler), nil, events.RefresherFunc(func(ctx context.Context, conn string, id fhir.Identifier) error {
		if conn == "epic" {
			got <- id
		}
		return nil
	}), []string{"epic"})
	web := httptest.NewServer(ev.Routes()[0].Handler)
	defer web.Close()
	resp, err := http.Get(web.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	addrCh := make(chan string, 1)
	lctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- gateway.RunMLLP(lctx, slog.New(slog.DiscardHandler), st, gateway.MLLPOptions{Addr: "127.0.0.1:0", Connection: "hl7"}, ev.Bus,
			func(a net.Addr) { addrCh <- a.String() })
	}()
	addr := <-addrCh
	f := filepath.Join(t.TempDir(), "a01.hl7")
	msg := "MSH|^~\\&|ADT|NORTH|||20260101||ADT^A01^ADT_A01|E1|P|2.5.1\rPID|1||77^^^NORTH&1.2.3&ISO^MR||Doe^Jo\rPV1|1|I|||||||||||||||||V1^^^NORTH^VN\r"
	if err := os.WriteFile(f, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runHL7(t, ctx, "send", f, "--to", addr); err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
	select {
	case id := <-got:
		if id.System != "urn:oid:1.2.3" || id.Value != "77" {
			t.Errorf("refresher got %+v", id)
		}
	case <-ctx.Done():
		t.Fatal("no refresh")
	}
	line := ""
	buf := make([]byte, 4096)
	for !strings.Contains(line, "event: admitted") {
		n, err := resp.Body.Read(buf)
		if err != nil {
			t.Fatalf("SSE: %v (%q)", err, line)
		}
		line += string(buf[:n])
	}
	if strings.Contains(line, "Doe") {
		t.Errorf("event carries the patient's name: %s", line)
	}
	stop()
	<-done
}
