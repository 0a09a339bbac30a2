package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ehrgate/gateway"
	"ehrgate/ingest"
	"ehrgate/internal/pgtest"
	"ehrgate/secrets"
	"ehrgate/store"
	"ehrgate/synth"
)

func TestMain(m *testing.M) {
	if os.Getenv(envRunMain) == "1" {
		// A child process of a test: the test binary runs as ehrgate.
		main()
		os.Exit(0)
	}
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

// envRunMain makes the test binary run ehrgate's main (replica processes).
const envRunMain = "EHRGATE_TEST_RUN_MAIN"

// runEnv executes the CLI in-process with environment env.
func runEnv(t *testing.T, ctx context.Context, env []string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCmd(&out, &errOut, env)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// kekEnv returns an environment holding a fresh key-encryption key, as
// every replica on one PostgreSQL store must be given.
func kekEnv(t *testing.T) []string {
	t.Helper()
	k, err := secrets.GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}
	return []string{secrets.EnvKEK + "=" + base64.StdEncoding.EncodeToString(k.Bytes())}
}

// cliStats is what `stats --json` prints.
type cliStats struct {
	Connections map[string]struct {
		Resources map[string]int `json:"resources"`
	} `json:"connections"`
	Resources   int `json:"resources"`
	Versions    int `json:"versions"`
	Quarantined int `json:"quarantined"`
}

// storeStats runs `stats --json` on a store and returns what it holds.
func storeStats(t *testing.T, env []string, storeArgs ...string) cliStats {
	t.Helper()
	out, stderr, err := runEnv(t, context.Background(), env, append([]string{"stats", "--json"}, storeArgs...)...)
	if err != nil {
		t.Fatalf("stats: %v\n%s", err, stderr)
	}
	var st cliStats
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("stats --json: %v\n%s", err, out)
	}
	return st
}

