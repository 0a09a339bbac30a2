package subscriptions_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"ehrgate/fhir"

	"ehrgate/ehrsim"
	"ehrgate/subscriptions/feedeval"

	_ "ehrgate/store/sqlite"
)

// newRig builds a rig of 20 patients on a fresh sqlite store.
func newRig(t *testing.T, o feedeval.RigOptions) *feedeval.Rig {
	t.Helper()
	if o.Patients == 0 {
		o.Patients = 20
	}
	if o.StoreURL == "" {
		o.StoreURL = "sqlite:" + t.TempDir()
	}
	r, err := feedeval.NewRig(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// converge fails the test unless the store catches up with the simulator
// within d.
func converge(t *testing.T, r *feedeval.Rig, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	n, err := r.WaitConverged(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("after %v, %d simulator resources are not at their version in the store", d, n)
	}
}

func changes(t *testing.T, r *feedeval.Rig, n int, seed uint64) {
	t.Helper()
	if _, err := r.Sim.RunChanges(context.Background(), ehrsim.ChangeOptions{Changes: n, Seed: seed, Base: r.SimURL}); err != nil {
		t.Fatal(err)
	}
}

// TestFullResourceNotificationsApplied is the smallest slice: a topic
// subscription with full-resource payloads, no faults; every change ends
// up in the store at its version, through notifications alone.
func TestFullResourceNotificationsApplied(t *testing.T) {
	r := newRig(t, feedeval.RigOptions{})
	o := r.ManagerOptions()
	o.HeartbeatWait, o.GapWait = time.Hour, time.Hour // no recovery: notifications must do it
	m, stop, err := r.StartManager(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	changes(t, r, 100, 1)
	converge(t, r, 20*time.Second)
	st := m.Stats()
	if st.Recoveries != 0 || st.Refreshes != 0 {
		t.Errorf("Stats = %+v, want no recovery", st)
	}
	if st.Events != 100 {
		t.Errorf("events taken = %d, want 100", st.Events)
	}
}

// TestPayloads: id-only and empty payloads are read back through the
// client.
func TestPayloads(t *testing.T) {
	for _, payload := range []string{"id-only", "empty"} {
		t.Run(payload, func(t *testing.T) {
			r := newRig(t, feedeval.RigOptions{})
			o := r.ManagerOptions()
			o.Payload = payload
			_, stop, err := r.StartManager(context.Background(), o, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			changes(t, r, 40, 2)
			converge(t, r, 20*time.Second)
		})
	}
}

func httptestServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func clientFor(t *testing.T, s *httptest.Server) *fhir.Client {
	t.Helper()
	c, err := fhir.NewClient(s.URL+"/fhir", fhir.Options{Connection: feedeval.Connection})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
