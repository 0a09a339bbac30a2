package subscriptions_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"ehrgate/fhir/backport"
	"ehrgate/subscriptions"
	"ehrgate/subscriptions/feedeval"
)

// TestEncounterFilter: a subscription filtered by encounter (topic filter,
// or criteria "Type?encounter=") hears the encounter and the resources
// naming it, and nothing else; a server whose topic allows patient filters
// only refuses it and Start says so.
func TestEncounterFilter(t *testing.T) {
	for _, criteria := range []bool{false, true} {
		name := map[bool]string{false: "Topic", true: "Criteria"}[criteria]
		t.Run(name, func(t *testing.T) {
			r := newRig(t, feedeval.RigOptions{Criteria: criteria})
			ctx := context.Background()
			// A first feed admits patients; its latest admission of each is
			// what the next feed's results and prescriptions name.
			changes(t, r, 80, 31)
			// The feed's last admission is its patient's latest.
			var enc string
			last := -1
			for ref := range r.Sim.ResourceVersions() {
				if n, err := strconv.Atoi(strings.TrimPrefix(ref, "Encounter/chg-")); err == nil && n > last {
					last, enc = n, strings.TrimPrefix(ref, "Encounter/")
				}
			}
			if enc == "" {
				t.Fatal("the feed admitted nobody")
			}
			o := r.ManagerOptions()
			o.Connection = "sim-encounter"
			o.Filter = subscriptions.EncounterFilter(enc)
			o.Payload = backport.PayloadFullResource
			o.Reconcile, o.HeartbeatWait, o.GapWait = time.Hour, time.Hour, time.Hour
			var mu sync.Mutex
			var applied []string
			o.Applied = func(a subscriptions.Applied) {
				mu.Lock()
				applied = append(applied, a.Ref)
				mu.Unlock()
			}
			m, stop, err := r.StartManager(ctx, o, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			if criteria {
				n := len(strings.Split(m.Health().Subscription, ","))
				if n != 7 { // Encounter and the six chart types with an encounter parameter
					t.Errorf("%d criteria subscriptions, want 7", n)
				}
			}
			changes(t, r, 300, 32)
			time.Sleep(500 * time.Millisecond)
			mu.Lock()
			got := append([]string(nil), applied...)
			mu.Unlock()
			if len(got) == 0 {
				t.Fatalf("nothing applied for Encounter/%s", enc)
			}
			for _, ref := range got {
				if ref == "Encounter/"+enc {
					continue
				}
				typ, id, _ := strings.Cut(ref, "/")
				resp, err := r.Client.Read(ctx, typ, id)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(resp.Body), `"Encounter/`+enc+`"`) {
					t.Errorf("%s applied, but it is not of Encounter/%s", ref, enc)
				}
			}
		})
	}
	t.Run("NotAllowed", func(t *testing.T) {
		for _, criteria := range []bool{false, true} {
			r := newRig(t, feedeval.RigOptions{Criteria: criteria, NoEncounterFilter: true})
			o := r.ManagerOptions()
			o.Filter = subscriptions.EncounterFilter("e1")
			_, _, err := r.StartManager(context.Background(), o, nil)
			if !errors.Is(err, subscriptions.ErrFilterNotSupported) {
				t.Errorf("criteria=%v: Start with an encounter filter the topic does not allow = %v, want ErrFilterNotSupported", criteria, err)
			}
			o.Filter = subscriptions.PatientFilter("p1")
			_, stop, err := r.StartManager(context.Background(), o, nil)
			if err != nil {
				t.Errorf("criteria=%v: Start with a patient filter = %v", criteria, err)
			} else {
				stop()
			}
		}
	})
}
