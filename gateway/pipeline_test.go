package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"ehrgate/config"
	"ehrgate/ehrsim"
	"ehrgate/gateway"
	"ehrgate/internal/pipelinetest"
	"ehrgate/pipeline"
	"ehrgate/secrets"
	"ehrgate/store"
)

type ehr = pipelinetest.EHR

// pipelineGateway is a gateway over a fresh store with the given EHRs.
func pipelineGateway(t *testing.T, ctx context.Context, ehrs ...*ehr) *gateway.Gateway {
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
	var conns []config.Connection
	for _, e := range ehrs {
		conns = append(conns, e.Connection())
	}
	g, err := gateway.New(ctx, gateway.Options{Config: config.Config{Connections: conns}, Store: st, Keyring: secrets.NewKeyring(kek)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func runPipeline(t *testing.T, ctx context.Context, g *gateway.Gateway) pipeline.Summary {
	t.Helper()
	sum, err := g.Pipeline(ctx, gateway.PipelineOptions{Group: "all", AsOf: func() time.Time { return pipelinetest.AsOf },
		BaseDelay: time.Millisecond})
	if err != nil {
		t.Fatalf("Pipeline: %v", err)
	}
	return sum
}

// changeCharts changes three charts: on a, warfarin started for one AF
// patient with a gap and an HbA1c recorded for one diabetic with a gap
// (two withdrawals); on b, a stroke recorded for one AF patient with a gap
// (the score rises by 2: an update). It returns the withdrawn keys of a
// and the updated key of b.
func changeCharts(t *testing.T, a, b *ehr, wantA, wantB map[string]pipelinetest.Expected) (withdrawn map[string]string, updated string) {
	t.Helper()
	var afA, dmA, afB string
	for _, k := range pipelinetest.Keys(wantA) {
		if rule, p, _ := strings.Cut(k, "/"); rule == "af-anticoagulation" && afA == "" {
			afA = p
		} else if rule == "diabetes-hba1c" && dmA == "" {
			dmA = p
		}
	}
	for _, k := range pipelinetest.Keys(wantB) {
		if rule, p, _ := strings.Cut(k, "/"); rule == "af-anticoagulation" && afB == "" {
			afB = p
		}
	}
	if afA == "" || dmA == "" || afB == "" {
		t.Fatalf("no patients to change: %q %q %q", afA, dmA, afB)
	}
	load := func(e *ehr, raw string) {
		t.Helper()
		if err := e.Sim.Load(json.RawMessage(raw)); err != nil {
			t.Fatal(err)
		}
	}
	load(a, `{"resourceType":"MedicationRequest","id":"`+afA+`-warfarin","status":"active","intent":"order",
		"medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"855332","display":"warfarin sodium 5 MG Oral Tablet"}]},
		"subject":{"reference":"Patient/`+afA+`"},"authoredOn":"2026-06-20"}`)
	load(a, `{"resourceType":"Observation","id":"`+dmA+`-a1c-new","status":"final",
		"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],
		"code":{"coding":[{"system":"http://loinc.org","code":"4548-4","display":"Hemoglobin A1c/Hemoglobin.total in Blood"}]},
		"subject":{"reference":"Patient/`+dmA+`"},"effectiveDateTime":"2026-06-15T09:00:00Z",
		"valueQuantity":{"value":7.2,"unit":"%","system":"http://unitsofmeasure.org","code":"%"}}`)
	load(b, `{"resourceType":"Condition","id":"`+afB+`-stroke","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},
		"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-ver-status","code":"confirmed"}]},
		"code":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"I63.9","display":"Cerebral infarction, unspecified"}]},
		"subject":{"reference":"Patient/`+afB+`"},"onsetDateTime":"2026-05-01"}`)
	// The test's own computation agrees with the intent of the change.
	newA, newB := pipelinetest.ExpectFlags(t, a, pipelinetest.AsOf), pipelinetest.ExpectFlags(t, b, pipelinetest.AsOf)
	if _, ok := newA["af-anticoagulation/"+afA]; ok {
		t.Fatalf("warfarin did not close %s's gap in the test's own computation", afA)
	}
	if _, ok := newA["diabetes-hba1c/"+dmA]; ok {
		t.Fatalf("the HbA1c did not close %s's gap in the test's own computation", dmA)
	}
	if newB["af-anticoagulation/"+afB].Score != wantB["af-anticoagulation/"+afB].Score+2 {
		t.Fatalf("the stroke did not raise %s's score by 2 in the test's own computation", afB)
	}
	return map[string]string{"af-anticoagulation/" + afA: "inactive", "diabetes-hba1c/" + dmA: "inactive"}, "af-anticoagulation/" + afB
}

// TestPipelineEndToEnd runs the pipeline against two simulated vendors
// (Epic and Oracle Health personalities): the first run writes exactly the
// Flags computed by the test kit from the simulators' data; a second run
// writes nothing; changed charts (an anticoagulant started, an HbA1c done,
// a stroke recorded) withdraw or update exactly the affected Flags.
func TestPipelineEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end over two simulated EHRs")
	}
	ctx := context.Background()
	epic := pipelinetest.NewEHR(t, "epic-east", "epic", pipelinetest.Patients(120), 7)
	oracle := pipelinetest.NewEHR(t, "oracle-west", "oracle", pipelinetest.Patients(120), 12)
	g := pipelineGateway(t, ctx, epic, oracle)

	want := map[*ehr]map[string]pipelinetest.Expected{
		epic: pipelinetest.ExpectFlags(t, epic, pipelinetest.AsOf), oracle: pipelinetest.ExpectFlags(t, oracle, pipelinetest.AsOf)}
	// Every Flag, and a score Observation per AF patient with a computable
	// score.
	total := len(want[epic]) + len(want[oracle]) + scores(t, epic, oracle)
	if len(want[epic]) < 3 || len(want[oracle]) < 3 {
		t.Fatalf("the synthetic populations give too few gaps to test (%d, %d)", len(want[epic]), len(want[oracle]))
	}
	sum := runPipeline(t, ctx, g)
	t.Logf("first run: cohort %d, writes %+v", sum.Cohort, sum.Writes)
	if sum.Writes != (pipeline.Writes{Created: total}) {
		t.Errorf("first run writes = %+v, want %d created and nothing else", sum.Writes, total)
	}
	for _, e := range []*ehr{epic, oracle} {
		pipelinetest.Check(t, e, want[e], nil)
		pipelinetest.CheckScores(t, e, pipelinetest.AsOf)
	}

	// Second run, nothing changed: no write request at all.
	before := map[*ehr]int{epic: len(epic.Sim.Writes()), oracle: len(oracle.Sim.Writes())}
	sum = runPipeline(t, ctx, g)
	if sum.Writes != (pipeline.Writes{Unchanged: total}) {
		t.Errorf("second run writes = %+v, want %d unchanged and nothing else", sum.Writes, total)
	}
	for e, n := range before {
		if got := len(e.Sim.Writes()); got != n {
			t.Errorf("%s: the second run sent %d write requests, want 0", e.Name, got-n)
		}
	}

	withdrawn, updated := changeCharts(t, epic, oracle, want[epic], want[oracle])
	before = map[*ehr]int{epic: len(epic.Sim.Writes()), oracle: len(oracle.Sim.Writes())}
	sum = runPipeline(t, ctx, g)
	t.Logf("after the changes: %+v", sum.Writes)
	// Withdrawn: two epic Flags; updated: the oracle Flag and its score.
	if sum.Writes != (pipeline.Writes{Withdrawn: 2, Updated: 2, Unchanged: total - 4}) {
		t.Errorf("run after the changes = %+v, want 2 withdrawn, 2 updated, %d unchanged", sum.Writes, total-4)
	}
	if n := pipelinetest.WritesSince(oracle, http.MethodPut, "Observation", before[oracle]); n != 1 {
		t.Errorf("oracle: %d score updates sent, want 1", n)
	}
	if n := pipelinetest.WritesSince(epic, http.MethodPut, "Flag", before[epic]); n != 2 {
		t.Errorf("epic: %d Flag updates sent, want 2", n)
	}
	if n := pipelinetest.WritesSince(oracle, http.MethodPut, "Flag", before[oracle]); n != 1 {
		t.Errorf("oracle: %d Flag updates sent, want 1", n)
	}
	for _, e := range []*ehr{epic, oracle} {
		if n := pipelinetest.WritesSince(e, http.MethodPost, "Flag", before[e]); n != 0 {
			t.Errorf("%s: %d Flag creates sent after the changes, want 0", e.Name, n)
		}
	}
	pipelinetest.Check(t, epic, pipelinetest.ExpectFlags(t, epic, pipelinetest.AsOf), withdrawn)
	newOracle := pipelinetest.ExpectFlags(t, oracle, pipelinetest.AsOf)
	pipelinetest.Check(t, oracle, newOracle, nil)
	pipelinetest.CheckScores(t, epic, pipelinetest.AsOf)
	pipelinetest.CheckScores(t, oracle, pipelinetest.AsOf)
	if f := pipelinetest.FlagsIn(t, oracle)[updated]; f == nil || f.Version != "2" {
		t.Errorf("oracle: updated Flag %s = %+v, want version 2", updated, f)
	}
}

// untilDone runs the pipeline until a run has no failed write (at most
// runs times) and returns the summaries.
func untilDone(t *testing.T, ctx context.Context, g *gateway.Gateway, runs int) []pipeline.Summary {
	t.Helper()
	var out []pipeline.Summary
	for range runs {
		sum := runPipeline(t, ctx, g)
		out = append(out, sum)
		if sum.Writes.Failed == 0 {
			return out
		}
	}
	t.Fatalf("writes still failing after %d runs: %v", runs, writesOf(out))
	return nil
}

// TestPipelineUnderFaults runs the pipeline while the EHRs fail writes:
// 500s, 429s and answers lost after the write was committed on both, and
// then a 412 storm (a simulated clinician editing each Flag just before
// ehrgate's update). Runs repeat until nothing failed (each resumes what
// the last left); every EHR ends with exactly one Flag per patient and gap,
// only writes the policy allows were sent, and every Flag version has its
// Provenance.
func TestPipelineUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end over two simulated EHRs")
	}
	ctx := context.Background()
	epic := pipelinetest.NewEHR(t, "epic-east", "epic", pipelinetest.Patients(120), 7)
	oracle := pipelinetest.NewEHR(t, "oracle-west", "oracle", pipelinetest.Patients(120), 12)
	g := pipelineGateway(t, ctx, epic, oracle)
	want := map[*ehr]map[string]pipelinetest.Expected{
		epic: pipelinetest.ExpectFlags(t, epic, pipelinetest.AsOf), oracle: pipelinetest.ExpectFlags(t, oracle, pipelinetest.AsOf)}
	total := len(want[epic]) + len(want[oracle]) + scores(t, epic, oracle)

	// Faults fire in the order armed, on the next writes (Flags and
	// Provenances alike). Eight 500s in a row outlast the writer's five
	// attempts, so some write is left for the next run.
	epic.Sim.InjectWriteFault(ehrsim.WriteFaultLostAnswer, 3)
	epic.Sim.InjectWriteFault(ehrsim.WriteFault500, 8)
	epic.Sim.InjectWriteFault(ehrsim.WriteFaultLostAnswer, 2)
	oracle.Sim.InjectWriteFault(ehrsim.WriteFault429, 2)
	oracle.Sim.InjectWriteFault(ehrsim.WriteFaultLostAnswer, 4)
	oracle.Sim.InjectWriteFault(ehrsim.WriteFault500, 3)
	runs := untilDone(t, ctx, g, 4)
	created := 0
	for _, s := range runs {
		created += s.Writes.Created
	}
	t.Logf("creates under faults: %d runs, %d created of %d", len(runs), created, total)
	if created != total || len(runs) < 2 {
		t.Errorf("created %d in %d runs, want %d in at least 2 (the 500s outlast one send)", created, len(runs), total)
	}
	for _, e := range []*ehr{epic, oracle} {
		if n := faultsFired(e); n == 0 {
			t.Errorf("%s: no fault fired", e.Name)
		}
		pipelinetest.Check(t, e, want[e], nil)
		pipelinetest.CheckScores(t, e, pipelinetest.AsOf)
	}

	// A 412 storm on the updates: each update meets a concurrent edit,
	// some twice in a row, plus a lost answer on an update.
	withdrawn, _ := changeCharts(t, epic, oracle, want[epic], want[oracle])
	epic.Sim.InjectWriteFault(ehrsim.WriteFaultConcurrentEdit, 5)
	oracle.Sim.InjectWriteFault(ehrsim.WriteFaultConcurrentEdit, 2)
	oracle.Sim.InjectWriteFault(ehrsim.WriteFaultLostAnswer, 1)
	runs = untilDone(t, ctx, g, 4)
	var w pipeline.Writes
	for _, s := range runs {
		w.Updated += s.Writes.Updated
		w.Withdrawn += s.Writes.Withdrawn
		w.Created += s.Writes.Created
	}
	t.Logf("updates under a 412 storm: %d runs, %+v", len(runs), w)
	if w.Updated != 2 || w.Withdrawn != 2 || w.Created != 0 {
		t.Errorf("after the changes: %+v, want 2 updated (a Flag and its score) and 2 withdrawn over the runs", w)
	}
	edits := 0
	for _, e := range []*ehr{epic, oracle} {
		for _, wr := range e.Sim.Writes() {
			if wr.Fault == ehrsim.WriteFaultConcurrentEdit {
				edits++
			}
		}
	}
	if edits < 3 {
		t.Errorf("%d concurrent edits met, want at least 3", edits)
	}
	pipelinetest.Check(t, epic, pipelinetest.ExpectFlags(t, epic, pipelinetest.AsOf), withdrawn)
	pipelinetest.Check(t, oracle, pipelinetest.ExpectFlags(t, oracle, pipelinetest.AsOf), nil)
	pipelinetest.CheckScores(t, epic, pipelinetest.AsOf)
	pipelinetest.CheckScores(t, oracle, pipelinetest.AsOf)

	// And then nothing is left to write: the active Flags are unchanged,
	// the two withdrawn ones are no longer considered.
	before := len(epic.Sim.Writes()) + len(oracle.Sim.Writes())
	if sum := runPipeline(t, ctx, g); sum.Writes != (pipeline.Writes{Unchanged: total - 2}) {
		t.Errorf("final run = %+v, want %d unchanged", sum.Writes, total-2)
	}
	if n := len(epic.Sim.Writes()) + len(oracle.Sim.Writes()) - before; n != 0 {
		t.Errorf("the final run sent %d writes, want 0", n)
	}
}

