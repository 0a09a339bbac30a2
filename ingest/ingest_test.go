package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ehrgate/store"
	"ehrgate/store/sqlite"
	"ehrgate/synth"
)

func openStore(t *testing.T, dir string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.OpenDir(context.Background(), dir)
	if err != nil {
		t.Fatalf("OpenDir: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// corpus writes patients' NDJSON into dir and returns the resource count.
func corpus(t *testing.T, dir string, patients int) int {
	t.Helper()
	counts, err := synth.New(synth.Options{Patients: patients, Seed: 7}).WriteNDJSON(dir)
	if err != nil {
		t.Fatalf("WriteNDJSON: %v", err)
	}
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

func total(t *testing.T, st store.Statter) (current, versions, quarantined int) {
	t.Helper()
	s, err := st.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	for _, tc := range s.Resources {
		current += tc.Count
	}
	return current, s.Versions, s.Quarantined
}

func TestIngestLocalFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	want := corpus(t, filepath.Join(dir, "in"), 6)
	// A file with one good line and every kind of bad line.
	good := `{"resourceType":"Observation","id":"extra-1","meta":{"versionId":"1"},"status":"final","code":{"text":"x"}}`
	bad := strings.Join([]string{
		good,
		`{"resourceType":"Observation","id":`, // malformed JSON
		``,                                    // blank: skipped
		`{"resourceType":"Observation","id":"bad-type","code":12345}`, // wrong JSON type
		`{"resourceType":"Observation"}`,                              // no id
		`{"resourceType":"Observation","id":"long","note":"` + strings.Repeat("x", 5000) + `"}`,
	}, "\n") + "\n"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(bad))
	zw.Close()
	os.WriteFile(filepath.Join(dir, "in", "extra.ndjson.gz"), gz.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dir, "in", "notes.txt"), []byte("not ndjson"), 0o644)

	st := openStore(t, filepath.Join(dir, "data"))
	files, job, err := LocalFiles([]string{filepath.Join(dir, "in")})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 11 {
		t.Fatalf("LocalFiles found %d files, want 11 (10 types + extra.ndjson.gz)", len(files))
	}
	in, _ := New(st, Options{Connection: "c", Job: job, MaxLine: 4096, BatchSize: 100})
	sum, err := in.Run(ctx, files)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if sum.New != want+1 || sum.Quarantined != 4 || len(sum.Errors) != 0 {
		t.Errorf("summary = new %d quarantined %d errors %v; want new %d quarantined 4", sum.New, sum.Quarantined, sum.Errors, want+1)
	}
	cur, vers, q := total(t, st)
	if cur != want+1 || vers != want+1 || q != 4 {
		t.Errorf("store holds %d current, %d versions, %d quarantined; want %d, %d, 4", cur, vers, q, want+1, want+1)
	}
	items, _ := st.Quarantined(ctx, "c", 10)
	var sources []string
	for _, it := range items {
		sources = append(sources, it.Source)
	}
	for _, line := range []string{"#L2", "#L4", "#L5", "#L6"} {
		found := false
		for _, s := range sources {
			if strings.HasSuffix(s, "extra.ndjson.gz"+line) {
				found = true
			}
		}
		if !found {
			t.Errorf("no quarantine item with source ending %s in %v", line, sources)
		}
	}

	// Same job again: every file is already done.
	sum, err = in.Run(ctx, files)
	if err != nil || sum.Skipped != len(files) || sum.New != 0 {
		t.Errorf("same job again = skipped %d new %d, %v; want all skipped", sum.Skipped, sum.New, err)
	}
	// Another job over the same data adds nothing.
	in2, _ := New(st, Options{Connection: "c", Job: "other", MaxLine: 4096})
	sum, err = in2.Run(ctx, files[:len(files)-1])
	if err != nil || sum.New != 0 || sum.Unchanged != want-1+2 && sum.Unchanged == 0 {
		t.Errorf("new job = new %d unchanged %d, %v; want nothing new", sum.New, sum.Unchanged, err)
	}
	if cur2, vers2, _ := total(t, st); cur2 != cur || vers2 != vers {
		t.Errorf("after re-run store holds %d/%d, want %d/%d", cur2, vers2, cur, vers)
	}
}

// flaky fails the first read that crosses failAt with io.ErrUnexpectedEOF.
type flaky struct {
	r      io.Reader
	n      int64
	failAt int64
}

func (f *flaky) Read(p []byte) (int, error) {
	if f.n >= f.failAt {
		return 0, io.ErrUnexpectedEOF
	}
	if int64(len(p)) > f.failAt-f.n {
		p = p[:f.failAt-f.n]
	}
	n, err := f.r.Read(p)
	f.n += int64(n)
	return n, err
}

func TestBrokenTransferReopensAtLastLine(t *testing.T) {
	dir := t.TempDir()
	want := corpus(t, filepath.Join(dir, "in"), 4)
	files, _, err := LocalFiles([]string{filepath.Join(dir, "in")})
	if err != nil {
		t.Fatal(err)
	}
	var offsets []int64
	for i := range files {
		open := files[i].Open
		first := true
		files[i].Open = func(ctx context.Context, offset int64) (io.ReadCloser, error) {
			rc, err := open(ctx, offset)
			if err != nil || !first {
				if !first {
					offsets = append(offsets, offset)
				}
				return rc, err
			}
			first = false
			return struct {
				io.Reader
				io.Closer
			}{&flaky{r: rc, failAt: 1500}, rc}, nil
		}
	}
	st := openStore(t, filepath.Join(dir, "data"))
	in, _ := New(st, Options{Connection: "c", Job: "j", Files: 1, Sleep: func(context.Context, time.Duration) error { return nil }})
	sum, err := in.Run(context.Background(), files)
	if err != nil || len(sum.Errors) != 0 || sum.Quarantined != 0 {
		t.Fatalf("Run = %+v, %v", sum, err)
	}
	cur, vers, _ := total(t, st)
	if cur != want || vers != want {
		t.Errorf("store holds %d current / %d versions, want %d", cur, vers, want)
	}
	for _, o := range offsets {
		if o == 0 || o > 1500 {
			t.Errorf("re-opened at offset %d, want the end of the last whole line before 1500", o)
		}
	}
}

func TestManifestCountMismatchIsReported(t *testing.T) {
	dir := t.TempDir()
	corpus(t, filepath.Join(dir, "in"), 2)
	files, _, _ := LocalFiles([]string{filepath.Join(dir, "in", "Patient.ndjson")})
	files[0].Count = 5
	files[0].Type = "Patient"
	st := openStore(t, filepath.Join(dir, "data"))
	in, _ := New(st, Options{Connection: "c", Job: "j"})
	sum, err := in.Run(context.Background(), files)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Errors) != 1 || !strings.Contains(sum.Errors[0].Error, "announced 5") {
		t.Errorf("Errors = %v, want a count mismatch", sum.Errors)
	}
}