// The CLI runs everything against PostgreSQL as it does against the
// embedded store: a demo sync, a bulk import with Parquet export, an MLLP
// listener and a SMART EHR launch, each ending with the same store contents
// as the same run on SQLite.
func TestCommandsOnPostgres(t *testing.T) {
	ctx := context.Background()
	t.Run("DemoSync", func(t *testing.T) {
		url, env := pgtest.NewDatabaseURL(t), kekEnv(t)
		args := []string{"demo", "--once", "--json", "--patients", "12", "--log-level", "warn"}
		out, stderr, err := runEnv(t, ctx, env, append(args, "--store", url)...)
		if err != nil {
			t.Fatalf("demo on PostgreSQL: %v\n%s", err, stderr)
		}
		if sum := decodeSummary(t, out); sum.Errors != 0 || sum.Patients != 12 || sum.New == 0 {
			t.Fatalf("summary %+v", sum)
		}
		out, stderr, err = runEnv(t, ctx, env, append(args, "--store", url)...)
		if err != nil {
			t.Fatalf("second demo: %v\n%s", err, stderr)
		}
		if sum := decodeSummary(t, out); sum.New != 0 || sum.Updated != 0 {
			t.Errorf("second demo on PostgreSQL found changes: %+v", sum)
		}
		data := t.TempDir()
		if _, stderr, err := runEnv(t, ctx, nil, append(args, "--data", data)...); err != nil {
			t.Fatalf("demo on SQLite: %v\n%s", err, stderr)
		}
		pg, lite := storeStats(t, env, "--store", url), storeStats(t, nil, "--data", data)
		if diff := cmp.Diff(lite, pg); diff != "" {
			t.Errorf("PostgreSQL holds other resources than SQLite (-sqlite +postgres):\n%s", diff)
		}
		out, _, err = runEnv(t, ctx, env, "status", "--store", url, "--json")
		if err != nil || !strings.Contains(out, `"name":"demo"`) || !strings.Contains(out, `"last_sync":`) {
			t.Errorf("status on PostgreSQL = %v\n%s", err, out)
		}
	})

	t.Run("BulkImportAndParquet", func(t *testing.T) {
		url, env := pgtest.NewDatabaseURL(t), kekEnv(t)
		dir := t.TempDir()
		counts, err := synth.New(synth.Options{Patients: 4, Seed: 5}).WriteNDJSON(filepath.Join(dir, "in"))
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, c := range counts {
			want += c
		}
		out, stderr, err := runEnv(t, ctx, env, "bulk", "import", filepath.Join(dir, "in"), "--store", url, "--json")
		if err != nil {
			t.Fatalf("bulk import into PostgreSQL: %v\n%s", err, stderr)
		}
		var sum ingest.Summary
		if err := json.Unmarshal([]byte(out), &sum); err != nil || sum.New != want {
			t.Fatalf("import = %+v, %v; want %d new\n%s", sum, err, want, out)
		}
		out, _, err = runEnv(t, ctx, env, "bulk", "import", filepath.Join(dir, "in"), "--store", url)
		if err != nil || !strings.Contains(out, "new 0,") {
			t.Errorf("second import = %v\n%s", err, out)
		}
		out, stderr, err = runEnv(t, ctx, env, "export", "parquet", "--store", url, "--out", filepath.Join(dir, "pq"), "--json")
		if err != nil {
			t.Fatalf("export parquet from PostgreSQL: %v\n%s", err, stderr)
		}
		var ps struct {
			Rows int `json:"rows"`
		}
		if err := json.Unmarshal([]byte(out), &ps); err != nil || ps.Rows != want {
			t.Errorf("export parquet = %+v, %v; want %d rows", ps, err, want)
		}
	})

	t.Run("MLLP", func(t *testing.T) {
		url, env := pgtest.NewDatabaseURL(t), kekEnv(t)
		lctx, stop := context.WithCancel(ctx)
		defer stop()
		var listenOut lockedBuffer
		done := make(chan error, 1)
		go func() {
			cmd := newRootCmd(&listenOut, &bytes.Buffer{}, env)
			cmd.SetArgs([]string{"hl7", "listen", "--store", url, "--mllp-addr", "127.0.0.1:0", "--log-level", "error"})
			done <- cmd.ExecuteContext(lctx)
		}()
		var addr string
		for deadline := time.Now().Add(30 * time.Second); addr == ""; {
			if _, a, ok := strings.Cut(listenOut.String(), "listening on "); ok {
				addr, _, _ = strings.Cut(a, " ")
			} else if time.Now().After(deadline) {
				t.Fatalf("the listener did not start: %s", listenOut.String())
			} else {
				time.Sleep(20 * time.Millisecond)
			}
		}
		dir := t.TempDir()
		for i := range 5 {
			msg := fmt.Sprintf("MSH|^~\\&|LAB|NORTH|||20260101120000||ORU^R01^ORU_R01|PG%d|P|2.5.1\r"+
				"PID|1||MRN%d^^^NORTH&1.2.3&ISO^MR||Doe^Jan||19800101|F\r"+
				"OBR|1||F%d|2345-7^Glucose^LN|||20260101110000\r"+
				"OBX|1|NM|2345-7^Glucose^LN||%d|mg/dL|70-99|N|||F\r", i, i, i, 90+i)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("m%d.hl7", i)), []byte(msg), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if out, err := runHL7(t, ctx, "send", dir, "--to", addr); err != nil || !strings.Contains(out, "5 accepted") {
			t.Fatalf("send = %v\n%s", err, out)
		}
		stop()
		if err := <-done; err != nil {
			t.Fatalf("listener: %v", err)
		}
		st := storeStats(t, env, "--store", url)
		byType := st.Connections["hl7"].Resources
		if byType["Patient"] != 5 || byType["Observation"] != 5 || byType["DiagnosticReport"] != 5 {
			t.Errorf("PostgreSQL holds %v after 5 ORU messages; want 5 patients, reports and observations", byType)
		}
	})

	t.Run("SMARTLaunch", func(t *testing.T) {
		url, env := pgtest.NewDatabaseURL(t), kekEnv(t)
		const patients = 4
		d := startLaunchDemoEnv(t, patients, env, "--store", url, "--log-level", "warn")
		patient, _ := demoPatient(t, url, patients)
		if code := ehrLaunchOverHTTP(t, d, patient); code == "" {
			t.Fatal("no authorization code reached ehrgate")
		}
		d.stop(t)
		st, err := store.Open(ctx, url, store.OpenOptions{MustExist: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := st.Get(ctx, demoLaunchConnection, "Patient", patient); err != nil {
			t.Errorf("the launched patient is not in PostgreSQL: %v", err)
		}
		if n, err := st.CountLaunches(ctx, "127.0.0.1", time.Now()); err != nil || n != 0 {
			t.Errorf("pending launches left after the launch completed: %d, %v", n, err)
		}
		if states, err := gateway.ListConnectionStates(ctx, st); err != nil || len(states) == 0 {
			t.Errorf("connection state in PostgreSQL: %v, %v", states, err)
		}
	})

	t.Run("SharedStoreNeedsKEK", func(t *testing.T) {
		url := pgtest.NewDatabaseURL(t)
		_, _, err := runEnv(t, ctx, nil, "sync", "--store", url, "--base-url", "http://127.0.0.1:1/fhir", "--data", t.TempDir())
		if err == nil || !strings.Contains(err.Error(), secrets.EnvKEK) {
			t.Errorf("sync on PostgreSQL without a KEK = %v, want an error naming %s", err, secrets.EnvKEK)
		}
		out, _, err := runEnv(t, ctx, nil, "migrate", "--store", url)
		if err != nil || !strings.Contains(out, "schema up to date") {
			t.Errorf("migrate = %v\n%s", err, out)
		}
		out, _, err = runEnv(t, ctx, nil, "migrate", "--status", "--store", url)
		if err != nil || strings.Contains(out, " pending\n") {
			t.Errorf("migrate --status after migrate = %v\n%s", err, out)
		}
	})
}