func faultsFired(e *ehr) int {
	n := 0
	for _, w := range e.Sim.Writes() {
		if w.Fault != "" {
			n++
		}
	}
	return n
}

func writesOf(sums []pipeline.Summary) []pipeline.Writes {
	out := make([]pipeline.Writes, len(sums))
	for i, s := range sums {
		out[i] = s.Writes
	}
	return out
}

// TestPipelineNarrowPolicyRefusesBeforeSending narrows one connection's
// policy to creates: the withdrawals the changed charts call for are
// refused and counted, and no update request ever reaches that EHR.
func TestPipelineNarrowPolicyRefusesBeforeSending(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end over two simulated EHRs")
	}
	ctx := context.Background()
	epic := pipelinetest.NewEHR(t, "epic-east", "epic", pipelinetest.Patients(120), 7)
	oracle := pipelinetest.NewEHR(t, "oracle-west", "oracle", pipelinetest.Patients(120), 12)
	st, err := store.Open(ctx, "sqlite:"+t.TempDir(), store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kek, err := secrets.GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}
	narrow := epic.Connection()
	narrow.Write.Operations = []string{"create"}
	g, err := gateway.New(ctx, gateway.Options{Config: config.Config{Connections: []config.Connection{narrow, oracle.Connection()}},
		Store: st, Keyring: secrets.NewKeyring(kek)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	want := map[*ehr]map[string]pipelinetest.Expected{
		epic: pipelinetest.ExpectFlags(t, epic, pipelinetest.AsOf), oracle: pipelinetest.ExpectFlags(t, oracle, pipelinetest.AsOf)}
	if sum := runPipeline(t, ctx, g); sum.Writes.Created != len(want[epic])+len(want[oracle])+scores(t, epic, oracle) {
		t.Fatalf("first run = %+v", sum.Writes)
	}
	changeCharts(t, epic, oracle, want[epic], want[oracle])
	sum := runPipeline(t, ctx, g)
	if sum.Writes.Refused != 2 || sum.Writes.Updated != 2 || sum.Writes.Withdrawn != 0 {
		t.Errorf("after the changes = %+v, want the 2 epic withdrawals refused and the oracle updates made", sum.Writes)
	}
	if n := pipelinetest.WritesSince(epic, http.MethodPut, "Flag", 0) + pipelinetest.WritesSince(epic, http.MethodPut, "Observation", 0); n != 0 {
		t.Errorf("%d updates reached %s, whose policy allows none", n, epic.Name)
	}
	pipelinetest.CheckPolicyAndProvenance(t, epic)
	// Refused stays refused: a further run sends nothing either.
	before := len(epic.Sim.Writes())
	if sum := runPipeline(t, ctx, g); sum.Writes.Refused != 2 {
		t.Errorf("next run = %+v, want the 2 refusals again", sum.Writes)
	}
	if n := len(epic.Sim.Writes()) - before; n != 0 {
		t.Errorf("%d writes sent to %s by the next run, want 0", n, epic.Name)
	}
}

// TestPipelineScheduledOnTheQueue runs `serve` (Gateway.Run) with
// pipeline.every set: the pipeline job runs on the queue and the EHR ends
// with the expected Flags.
func TestPipelineScheduledOnTheQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end over a simulated EHR")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	e := pipelinetest.NewEHR(t, "epic-east", "epic", pipelinetest.Patients(80), 7)
	st, err := store.Open(ctx, "sqlite:"+t.TempDir(), store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kek, err := secrets.GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{Connections: []config.Connection{e.Connection()},
		Pipeline: config.Pipeline{Every: config.Duration(time.Hour), Group: "all"}}
	g, err := gateway.New(ctx, gateway.Options{Config: cfg, Store: st, Keyring: secrets.NewKeyring(kek)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	want := pipelinetest.ExpectFlags(t, e, time.Now().UTC())
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- g.Run(runCtx, gateway.RunOptions{HTTPAddr: "127.0.0.1:0"}) }()
	for {
		if run, err := g.PipelineRun(ctx); err != nil {
			t.Fatal(err)
		} else if run != nil {
			break // the run ended and was kept
		}
		select {
		case err := <-done:
			t.Fatalf("Run ended: %v", err)
		case <-ctx.Done():
			t.Fatalf("the scheduled pipeline wrote %d of %d Flags", len(pipelinetest.FlagsIn(t, e)), len(want))
		case <-time.After(200 * time.Millisecond):
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	pipelinetest.Check(t, e, want, nil)
	pipelinetest.CheckScores(t, e, time.Now().UTC())

	// The dashboard's cohort page shows the run: each open gap with its
	// inputs, and its Flag's write confirmed.
	searches := func() int {
		entries, err := st.QueryAudit(ctx, store.AuditQuery{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, en := range entries {
			if en.Subtype == "search-type" {
				n++
			}
		}
		return n
	}
	before := searches()
	req := httptest.NewRequest(http.MethodGet, "/pipeline", nil)
	req.Host = "127.0.0.1"
	rec := httptest.NewRecorder()
	g.Handler().ServeHTTP(rec, req)
	page := rec.Body.String()
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /pipeline = %d:\n%s", rec.Code, page)
	}
	for k := range want {
		_, patient, _ := strings.Cut(k, "/")
		if !strings.Contains(page, ">"+patient+"</a>") {
			t.Errorf("the cohort page does not list %s", patient)
		}
	}
	for _, s := range []string{"gap open", "CHA2DS2-VASc", "create: confirmed", "Lip GYH"} {
		if !strings.Contains(page, s) {
			t.Errorf("the cohort page lacks %q", s)
		}
	}
	if n := searches() - before; n != 1 {
		t.Errorf("viewing the cohort page left %d audit events (search), want 1", n)
	}
}

// scores counts the score Observations the EHRs call for.
func scores(t *testing.T, ehrs ...*ehr) int {
	n := 0
	for _, e := range ehrs {
		n += len(pipelinetest.ExpectScores(t, e, pipelinetest.AsOf))
	}
	return n
}
