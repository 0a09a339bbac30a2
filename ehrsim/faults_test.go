package ehrsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ehrgate/fhir"
)

func TestFaultKinds(t *testing.T) {
	tests := []struct {
		kind           FaultKind
		retryAfter     time.Duration
		wantStatus     int
		wantRetryAfter string
		wantIssue      string
	}{
		{kind: Fault429, retryAfter: 1500 * time.Millisecond, wantStatus: 429, wantRetryAfter: "2", wantIssue: "throttled"},
		{kind: Fault429, wantStatus: 429, wantRetryAfter: "0", wantIssue: "throttled"},
		{kind: Fault500, wantStatus: 500, wantIssue: "exception"},
		{kind: Fault503, retryAfter: 3 * time.Second, wantStatus: 503, wantRetryAfter: "3", wantIssue: "transient"},
		{kind: FaultSlow, wantStatus: 200},
		{kind: FaultMalformedBody, wantStatus: 200},
	}
	const slow = 50 * time.Millisecond
	for _, tt := range tests {
		for _, path := range []string{"/fhir/Observation/o1", "/fhir/Observation?patient=p1", "/fhir/Nothing/1"} {
			t.Run(fmt.Sprintf("%s retry-after %v %s", tt.kind, tt.retryAfter, path), func(t *testing.T) {
				s, ts := startSmall(t, Options{Faults: Faults{Rate: 1, Kinds: []FaultKind{tt.kind}, RetryAfter: tt.retryAfter, SlowDelay: slow}})
				start := time.Now()
				resp, body := get(t, ts.Client(), ts.URL+path)
				elapsed := time.Since(start)
				wantStatus := tt.wantStatus
				if path == "/fhir/Nothing/1" && tt.kind == FaultSlow {
					wantStatus = 404 // served normally after the delay
				}
				if resp.StatusCode != wantStatus {
					t.Fatalf("GET %s with fault %s: status %d, want %d", path, tt.kind, resp.StatusCode, wantStatus)
				}
				if got := resp.Header.Get("Retry-After"); got != tt.wantRetryAfter {
					t.Errorf("Retry-After = %q, want %q", got, tt.wantRetryAfter)
				}
				if tt.wantIssue != "" {
					if oo := decodeOutcome(t, body); oo.Issue[0].Code != tt.wantIssue {
						t.Errorf("issue code = %q, want %q", oo.Issue[0].Code, tt.wantIssue)
					}
				}
				switch tt.kind {
				case FaultSlow:
					if elapsed < slow {
						t.Errorf("slow fault answered after %v, want at least %v", elapsed, slow)
					}
					if wantStatus == 200 && !json.Valid(body) {
						t.Errorf("slow fault body is not JSON: %s", body)
					}
				case FaultMalformedBody:
					if got := resp.Header.Get("Content-Type"); got != contentType {
						t.Errorf("Content-Type = %q, want %q", got, contentType)
					}
					if json.Valid(body) || len(body) == 0 {
						t.Errorf("malformed body is valid JSON or empty: %q", body)
					}
				}
				want := Stats{Requests: 1, Faults: map[FaultKind]int64{tt.kind: 1}}
				if diff := cmp.Diff(want, s.Stats()); diff != "" {
					t.Errorf("Stats() (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestFaultRateAndDeterminism(t *testing.T) {
	run := func(seed int64) []int {
		s, ts := startSmall(t, Options{Faults: Faults{Rate: 0.3, Seed: seed, SlowDelay: time.Millisecond}})
		var statuses []int
		for range 200 {
			resp, body := get(t, ts.Client(), ts.URL+"/fhir/Observation?patient=p1")
			st := resp.StatusCode
			if st == 200 && !json.Valid(body) {
				st = -1
			}
			statuses = append(statuses, st)
		}
		var faults int64
		for _, n := range s.Stats().Faults {
			faults += n
		}
		if faults < 30 || faults > 90 {
			t.Errorf("seed %d: %d faults in 200 requests at rate 0.3", seed, faults)
		}
		return statuses
	}
	a, b := run(7), run(7)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("same seed, different fault sequence (-first +second):\n%s", diff)
	}
	if cmp.Equal(a, run(8)) {
		t.Error("different seeds gave the same fault sequence")
	}
}

func TestSlowFaultHonoursCancellation(t *testing.T) {
	s, ts := startSmall(t, Options{Faults: Faults{Rate: 1, Kinds: []FaultKind{FaultSlow}, SlowDelay: 10 * time.Second}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/fhir/Patient/p1", nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if resp, err := ts.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("slow request answered before its deadline")
	}
	// Close waits for the handler: it must have returned, not slept 10s.
	ts.Close()
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("handler kept running %v after the client gave up", elapsed)
	}
	if got := s.Stats().Faults[FaultSlow]; got != 1 {
		t.Errorf("slow faults = %d, want 1", got)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		opts    Options
		wantErr bool
	}{
		{Options{}, false},
		{Options{PageSize: 10, MaxPageSize: 20, Faults: Faults{Rate: 0.5, Kinds: []FaultKind{Fault429, FaultSlow}}}, false},
		{Options{PageSize: 30, MaxPageSize: 20}, true},
		{Options{PageSize: -1}, true},
		{Options{Faults: Faults{Rate: 1.5}}, true},
		{Options{Faults: Faults{Kinds: []FaultKind{"teapot"}}}, true},
		{Options{Faults: Faults{RetryAfter: -time.Second}}, true},
	}
	for _, tt := range tests {
		if err := tt.opts.Validate(); (err != nil) != tt.wantErr {
			t.Errorf("%+v.Validate() = %v, want error %v", tt.opts, err, tt.wantErr)
		}
	}
	for _, k := range AllFaultKinds {
		if got, err := ParseFaultKind(string(k)); err != nil || got != k {
			t.Errorf("ParseFaultKind(%q) = %q, %v", k, got, err)
		}
	}
}

// syncClient is a minimal retrying FHIR client, as a sync would be: it
// retries throttling, server errors and undecodable bodies, and follows next
// links.
type syncClient struct {
	t      *testing.T
	client *http.Client
}

var errRetry = errors.New("retry")

func (c *syncClient) page(u string) (fhir.Bundle, error) {
	var b fhir.Bundle
	for attempt := 0; ; attempt++ {
		if attempt > 50 {
			return b, fmt.Errorf("GET %s: too many attempts", u)
		}
		err := func() error {
			resp, err := c.client.Get(u)
			if err != nil {
				return fmt.Errorf("GET %s: %w", u, err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return errRetry
			}
			switch {
			case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
				if _, err := strconv.Atoi(resp.Header.Get("Retry-After")); resp.StatusCode != 500 && err != nil {
					return fmt.Errorf("GET %s: status %d without Retry-After", u, resp.StatusCode)
				}
				return errRetry
			case resp.StatusCode != http.StatusOK:
				return fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
			}
			b = fhir.Bundle{}
			if err := json.Unmarshal(body, &b); err != nil {
				return errRetry // a truncated body
			}
			return nil
		}()
		if errors.Is(err, errRetry) {
			continue
		}
		return b, err
	}
}

// collect follows every next link from u, counting entries per type.
func (c *syncClient) collect(u string, counts map[string]int, seen map[string]bool) ([]string, error) {
	var ids []string
	for u != "" {
		b, err := c.page(u)
		if err != nil {
			return nil, err
		}
		for _, e := range b.Entry {
			h, err := fhir.ParseHeader(e.Resource)
			if err != nil {
				return nil, fmt.Errorf("entry %s: %w", e.FullURL, err)
			}
			key := h.ResourceType + "/" + h.ID
			if seen[key] {
				return nil, fmt.Errorf("%s served twice", key)
			}
			seen[key] = true
			counts[h.ResourceType]++
			ids = append(ids, h.ID)
		}
		u = b.LinkURL("next")
	}
	return ids, nil
}

func TestSyncUnderFaults(t *testing.T) {
	s := New(Options{PageSize: 4, Faults: Faults{Rate: 0.3, Seed: 42, SlowDelay: 2 * time.Millisecond}})
	generate(t, s, 12, 15)
	ts := newHTTPServer(t, s)
	c := &syncClient{t: t, client: ts.Client()}

	counts := map[string]int{}
	seen := map[string]bool{}
	patients, err := c.collect(ts.URL+"/fhir/Patient", counts, seen)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s.PatientIDs(), patients); diff != "" {
		t.Fatalf("patients enumerated (-want +got):\n%s", diff)
	}
	// Per-patient searches in parallel, as a sync would run them.
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, len(patients)+1)
	for _, pid := range patients {
		wg.Go(func() {
			local, localSeen := map[string]int{}, map[string]bool{}
			for _, typ := range []string{"Observation", "Condition", "MedicationRequest"} {
				if _, err := c.collect(ts.URL+"/fhir/"+typ+"?patient="+pid, local, localSeen); err != nil {
					errs <- err
					return
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for k := range localSeen {
				if seen[k] {
					errs <- fmt.Errorf("%s served for two patients", k)
				}
				seen[k] = true
			}
			for typ, n := range local {
				counts[typ] += n
			}
		})
	}
	wg.Wait()
	if _, err := c.collect(ts.URL+"/fhir/Medication", counts, seen); err != nil {
		errs <- err
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if diff := cmp.Diff(s.Counts(), counts); diff != "" {
		t.Errorf("synced counts differ from Counts() (-want +got):\n%s", diff)
	}
	st := s.Stats()
	if len(st.Faults) < len(AllFaultKinds) {
		t.Errorf("faults injected %v, want every kind at least once", st.Faults)
	}
	t.Logf("%d requests, faults %v", st.Requests, maps.Collect(maps.All(st.Faults)))
}

func TestUnknownFaultKindsOnly(t *testing.T) {
	s, ts := startSmall(t, Options{Faults: Faults{Rate: 1, Kinds: []FaultKind{"teapot"}}})
	for range 5 {
		if resp, body := get(t, ts.Client(), ts.URL+"/fhir/Patient/p1"); resp.StatusCode != http.StatusOK || !json.Valid(body) {
			t.Fatalf("status %d with only unknown fault kinds configured", resp.StatusCode)
		}
	}
	if got := s.Stats().Faults; len(got) != 0 {
		t.Errorf("faults %v, want none", got)
	}
}