func TestWrongTypeQuarantined(t *testing.T) {
	dir := t.TempDir()
	corpus(t, filepath.Join(dir, "in"), 2)
	files, _, _ := LocalFiles([]string{filepath.Join(dir, "in", "Patient.ndjson")})
	files[0].Type = "Observation"
	st := openStore(t, filepath.Join(dir, "data"))
	in, _ := New(st, Options{Connection: "c", Job: "j"})
	sum, err := in.Run(context.Background(), files)
	if err != nil || sum.Quarantined != 2 || sum.New != 0 {
		t.Errorf("Run = quarantined %d new %d, %v; want 2 quarantined", sum.Quarantined, sum.New, err)
	}
}

const childEnv = "EHRGATE_INGEST_KILL_CHILD"

// TestKillResume ingests in a child process, SIGKILLs it once some batches
// are committed, resumes in this process and checks nothing was lost or
// duplicated.
func TestKillResume(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		return
	}
	if testing.Short() {
		t.Skip("spawns a subprocess")
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	want := corpus(t, in, 30)
	// One malformed line, to check quarantine is not duplicated either.
	f, _ := os.OpenFile(filepath.Join(in, "Observation.ndjson"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("{broken\n")
	f.Close()
	data := filepath.Join(dir, "data")

	cmd := exec.Command(os.Args[0], "-test.run=^TestKillResumeChild$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	files, job, err := LocalFiles([]string{in})
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the child's store and some committed batches.
	deadline := time.Now().Add(60 * time.Second)
	var st *sqlite.Store
	for {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("child made no progress:\n%s", out.String())
		}
		if st == nil && strings.Contains(out.String(), "CHILD READY") {
			st = openStore(t, data)
		}
		if st != nil {
			cps, err := st.Checkpoints(context.Background(), "c", job)
			if err == nil && len(cps) >= 2 {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if strings.Contains(out.String(), "CHILD DONE") {
		t.Fatal("child finished before it was killed; make the corpus bigger")
	}
	cur, _, _ := total(t, st)
	if cur == 0 || cur >= want {
		t.Logf("killed with %d of %d resources stored", cur, want)
	}
	ing, _ := New(st, Options{Connection: "c", Job: job, BatchSize: 20})
	sum, err := ing.Run(context.Background(), files)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	cur, vers, q := total(t, st)
	if cur != want || vers != want || q != 1 {
		t.Fatalf("after resume: %d current, %d versions, %d quarantined; want %d, %d, 1 (summary %+v)", cur, vers, q, want, want, sum)
	}
	if sum.Unchanged != 0 {
		t.Errorf("resume re-wrote %d resources already committed, want 0 (checkpoints skip them)", sum.Unchanged)
	}
	t.Logf("resumed: %d new after the kill; skipped %d complete files", sum.New, sum.Skipped)
}

func TestKillResumeChild(t *testing.T) {
	dir := os.Getenv(childEnv)
	if dir == "" {
		t.Skip("run by TestKillResume")
	}
	st, err := sqlite.OpenDir(context.Background(), filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	files, job, err := LocalFiles([]string{filepath.Join(dir, "in")})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("CHILD READY")
	in, _ := New(st, Options{Connection: "c", Job: job, BatchSize: 20, Files: 2})
	if _, err := in.Run(context.Background(), files); err != nil {
		t.Fatal(err)
	}
	fmt.Println("CHILD DONE")
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLocalFilesErrors(t *testing.T) {
	if _, _, err := LocalFiles([]string{filepath.Join(t.TempDir(), "missing")}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LocalFiles(missing) = %v, want not exist", err)
	}
}
