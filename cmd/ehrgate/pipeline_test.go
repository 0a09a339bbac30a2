package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ehrgate/internal/pipelinetest"
	"ehrgate/pipeline"
)

// TestPipelineDemoJSON runs `pipeline run --demo --json` twice with one
// --data: the first run creates Flags, the second reports 0 created.
func TestPipelineDemoJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two simulated EHRs")
	}
	data := t.TempDir()
	var sums []pipeline.Summary
	for range 2 {
		out, stderr, err := run(t, context.Background(), "pipeline", "run", "--demo", "--json", "--data", data, "--patients", "60", "--log-level", "error")
		if err != nil {
			t.Fatalf("pipeline run --demo: %v\n%s", err, stderr)
		}
		var s pipeline.Summary
		dec := json.NewDecoder(strings.NewReader(out))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil || dec.More() {
			t.Fatalf("output is not one summary JSON object (%v):\n%s", err, out)
		}
		sums = append(sums, s)
	}
	if len(sums[0].Connections) != 2 || sums[0].Cohort == 0 || sums[0].Writes.Created == 0 || sums[0].Writes.Failed != 0 || sums[0].Writes.Refused != 0 {
		t.Errorf("first run = %+v, want two connections, a cohort and Flags created", sums[0])
	}
	if sums[1].Writes.Created != 0 || sums[1].Writes.Unchanged != sums[0].Writes.Created {
		t.Errorf("second run = %+v, want 0 created and %d unchanged", sums[1].Writes, sums[0].Writes.Created)
	}
}

// TestPipelineSurvivesSIGKILL runs `ehrgate pipeline run` as a separate
// process against two simulated EHRs (Epic and Oracle Health
// personalities) whose writes are slowed, kills it with SIGKILL in the
// middle of writing Flags, and runs it again: each EHR ends with exactly
// one Flag per patient and gap the test computes from the simulators' data,
// only writes the policy allows were sent, and every Flag version has its
// Provenance; a further run writes nothing.
func TestPipelineSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ehrgate processes against two simulated EHRs")
	}
	epic := pipelinetest.NewEHR(t, "epic-east", "epic", 80, 7)
	oracle := pipelinetest.NewEHR(t, "oracle-west", "oracle", 80, 8)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ehrgate.yaml")
	if err := os.WriteFile(cfg, []byte(pipelinetest.ConfigYAML(epic, oracle)), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	args := []string{"pipeline", "run", "--config", cfg, "--data", data, "--group", "all", "--json", "--log-level", "warn"}
	asOf := time.Now().UTC()
	want := map[*pipelinetest.EHR]map[string]pipelinetest.Expected{
		epic: pipelinetest.ExpectFlags(t, epic, asOf), oracle: pipelinetest.ExpectFlags(t, oracle, asOf)}
	if len(want[epic]) < 4 {
		t.Fatalf("too few gaps on %s to kill a run in the middle: %d", epic.Name, len(want[epic]))
	}

	flagCreates := func(e *pipelinetest.EHR) int { return pipelinetest.WritesSince(e, http.MethodPost, "Flag", 0) }
	epic.SetWriteDelay(150 * time.Millisecond)
	r := startReplica(t, nil, args...)
	deadline := time.Now().Add(90 * time.Second)
	for flagCreates(epic) < 3 {
		select {
		case err := <-r.done:
			t.Fatalf("the run ended before it was killed (%v):\n%s", err, r.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Flag writes after 90 s:\n%s", r.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-r.done
	killedAt := flagCreates(epic)
	t.Logf("killed after %d Flag creates on %s (%d expected)", killedAt, epic.Name, len(want[epic]))
	if killedAt >= len(want[epic]) {
		t.Fatalf("the kill came after the last create (%d of %d): nothing to resume", killedAt, len(want[epic]))
	}

	// The restarted run finishes (a run that left failed writes is run
	// again, as an operator or the scheduler would).
	epic.SetWriteDelay(0)
	var sum pipeline.Summary
	for attempt := 1; ; attempt++ {
		r = startReplica(t, nil, args...)
		err := <-r.done
		out := r.out.String()
		if i := strings.Index(out, "{\"connections\""); i >= 0 {
			if jerr := json.Unmarshal([]byte(strings.SplitN(out[i:], "\n", 2)[0]), &sum); jerr != nil {
				t.Fatalf("summary: %v\n%s", jerr, out)
			}
		}
		if err == nil {
			break
		}
		if attempt == 3 {
			t.Fatalf("the restarted run failed 3 times (%v):\n%s", err, out)
		}
	}
	t.Logf("restarted run: %+v", sum.Writes)
	for _, e := range []*pipelinetest.EHR{epic, oracle} {
		pipelinetest.Check(t, e, want[e], nil)
		pipelinetest.CheckScores(t, e, asOf)
	}
	before := len(epic.Sim.Writes()) + len(oracle.Sim.Writes())
	r = startReplica(t, nil, args...)
	if err := <-r.done; err != nil {
		t.Fatalf("final run: %v\n%s", err, r.out.String())
	}
	if n := len(epic.Sim.Writes()) + len(oracle.Sim.Writes()) - before; n != 0 {
		t.Errorf("a run after the recovery sent %d writes, want 0", n)
	}
}
