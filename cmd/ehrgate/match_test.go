package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ehrgate/identity"
)

func TestMatchEvalJSON(t *testing.T) {
	out, stderr, err := run(t, context.Background(), "match", "eval", "--patients", "2000", "--json")
	if err != nil {
		t.Fatalf("match eval: %v\n%s", err, stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"records", "precision", "recall", "f1", "cluster", "seconds", "peak_rss_mb"} {
		if _, ok := got[k]; !ok {
			t.Errorf("match eval --json lacks %q: %s", k, out)
		}
	}
	if p, _ := got["precision"].(float64); p < 0.99 {
		t.Errorf("precision = %v, want at least 0.99", got["precision"])
	}
	if c, _ := got["cluster"].(map[string]any); c["f1"] == nil {
		t.Errorf("cluster figures lack f1: %v", got["cluster"])
	}
}

// TestMatchRunOverStore imports a synthetic population from several
// connections, matches it, unlinks a person's records and checks the
// unlink survives the next run.
func TestMatchRunOverStore(t *testing.T) {
	ctx := context.Background()
	dir, data := t.TempDir(), t.TempDir()
	pop := identity.Generate(identity.GenOptions{People: 300, Seed: 2})
	if _, stderr, err := run(t, ctx, "match", "synth", "--patients", "300", "--seed", "2", "--out", dir); err != nil {
		t.Fatalf("match synth: %v\n%s", err, stderr)
	}
	truth, err := os.ReadFile(filepath.Join(dir, "truth.csv"))
	if err != nil || strings.Count(string(truth), "\n") != len(pop.Records)+1 {
		t.Fatalf("truth.csv: %d lines, %v; want a header and %d records", strings.Count(string(truth), "\n"), err, len(pop.Records))
	}
	for _, src := range []string{"hospital-a", "clinic-b", "hospital-c", "health-d"} {
		if _, stderr, err := run(t, ctx, "bulk", "import", filepath.Join(dir, src), "--connection", src, "--data", data, "--log-level", "warn"); err != nil {
			t.Fatalf("bulk import %s: %v\n%s", src, err, stderr)
		}
	}
	out, stderr, err := run(t, ctx, "match", "run", "--data", data, "--json")
	if err != nil {
		t.Fatalf("match run: %v\n%s", err, stderr)
	}
	var sum identity.RunSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("match run output: %v\n%s", err, out)
	}
	if sum.Records != len(pop.Records) || sum.Persons < 280 || sum.Persons > 330 || sum.New != sum.Persons {
		t.Errorf("first run: %d records, %d persons (%d new); want %d records, about 300 persons, all new", sum.Records, sum.Persons, sum.New, len(pop.Records))
	}
	// a person with two records: find them through the truth
	first := map[int32]int{}
	var a, b identity.Key
	for i, p := range pop.Person {
		if j, ok := first[p]; ok {
			a, b = pop.Records[j].Key, pop.Records[i].Key
			break
		}
		first[p] = i
	}
	if _, stderr, err := run(t, ctx, "match", "unlink", a.String(), b.String(), "--by", "tester", "--reason", "test", "--data", data); err != nil {
		t.Fatalf("match unlink: %v\n%s", err, stderr)
	}
	if _, _, err := run(t, ctx, "match", "unlink", a.String(), b.String(), "--data", data); err == nil {
		t.Errorf("match unlink without --by and --reason succeeded")
	}
	out, stderr, err = run(t, ctx, "match", "run", "--data", data, "--json")
	if err != nil {
		t.Fatalf("second match run: %v\n%s", err, stderr)
	}
	var sum2 identity.RunSummary
	if err := json.Unmarshal([]byte(out), &sum2); err != nil {
		t.Fatal(err)
	}
	if sum2.Overrides != 1 || sum2.Persons < sum.Persons || sum2.Carried < sum.Persons-2 {
		t.Errorf("second run: %+v; want the override applied and the ids carried", sum2)
	}
	out, stderr, err = run(t, ctx, "match", "status", "--data", data)
	if err != nil || !strings.Contains(out, "records") {
		t.Errorf("match status = %q, %v\n%s", out, err, stderr)
	}
	for _, r := range pop.Records[:20] {
		if strings.Contains(out, r.Family) && r.Family != "" {
			t.Errorf("match status prints a family name")
		}
	}
	// the review queue: the run's undecided pairs, each with its explanation
	out, stderr, err = run(t, ctx, "match", "review", "--data", data, "--json")
	if err != nil {
		t.Fatalf("match review: %v\n%s", err, stderr)
	}
	var queue []identity.ReviewPair
	if err := json.Unmarshal([]byte(out), &queue); err != nil {
		t.Fatalf("match review output: %v\n%s", err, out)
	}
	if len(queue) == 0 || len(queue) > len(sum2.Review) {
		t.Fatalf("match review lists %d pairs; the run sent %d to review", len(queue), len(sum2.Review))
	}
	q := queue[0]
	var total float64
	for _, c := range q.Explanation {
		total += c.Weight
	}
	if math.Abs(total-q.Weight) > 1e-6 {
		t.Errorf("review pair %s %s: explanation sums to %.3f, weight %.3f", q.A, q.B, total, q.Weight)
	}
	if _, stderr, err := run(t, ctx, "match", "link", q.A.String(), q.B.String(), "--by", "tester", "--reason", "checked", "--data", data); err != nil {
		t.Fatalf("match link: %v\n%s", err, stderr)
	}
	out, _, _ = run(t, ctx, "match", "review", "--data", data, "--json")
	var after []identity.ReviewPair
	if err := json.Unmarshal([]byte(out), &after); err != nil || len(after) != len(queue)-1 {
		t.Errorf("after deciding one pair match review lists %d pairs (%v), want %d", len(after), err, len(queue)-1)
	}
	out, stderr, err = run(t, ctx, "match", "run", "--new-only", "--data", data, "--json")
	if err != nil || !strings.Contains(out, `"new":0`) {
		t.Errorf("match run --new-only with nothing new = %q, %v\n%s", out, err, stderr)
	}
	text, _, _ := run(t, ctx, "match", "review", "--data", data)
	if !strings.Contains(text, "birthDate") || !strings.Contains(text, "prior") {
		t.Errorf("match review text lacks the explanation:\n%s", text)
	}
}
