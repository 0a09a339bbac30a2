package ehrsim

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ehrgate/fhir"
)

// TestFHIRClientSync runs ehrgate's own FHIR client against the simulator
// with faults on: reads, per-patient searches with includes, and paging
// must end with exactly the server's Counts().
func TestFHIRClientSync(t *testing.T) {
	s := New(Options{PageSize: 6, Faults: Faults{Rate: 0.3, Seed: 3, SlowDelay: time.Millisecond, RetryAfter: time.Second}})
	generate(t, s, 15, 25)
	ts := newHTTPServer(t, s)
	c, err := fhir.NewClient(ts.URL+"/fhir", fhir.Options{
		HTTPClient: ts.Client(),
		Retry:      fhir.RetryPolicy{MaxAttempts: 30},
		Sleep:      func(context.Context, time.Duration) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got := map[string]int{}
	seen := map[string]bool{}
	collect := func(typ string, q *fhir.Query) {
		t.Helper()
		err := c.SearchAll(ctx, typ, q, func(_ context.Context, b *fhir.Bundle, _ string) error {
			for _, e := range b.Entry {
				h, err := fhir.ParseHeader(e.Resource)
				if err != nil {
					return err
				}
				key := h.ResourceType + "/" + h.ID
				if e.Search != nil && e.Search.Mode == "include" {
					continue // counted from its own search
				}
				if seen[key] {
					t.Errorf("%s served twice", key)
				}
				seen[key] = true
				got[h.ResourceType]++
			}
			return nil
		})
		if err != nil {
			t.Fatalf("SearchAll(%s, %s): %v", typ, q.Encode(), err)
		}
	}
	collect("Patient", fhir.NewQuery())
	for _, pid := range s.PatientIDs() {
		collect("Observation", fhir.NewQuery().Patient(pid).Count(4))
		collect("Condition", fhir.NewQuery().Patient(pid).LastUpdated(fhir.LE, time.Now().Add(time.Hour)))
		collect("MedicationRequest", fhir.NewQuery().Patient(pid).Include("MedicationRequest:medication"))
	}
	collect("Medication", fhir.NewQuery())
	if diff := cmp.Diff(s.Counts(), got); diff != "" {
		t.Errorf("synced counts (-Counts +synced):\n%s", diff)
	}

	resp, err := c.Read(ctx, "Patient", "pat003")
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if resp.ETag != `W/"1"` {
		t.Errorf("Read ETag = %q", resp.ETag)
	}
	_, err = c.Read(ctx, "Patient", "nobody")
	if !errors.Is(err, fhir.ErrNotFound) {
		t.Errorf("Read(unknown) = %v, want ErrNotFound", err)
	}
	_, err = c.Search(ctx, "Observation", fhir.NewQuery().Add("nonsense", "1"))
	if !errors.Is(err, fhir.ErrNotSupported) {
		t.Errorf("Search(unknown param) = %v, want ErrNotSupported", err)
	}
	if _, err := c.Capabilities(ctx); err != nil {
		t.Errorf("Capabilities: %v", err)
	}
	t.Logf("stats: %+v", s.Stats())
}
