package hl7feed

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"ehrgate/hl7"
	"ehrgate/hl7/hl7store"
	"ehrgate/hl7/mllp"
	"ehrgate/store"
	"ehrgate/store/sqlite"
	"ehrgate/synth"
)

func TestMessagesDeterministicAndParseable(t *testing.T) {
	g := synth.New(synth.Options{Patients: 5, Seed: 42})
	a, b := Messages(g, 5), Messages(g, 5)
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("Messages: %d then %d", len(a), len(b))
	}
	ha, hb := sha256.New(), sha256.New()
	types := map[string]int{}
	for i := range a {
		ha.Write(a[i].Bytes)
		hb.Write(b[i].Bytes)
		m, err := hl7.Parse(a[i].Bytes, hl7.ParseOptions{Strict: true})
		if err != nil {
			t.Fatalf("message %d (%s) does not parse strictly: %v", i, a[i].Type, err)
		}
		if m.ControlID() != a[i].ControlID {
			t.Errorf("control id %q, want %q", m.ControlID(), a[i].ControlID)
		}
		types[a[i].Type]++
	}
	if fmt.Sprintf("%x", ha.Sum(nil)) != fmt.Sprintf("%x", hb.Sum(nil)) {
		t.Error("Messages is not deterministic")
	}
	for _, typ := range []string{"ADT^A04", "ADT^A08", "ADT^A03", "ORU^R01", "VXU^V04"} {
		if types[typ] == 0 {
			t.Errorf("no %s in the feed (%v)", typ, types)
		}
	}
}

func TestRunWithFaultsIntoStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := hl7store.New(s, hl7store.Options{})
	srv := &mllp.Server{Handler: h, Quarantiner: h}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	st, err := Run(ctx, Options{Addr: ln.Addr().String(), Patients: 6, Seed: 7, Connections: 3,
		DropRate: 0.05, DuplicateRate: 0.1, MalformedRate: 0.05, FaultSeed: 3})
	if err != nil {
		t.Fatalf("Run: %v (stats %+v)", err, st)
	}
	want := len(Messages(synth.New(synth.Options{Patients: 6, Seed: 7}), 6))
	if st.Messages != want || st.NAKs != 0 {
		t.Errorf("stats = %+v, want %d messages, no NAKs", st, want)
	}
	if st.Dropped == 0 || st.Duplicates == 0 || st.Malformed == 0 || st.Rejected != st.Malformed {
		t.Errorf("faults not exercised: %+v", st)
	}
	c, err := s.HL7Counts(ctx, "hl7")
	if err != nil {
		t.Fatal(err)
	}
	if c.Messages != want || c.Processed != want {
		t.Errorf("store holds %+v, want each of %d messages once, processed", c, want)
	}
	stats, _ := s.Stats(ctx)
	if stats.Quarantined != st.Malformed {
		t.Errorf("quarantined = %d, want %d malformed frames", stats.Quarantined, st.Malformed)
	}
	patients := 0
	for _, tc := range stats.Resources {
		if tc.Type == "Patient" {
			patients = tc.Count
		}
	}
	if patients != 6 {
		t.Errorf("patients = %d, want 6", patients)
	}
	// The converted identifier is the simulated EHR's MRN, system included,
	// so an event-driven refresh can find the patient there.
	g := synth.New(synth.Options{Patients: 6, Seed: 7})
	var p struct {
		Identifier []struct{ System, Value string } `json:"identifier"`
	}
	if err := json.Unmarshal(g.Resources(0)[0].JSON, &p); err != nil {
		t.Fatal(err)
	}
	found, err := s.SearchPatients(ctx, store.PatientQuery{Connection: "hl7", Text: p.Identifier[0].Value})
	if err != nil || len(found) != 1 {
		t.Fatalf("SearchPatients(MRN) = %d, %v", len(found), err)
	}
	if !strings.Contains(string(found[0].Raw), `"system":"`+p.Identifier[0].System+`"`) {
		t.Errorf("converted patient lacks the EHR's MRN system %q: %s", p.Identifier[0].System, found[0].Raw)
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
}
