package ehrsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// TestConcurrentLoadAndSearch runs reads, searches and replacements at once;
// run with -race. Searches must always see whole, valid bundles.
func TestConcurrentLoadAndSearch(t *testing.T) {
	s := New(Options{PageSize: 5})
	generate(t, s, 10, 20)
	ts := newHTTPServer(t, s)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				id := fmt.Sprintf("pat%03d-%04d", i%10, i%19)
				typ := []string{"Observation", "Observation", "Condition", "MedicationRequest"}[(i%19)%4]
				raw := fmt.Sprintf(`{"resourceType":%q,"id":%q,"status":"amended","subject":{"reference":"Patient/pat%03d"}}`, typ, id, (i+w)%10)
				if err := s.Load(json.RawMessage(raw)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for w := range 4 {
		wg.Go(func() {
			for i := range 30 {
				u := fmt.Sprintf("%s/fhir/Observation?patient=pat%03d", ts.URL, (i+w)%10)
				for u != "" {
					resp, err := ts.Client().Get(u)
					if err != nil {
						errs <- err
						return
					}
					var b struct {
						Link  []struct{ Relation, URL string }
						Entry []json.RawMessage
					}
					err = json.NewDecoder(resp.Body).Decode(&b)
					resp.Body.Close()
					if err != nil || resp.StatusCode != http.StatusOK {
						errs <- fmt.Errorf("GET %s: %d %v", u, resp.StatusCode, err)
						return
					}
					u = ""
					for _, l := range b.Link {
						if l.Relation == "next" {
							u = l.URL
						}
					}
				}
				_ = s.Counts()
				_ = s.PatientIDs()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := s.Counts()["Patient"]; got != 10 {
		t.Errorf("Counts()[Patient] = %d, want 10", got)
	}
}
