package dashboard_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"ehrgate/audit"
	"ehrgate/dashboard"
)

type recorder struct {
	mu     sync.Mutex
	events []audit.Event
	err    error
}

func (r *recorder) Record(_ context.Context, e audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	if err := e.Validate(); err != nil {
		return err
	}
	r.events = append(r.events, e)
	return nil
}

// Every chart view and patient search is recorded before the page is
// sent; pages without patient data are not; when the trail cannot take the
// record, the page is refused and shows nothing of the patient.
func TestViewsOfPatientDataAreAudited(t *testing.T) {
	rec := &recorder{}
	h := dashboard.New(fixture(), dashboard.Options{Audit: rec}).Handler()

	if res, _ := get(t, h, "/patients/sim-epic/"+adaID); res.StatusCode != http.StatusOK {
		t.Fatalf("chart = %d", res.StatusCode)
	}
	if res, _ := get(t, h, "/patients?q=ada"); res.StatusCode != http.StatusOK {
		t.Fatalf("search = %d", res.StatusCode)
	}
	get(t, h, "/quality")
	get(t, h, "/patients/sim-epic/nobody")
	if len(rec.events) != 2 {
		t.Fatalf("recorded %d events, want 2 (the chart and the search): %+v", len(rec.events), rec.events)
	}
	read, search := rec.events[0], rec.events[1]
	if read.Action != audit.ActionRead || read.Patient.ID != adaID || read.Patient.Connection != "sim-epic" ||
		read.Agent.ClientID != "ehrgate-dashboard" || read.Agent.Address == "" {
		t.Errorf("chart view event = %+v", read)
	}
	if search.Action != audit.ActionExecute || search.Query != "q=ada" || len(search.Resources) != 1 || search.Patient.ID != adaID {
		t.Errorf("search event = %+v", search)
	}

	rec.err = errors.New("store down")
	res, body := get(t, h, "/patients/sim-epic/"+adaID)
	if res.StatusCode != http.StatusServiceUnavailable || strings.Contains(body, "Ada") || strings.Contains(body, "MRN-1001") {
		t.Errorf("chart with the trail down = %d, shows patient data: %v", res.StatusCode, strings.Contains(body, "Ada"))
	}
	res, body = get(t, h, "/patients?q=ada")
	if res.StatusCode != http.StatusServiceUnavailable || strings.Contains(body, "Lovelace") {
		t.Errorf("search with the trail down = %d, shows results: %v", res.StatusCode, strings.Contains(body, "Lovelace"))
	}
}
