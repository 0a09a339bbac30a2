package bulk_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
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

// recSleep records waits without waiting.
type recSleep struct {
	mu sync.Mutex
	d  []time.Duration
}

func (r *recSleep) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	r.d = append(r.d, d)
	r.mu.Unlock()
	return ctx.Err()
}

func newSim(t *testing.T, opts bulkexport.Options) (*bulkexport.Server, string) {
	t.Helper()
	if opts.Source == nil {
		opts.Source = synth.New(synth.Options{Patients: 12, Seed: 1})
	}
	s := bulkexport.New(opts)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts.URL + "/fhir"
}

// tokenAuth is a fake SMART authorizer: it counts the requests it signs and
// hands out a new token after Invalidate.
type tokenAuth struct {
	signed      atomic.Int64
	invalidated atomic.Int64
}

func (a *tokenAuth) Authorize(_ context.Context, r *http.Request) error {
	a.signed.Add(1)
	r.Header.Set("Authorization", "Bearer t"+string(rune('0'+a.invalidated.Load())))
	return nil
}

func (a *tokenAuth) Invalidate(context.Context, *http.Request) error {
	a.invalidated.Add(1)
	return nil
}

func readFile(t *testing.T, c *bulk.Client, m *bulk.Manifest, f bulk.OutputFile) int64 {
	t.Helper()
	rc, err := c.Open(context.Background(), m, f, 0)
	if err != nil {
		t.Fatalf("Open(%s): %v", f.URL, err)
	}
	defer rc.Close()
	r := bulk.NewReader(rc, 0, 0, 0)
	var n int64
	for {
		l, err := r.Next()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatalf("reading %s: %v", f.URL, err)
		}
		h, err := fhir.ParseHeader(l.Bytes)
		if err != nil || h.ResourceType != f.Type {
			t.Fatalf("line %d of a %s file: %v %q", l.Num, f.Type, err, h.ResourceType)
		}
		n++
	}
}

