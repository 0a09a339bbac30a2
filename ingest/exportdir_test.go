package ingest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ehrgate/ehrsim/bulkexport"
	"ehrgate/fhir"
	"ehrgate/fhir/bulk"
	"ehrgate/synth"
)

const exportDirChildEnv = "EHRGATE_EXPORT_DIR_KILL_CHILD"

// TestExportToDirKillResume runs an export to a directory in a child
// process and SIGKILLs it in the middle of its fourth file (three files
// whole on disk, the fourth half written), then runs the same export here:
// it must poll the child's job (no second kick-off), not download the three
// whole files again, continue the fourth at its last byte, and end with
// every file byte for byte as the server serves it, and no state left.
func TestExportToDirKillResume(t *testing.T) {
	if os.Getenv(exportDirChildEnv) != "" {
		return
	}
	if testing.Short() {
		t.Skip("spawns a subprocess")
	}
	gen := synth.New(synth.Options{Patients: simPatients, Seed: 3})
	want, _ := sourceTotal(gen)
	sim := bulkexport.New(bulkexport.Options{Source: gen, FileSize: 40, RetryAfter: 10 * time.Millisecond})
	dir := filepath.Join(t.TempDir(), "out")

	var (
		kickoffs  atomic.Int64
		fileGets  atomic.Int64
		mu        sync.Mutex
		resuming  bool           // the child is dead (under mu)
		downloads map[string]int // by file path, after the kill (under mu)
		cut       = make(chan string, 1)
		killed    = make(chan struct{})
	)
	downloads = map[string]int{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/$export"):
			kickoffs.Add(1)
		case strings.Contains(r.URL.Path, "/$bulk-file/"):
			mu.Lock()
			after := resuming
			if after {
				downloads[r.URL.Path]++
			}
			mu.Unlock()
			if !after && fileGets.Add(1) == 4 {
				// Half of the file, then wait for the child's kill.
				rec := httptest.NewRecorder()
				sim.Handler().ServeHTTP(rec, r)
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.Header().Del("Content-Length")
				w.WriteHeader(rec.Code)
				w.Write(rec.Body.Bytes()[:rec.Body.Len()/2])
				w.(http.Flusher).Flush()
				cut <- r.URL.Path
				<-killed
				return
			}
		}
		sim.Handler().ServeHTTP(w, r)
	}))
	defer ts.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestExportToDirKillResumeChild$", "-test.v")
	cmd.Env = append(os.Environ(), exportDirChildEnv+"="+dir+"|"+ts.URL)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var cutPath string
	select {
	case cutPath = <-cut:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the child never reached its fourth file:\n%s", out.String())
	}
	// Kill once the half file is on disk.
	partial := func() []string { m, _ := filepath.Glob(filepath.Join(dir, "*.partial")); return m }
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if p := partial(); len(p) == 1 {
			if st, err := os.Stat(p[0]); err == nil && st.Size() > 0 {
				break
			}
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	mu.Lock()
	resuming = true
	mu.Unlock()
	close(killed)
	if strings.Contains(out.String(), "CHILD DONE") {
		t.Fatalf("the child finished before it was killed:\n%s", out.String())
	}
	whole, _ := filepath.Glob(filepath.Join(dir, "*.ndjson"))
	if p := partial(); len(whole) != 3 || len(p) != 1 {
		t.Fatalf("after the kill the directory holds %d whole files and partial files %q; want 3 and one", len(whole), p)
	}

	var logs bytes.Buffer
	c, err := bulk.NewClient(ts.URL+"/fhir", bulk.Options{Sleep: noSleep, MaxDownloads: 2, Retry: fhir.RetryPolicy{MaxAttempts: 20}})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := ExportToDir(context.Background(), c, dir, bulk.Request{}, ExportOptions{
		Options: Options{Sleep: noSleep, Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))}})
	if err != nil || !sum.Complete {
		t.Fatalf("resumed ExportToDir = %+v, %v", sum, err)
	}
	if kickoffs.Load() != 1 || !sum.Resumed {
		t.Errorf("kick-offs = %d, Resumed = %v; want 1 and true (the child's job polled)", kickoffs.Load(), sum.Resumed)
	}
	if sum.Skipped != 3 {
		t.Errorf("Skipped = %d, want the 3 files the child got whole", sum.Skipped)
	}
	mu.Lock()
	for p, n := range downloads {
		if n != 1 {
			t.Errorf("%s downloaded %d times after the kill, want once", p, n)
		}
	}
	if downloads[cutPath] != 1 || len(downloads) != sum.Files-3 {
		t.Errorf("after the kill: %d downloads (the cut file %d times), want the %d files not whole and the cut one once",
			len(downloads), downloads[cutPath], sum.Files-3)
	}
	mu.Unlock()
	if !strings.Contains(logs.String(), "continuing a file the killed run was downloading") {
		t.Errorf("the half file was not continued:\n%s", logs.String())
	}

	// Every file as the server serves it; nothing else left.
	m, err := c.Wait(context.Background(), mustKickoff(t, c))
	if err != nil {
		t.Fatal(err)
	}
	lines, seq := 0, map[string]int{}
	for _, f := range m.Output {
		seq[f.Type]++
		rc, err := c.Open(context.Background(), m, f, 0)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(rc)
		rc.Close()
		name := f.Type + "." + fmt.Sprint(seq[f.Type]) + ".ndjson"
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, b.Bytes()) {
			t.Errorf("%s differs from the server's file (%d bytes on disk, %d served, %v)", name, len(got), b.Len(), err)
		}
		lines += bytes.Count(got, []byte{'\n'})
	}
	if lines != want {
		t.Errorf("the files hold %d lines, want %d", lines, want)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".ehrgate-export*"))
	if p := partial(); len(p) != 0 || len(left) != 0 {
		t.Errorf("left in the directory: %q %q", p, left)
	}
}

func mustKickoff(t *testing.T, c *bulk.Client) *bulk.Job {
	t.Helper()
	job, err := c.Kickoff(context.Background(), bulk.Request{})
	if err != nil {
		t.Fatal(err)
	}
	return job
}

// syncWriter serializes writes (the export logs from several goroutines).
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// TestExportToDirKillResumeChild is the process TestExportToDirKillResume
// kills: one download at a time, so that files end in manifest order.
func TestExportToDirKillResumeChild(t *testing.T) {
	env := os.Getenv(exportDirChildEnv)
	if env == "" {
		t.Skip("run by TestExportToDirKillResume")
	}
	dir, base, _ := strings.Cut(env, "|")
	c, err := bulk.NewClient(base+"/fhir", bulk.Options{MaxDownloads: 1, Retry: fhir.RetryPolicy{MaxAttempts: 20}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ExportToDir(context.Background(), c, dir, bulk.Request{}, ExportOptions{Options: Options{Files: 1}}); err != nil {
		t.Fatal(err)
	}
	fmt.Println("CHILD DONE")
}
