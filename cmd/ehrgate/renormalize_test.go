package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"ehrgate/store"
	"ehrgate/store/sqlite"
)

// runMine runs one of this file's commands under a bare root (they are not
// wired into newRootCmd by this change).
func runMine(t *testing.T, newCmd func(*app) *cobra.Command, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &app{stdout: &out, stderr: &errOut}
	root := &cobra.Command{Use: "ehrgate", SilenceUsage: true, SilenceErrors: true}
	root.PersistentFlags().StringVar(&a.configPath, "config", "", "")
	root.PersistentFlags().String("log-level", "warn", "")
	root.PersistentFlags().String("log-format", "", "")
	root.AddCommand(newCmd(a))
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// seedStore writes records with out-of-date normalized JSON, as a store
// written before a mapping change would hold.
func seedStore(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	obs := func(id, code, text string) string {
		return `{"resourceType":"Observation","id":"` + id + `","status":"final","category":[{"text":"lab"}],"code":{"coding":[{"system":"urn:oid:1.2.3","code":"` + code + `","display":"` + text + `"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024-01-01","valueQuantity":{"value":4.1,"unit":"mmol/L"}}`
	}
	recs := []store.Record{
		{Key: store.Key{Connection: "a", Type: "Observation", ID: "o1", VersionID: "1"}, PatientID: "p1", Raw: []byte(obs("o1", "K1", "Potassium Lvl")), Normalized: []byte(`{}`)},
		{Key: store.Key{Connection: "a", Type: "Observation", ID: "o2", VersionID: "1"}, PatientID: "p1", Raw: []byte(obs("o2", "X9", "Special Assay")), Normalized: []byte(`{}`)},
		{Key: store.Key{Connection: "a", Type: "Observation", ID: "o3", VersionID: "1"}, PatientID: "p1", Raw: []byte(obs("o3", "X9", "Special Assay")), Normalized: []byte(`{}`)},
		{Key: store.Key{Connection: "a", Type: "Observation", ID: "bad", VersionID: "1"}, PatientID: "p1", Raw: []byte(`{"resourceType":"Observation","id":"bad","status":true}`), Normalized: []byte(`{}`)},
		{Key: store.Key{Connection: "b", Type: "Patient", ID: "p1", VersionID: "1"}, PatientID: "p1", Raw: []byte(`{"resourceType":"Patient","id":"p1","gender":"female"}`), Normalized: []byte(`{}`)},
	}
	if _, err := st.PutResources(ctx, recs); err != nil {
		t.Fatal(err)
	}
}

func TestRenormalizeCommand(t *testing.T) {
	data := t.TempDir()
	seedStore(t, data)

	out, err := runMine(t, newRenormalizeCmd, "renormalize", "--data", data, "--json", "--dry-run")
	var sum renormalizeSummary
	if jerr := json.Unmarshal([]byte(out), &sum); jerr != nil {
		t.Fatalf("output %q: %v", out, jerr)
	}
	if sum.Scanned != 5 || sum.Changed != 4 || sum.Failed != 1 {
		t.Errorf("dry run = %+v, want 5 scanned, 4 changed, 1 failed", sum)
	}
	var ee *exitError
	if !asExit(err, &ee) || ee.code != 3 {
		t.Errorf("dry run error = %v, want exit status 3", err)
	}

	out, _ = runMine(t, newRenormalizeCmd, "renormalize", "--data", data, "--json", "--batch", "2")
	json.Unmarshal([]byte(out), &sum)
	if sum.Changed != 4 || sum.Unchanged != 0 || sum.Failed != 1 {
		t.Errorf("first run = %+v, want 4 changed, 1 failed", sum)
	}
	out, _ = runMine(t, newRenormalizeCmd, "renormalize", "--data", data, "--json")
	json.Unmarshal([]byte(out), &sum)
	if sum.Changed != 0 || sum.Unchanged != 4 {
		t.Errorf("second run = %+v, want everything unchanged", sum)
	}

	// A mapping change: the local-code map now maps X9; only o2 and o3 change.
	mapFile := filepath.Join(t.TempDir(), "map.csv")
	os.WriteFile(mapFile, []byte("connection,source_system,source_code,target_system,target_code\na,urn:oid:1.2.3,X9,http://loinc.org,2951-2\n"), 0o644)
	out, _ = runMine(t, newRenormalizeCmd, "renormalize", "--data", data, "--json", "--local-code-map", mapFile, "--connection", "a")
	json.Unmarshal([]byte(out), &sum)
	if sum.Changed != 2 || sum.Unchanged != 1 || sum.Scanned != 4 {
		t.Errorf("after a map change = %+v, want 2 changed, 1 unchanged of 4", sum)
	}
	ctx := context.Background()
	st, err := sqlite.OpenDir(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec, err := st.Get(ctx, "a", "Observation", "o2")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rec.Normalized), `"mapping":"local-map"`) || !strings.Contains(string(rec.Normalized), `"code":"2951-2"`) {
		t.Errorf("o2 normalized = %s, want the local-map mapping", rec.Normalized)
	}
	if string(rec.Raw) == "" || rec.VersionID != "1" {
		t.Errorf("raw or version changed: %+v", rec.Key)
	}
	q, err := st.Quarantined(ctx, "a", 10)
	if err != nil || len(q) == 0 || strings.Contains(q[0].Reason, "true") {
		t.Errorf("quarantine = %+v, %v; want the failed resource with a value-free reason", q, err)
	}
}

func asExit(err error, target **exitError) bool {
	e, ok := err.(*exitError)
	if ok {
		*target = e
	}
	return ok
}

func TestQualityCommand(t *testing.T) {
	data := t.TempDir()
	seedStore(t, data)
	out, err := runMine(t, newQualityCmd, "quality", "--data", data, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Connections []struct {
			Connection   string `json:"connection"`
			Failed       int    `json:"failed"`
			MissingLoinc int    `json:"missingLoinc"`
			Unmapped     []struct {
				Code  string `json:"code"`
				Count int    `json:"count"`
			} `json:"unmapped"`
			Profile []struct {
				Rule string `json:"rule"`
			} `json:"profile"`
		} `json:"connections"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if len(rep.Connections) != 2 || rep.Connections[0].Failed != 1 || rep.Connections[0].MissingLoinc != 2 ||
		len(rep.Connections[0].Unmapped) != 1 || rep.Connections[0].Unmapped[0].Code != "X9" || rep.Connections[0].Unmapped[0].Count != 2 {
		t.Errorf("quality report = %+v", rep)
	}
	out, err = runMine(t, newQualityCmd, "quality", "--data", data, "--connection", "a", "--template", "-")
	if err != nil {
		t.Fatal(err)
	}
	want := "connection,source_system,source_code,source_display,count,target_system,target_code,target_display\na,urn:oid:1.2.3,X9,Special Assay,2,,,\n"
	if out != want {
		t.Errorf("template = %q, want %q", out, want)
	}
	out, err = runMine(t, newQualityCmd, "quality", "--data", data)
	if err != nil || !strings.Contains(out, "a: 4 resources") || !strings.Contains(out, "us-core-patient-identifier") {
		t.Errorf("text report = %q, %v", out, err)
	}
}