func TestExportRoundTrip(t *testing.T) {
	sim, base := newSim(t, bulkexport.Options{FileSize: 100, Polls: 3, Gzip: true})
	sl := &recSleep{}
	var progress []string
	c, err := bulk.NewClient(base, bulk.Options{Sleep: sl.sleep, OnProgress: func(p string) { progress = append(progress, p) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	job, err := c.Kickoff(ctx, bulk.Request{})
	if err != nil {
		t.Fatalf("Kickoff: %v", err)
	}
	m, err := c.Wait(ctx, job)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if len(progress) < 3 || !strings.HasPrefix(progress[0], "planning") {
		t.Errorf("X-Progress seen = %q, want at least 3", progress)
	}
	for _, d := range sl.d {
		if d != time.Second {
			t.Errorf("poll wait = %s, want the server's Retry-After 1s", d)
		}
	}
	if m.RequiresAccessToken {
		t.Error("requiresAccessToken = true for a server without auth")
	}
	var total int64
	gen := synth.New(synth.Options{Patients: 12, Seed: 1})
	for i := 0; i < 12; i++ {
		total += int64(len(gen.Resources(i)))
	}
	var got int64
	for _, f := range m.Output {
		n := readFile(t, c, m, f)
		if n != *f.Count {
			t.Errorf("file %s held %d lines, manifest says %d", f.URL, n, *f.Count)
		}
		got += n
	}
	if got != total {
		t.Errorf("exported %d resources, want %d", got, total)
	}
	if err := c.Delete(ctx, job); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if sim.Stats().Deletes != 1 {
		t.Errorf("Deletes = %d, want 1", sim.Stats().Deletes)
	}
	if _, err := c.Wait(ctx, job); !errors.Is(err, fhir.ErrNotFound) {
		t.Errorf("Wait after Delete = %v, want not found", err)
	}
	if err := c.Delete(ctx, job); err != nil {
		t.Errorf("second Delete = %v, want nil (already gone)", err)
	}
}

func TestPollBackoffWithoutRetryAfter(t *testing.T) {
	_, base := newSim(t, bulkexport.Options{Polls: 6, RetryAfter: -1})
	sl := &recSleep{}
	c, _ := bulk.NewClient(base, bulk.Options{Sleep: sl.sleep, PollMin: time.Second, PollMax: 4 * time.Second})
	job, err := c.Kickoff(context.Background(), bulk.Request{Types: []string{"Patient"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(context.Background(), job); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	want := []time.Duration{1, 2, 4, 4, 4, 4}
	if len(sl.d) < len(want) {
		t.Fatalf("waits = %v, want at least %v seconds", sl.d, want)
	}
	for i, w := range want {
		if sl.d[i] != w*time.Second {
			t.Errorf("wait %d = %s, want %s", i, sl.d[i], w*time.Second)
		}
	}
}

func TestStatusThrottleAndSlowStatus(t *testing.T) {
	sim, base := newSim(t, bulkexport.Options{Faults: bulkexport.Faults{StatusThrottle: 4, SlowStatus: 20 * time.Millisecond, ThrottleRetryAfter: 2 * time.Second}})
	sl := &recSleep{}
	c, _ := bulk.NewClient(base, bulk.Options{Sleep: sl.sleep, Retry: fhir.RetryPolicy{MaxAttempts: 2}})
	job, err := c.Kickoff(context.Background(), bulk.Request{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(context.Background(), job); err != nil {
		t.Fatalf("Wait with 4 throttled polls and MaxAttempts 2: %v (429 on polls must not count as failures)", err)
	}
	if got := sim.Stats().Throttled; got != 4 {
		t.Errorf("Throttled = %d, want 4", got)
	}
	twos := 0
	for _, d := range sl.d {
		if d == 2*time.Second {
			twos++
		}
	}
	if twos != 4 {
		t.Errorf("waits = %v, want four of 2s (Retry-After of the 429s)", sl.d)
	}
}

// TestWaitFailedJob checks that a job the server reports failed (5xx with
// an error OperationOutcome, retried until MaxAttempts) ends Wait with a
// *fhir.Error carrying the outcome, so callers can tell it from an outage.
func TestWaitFailedJob(t *testing.T) {
	sim, base := newSim(t, bulkexport.Options{Faults: bulkexport.Faults{FailJobs: 1}})
	c, _ := bulk.NewClient(base, bulk.Options{Sleep: (&recSleep{}).sleep, Retry: fhir.RetryPolicy{MaxAttempts: 3}})
	job, err := c.Kickoff(context.Background(), bulk.Request{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Wait(context.Background(), job)
	var fe *fhir.Error
	if !errors.As(err, &fe) || fe.StatusCode != http.StatusInternalServerError || fe.Outcome == nil || !errors.Is(err, fhir.ErrServer) {
		t.Fatalf("Wait = %v, want a 500 *fhir.Error with the OperationOutcome", err)
	}
	if got := sim.Stats().Polls; got != 3 {
		t.Errorf("polls = %d, want 3 (MaxAttempts)", got)
	}
}

func TestKickoffErrors(t *testing.T) {
	_, base := newSim(t, bulkexport.Options{})
	c, _ := bulk.NewClient(base, bulk.Options{Retry: fhir.RetryPolicy{MaxAttempts: 1}})
	tests := []struct {
		name string
		req  bulk.Request
		want error
	}{
		{"bad output format", bulk.Request{OutputFormat: "text/csv"}, fhir.ErrBadRequest},
		{"type filter not supported", bulk.Request{TypeFilters: []string{"Observation?value-quantity=gt5"}}, fhir.ErrNotSupported},
		{"malformed type filter", bulk.Request{TypeFilters: []string{"Observation"}}, fhir.ErrBadRequest},
		{"bad type", bulk.Request{Types: []string{"not a type"}}, fhir.ErrBadRequest},
		{"unknown group", bulk.Request{Group: "nope"}, fhir.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Kickoff(context.Background(), tc.req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Kickoff(%+v) = %v, want %v", tc.req, err, tc.want)
			}
			var fe *fhir.Error
			if !errors.As(err, &fe) || fe.Outcome == nil {
				t.Errorf("error %v carries no OperationOutcome", err)
			}
		})
	}
}

func TestAccessTokenOnlyWhenRequired(t *testing.T) {
	for _, required := range []bool{false, true} {
		opts := bulkexport.Options{Source: synth.New(synth.Options{Patients: 2, Seed: 1}), FileSize: 1000}
		if required {
			opts.Authorize = func(r *http.Request) error {
				if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
					return errors.New("no token")
				}
				return nil
			}
		}
		_, base := newSim(t, opts)
		auth := &tokenAuth{}
		c, _ := bulk.NewClient(base, bulk.Options{Authorizer: auth, Sleep: (&recSleep{}).sleep})
		job, err := c.Kickoff(context.Background(), bulk.Request{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := c.Wait(context.Background(), job)
		if err != nil {
			t.Fatal(err)
		}
		if m.RequiresAccessToken != required {
			t.Fatalf("requiresAccessToken = %v, want %v", m.RequiresAccessToken, required)
		}
		before := auth.signed.Load()
		for _, f := range m.Output {
			readFile(t, c, m, f)
		}
		signed := auth.signed.Load() - before
		if required && signed != int64(len(m.Output)) {
			t.Errorf("required: %d file requests signed, want %d", signed, len(m.Output))
		}
		if !required && signed != 0 {
			t.Errorf("not required: %d file requests signed, want 0", signed)
		}
	}
}

func TestAccessTokenNotSentToOtherOrigin(t *testing.T) {
	var sawToken atomic.Bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawToken.Store(r.Header.Get("Authorization") != "")
		io.WriteString(w, `{"resourceType":"Patient","id":"a"}`+"\n")
	}))
	defer other.Close()
	m := &bulk.Manifest{RequiresAccessToken: true}
	f := bulk.OutputFile{Type: "Patient", URL: other.URL + "/file"}
	for _, allow := range []bool{false, true} {
		c, _ := bulk.NewClient("http://127.0.0.1:1/fhir", bulk.Options{Authorizer: &tokenAuth{}, TokenToOtherOrigins: allow})
		readFile(t, c, m, f)
		if sawToken.Load() != allow {
			t.Errorf("TokenToOtherOrigins=%v: token sent = %v", allow, sawToken.Load())
		}
	}
}

func TestDownloadFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults bulkexport.Faults
		check  func(t *testing.T, auth *tokenAuth, st bulkexport.Stats)
	}{
		{"transient 503 on a file is retried", bulkexport.Faults{FileError: 2}, func(t *testing.T, _ *tokenAuth, st bulkexport.Stats) {
			if st.Faults != 1 {
				t.Errorf("Faults = %d, want 1", st.Faults)
			}
		}},
		{"expired token re-authorized", bulkexport.Faults{ExpireToken: true}, func(t *testing.T, auth *tokenAuth, _ bulkexport.Stats) {
			if auth.invalidated.Load() != 1 {
				t.Errorf("Invalidate called %d times, want 1", auth.invalidated.Load())
			}
		}},
		{"concurrent download cap answers 429", bulkexport.Faults{MaxConcurrentDownloads: 1, ThrottleRetryAfter: -1}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim, base := newSim(t, bulkexport.Options{FileSize: 50, Faults: tc.faults,
				Authorize: func(*http.Request) error { return nil }})
			auth := &tokenAuth{}
			c, _ := bulk.NewClient(base, bulk.Options{Authorizer: auth, Sleep: (&recSleep{}).sleep, MaxDownloads: 4,
				Retry: fhir.RetryPolicy{MaxAttempts: 50}})
			job, err := c.Kickoff(context.Background(), bulk.Request{})
			if err != nil {
				t.Fatal(err)
			}
			m, err := c.Wait(context.Background(), job)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for _, f := range m.Output {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if n := readFile(t, c, m, f); n != *f.Count {
						t.Errorf("file %s: %d lines, want %d", f.URL, n, *f.Count)
					}
				}()
			}
			wg.Wait()
			if tc.check != nil {
				tc.check(t, auth, sim.Stats())
			}
		})
	}
}

func TestMaxDownloadsBoundsConcurrency(t *testing.T) {
	sim, base := newSim(t, bulkexport.Options{FileSize: 20})
	c, _ := bulk.NewClient(base, bulk.Options{MaxDownloads: 2, Sleep: (&recSleep{}).sleep})
	job, _ := c.Kickoff(context.Background(), bulk.Request{})
	m, err := c.Wait(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, f := range m.Output {
		wg.Add(1)
		go func() { defer wg.Done(); readFile(t, c, m, f) }()
	}
	wg.Wait()
	if got := sim.Stats().MaxActiveDownloads; got > 2 {
		t.Errorf("MaxActiveDownloads = %d, want <= 2", got)
	}
}
