package personality_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ehrgate/ehr"
	"ehrgate/ehrsim/personality"
	"ehrgate/fhir"
	"ehrgate/refresh"
	"ehrgate/store"
)

// TestSyncEveryPersonality is the issue's acceptance test: the unchanged
// sync, given each vendor's adapter, gets the same normalized charts from
// every personality as from the bare simulator, except where the vendor
// truly lacks a type, which is then marked not available.
func TestSyncEveryPersonality(t *testing.T) {
	sim := newSim(t)
	baseline := runSync(t, "baseline", serveVendor(t, sim, "", nil), fhir.Options{}, refresh.DefaultPlanner{PageSize: 100}, 100, 4)
	if baseline.sum.Errors != 0 || baseline.sum.Patients != testPatients {
		t.Fatalf("baseline sync: %+v", baseline.sum)
	}
	for _, vendor := range ehr.Vendors() {
		t.Run(vendor, func(t *testing.T) {
			a := ehr.MustLookup(vendor)
			got := adapterSync(t, a, serveVendor(t, sim, vendor, nil))
			if got.sum.Errors != 0 || got.sum.Patients != testPatients || got.sum.Quarantined != 0 {
				t.Fatalf("sync summary = %+v, want %d patients, no errors", got.sum, testPatients)
			}
			for i := range testPatients {
				pid := synthID(i)
				want, have := chart(t, baseline, pid), chart(t, got, pid)
				st := states(t, got, pid)
				for _, typ := range refresh.ChartTypes {
					if typ == "Patient" {
						continue
					}
					if _, served := a.Profile().Types[typ]; len(a.Profile().Types) > 0 && (!served || a.Profile().Types[typ].Disabled != "") {
						if st[typ].Availability != store.NotAvailable || st[typ].Detail == "" {
							t.Errorf("patient %s %s: fetch state %+v, want not available with a reason", pid, typ, st[typ])
						}
						if len(have[typ]) != 0 {
							t.Errorf("patient %s %s: %d resources from a type the vendor lacks", pid, typ, len(have[typ]))
						}
						continue
					}
					if st[typ].Availability != store.Available {
						t.Errorf("patient %s %s: fetch state %+v, want available", pid, typ, st[typ])
					}
					if diff := cmp.Diff(want[typ], have[typ]); diff != "" {
						t.Errorf("patient %s %s chart differs from the bare simulator (-want +got):\n%s", pid, typ, diff)
					}
				}
				if diff := cmp.Diff(want["Patient"], have["Patient"]); diff != "" {
					t.Errorf("patient %s demographics differ (-want +got):\n%s", pid, diff)
				}
				// The vendor's extensions reach the model when its
				// profile documents them, else they are listed as not
				// understood; none appear from nowhere.
				exts := extensionURLs(t, got, pid)
				wantExts := map[string][]string{}
				spec, _ := personality.Lookup(vendor)
				for _, x := range spec.Extensions {
					for _, typ := range x.Types {
						kind := "unknown "
						if slices.ContainsFunc(a.Profile().Extensions, func(r ehr.ExtensionRule) bool { return r.URL == x.URL }) {
							kind = "understood "
						}
						wantExts[typ] = append(wantExts[typ], kind+x.URL)
					}
				}
				if base := extensionURLs(t, baseline, pid); len(base) != 0 {
					t.Fatalf("the bare simulator's patient %s has extensions beyond US Core: %v", pid, base)
				}
				if diff := cmp.Diff(wantExts, exts); diff != "" {
					t.Errorf("patient %s extensions (-want +got):\n%s", pid, diff)
				}
			}
		})
	}
}

func synthID(i int) string {
	return "p" + strings.Repeat("0", 5-len(itoa(i))) + itoa(i)
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

// TestQuirksNeedTheirHandling runs the generic planner (no vendor handling)
// against each personality whose quirk an adapter handles, and checks it
// fails there while the vendor's adapter does not.
func TestQuirksNeedTheirHandling(t *testing.T) {
	sim := newSim(t)
	tests := []struct {
		vendor string
		typ    string // the type whose fetch fails without the handling
		status int
	}{
		{"epic", "Observation", 400},         // category fan-out
		{"athena", "MedicationRequest", 400}, // intent required
	}
	for _, tc := range tests {
		t.Run(tc.vendor, func(t *testing.T) {
			base := serveVendor(t, sim, tc.vendor, nil)
			a := ehr.MustLookup(tc.vendor)
			// Everything the adapter does except planning: only the quirk's
			// handling is missing.
			generic := runSync(t, "generic-on-"+tc.vendor, base, a.ClientOptions(fhir.Options{}),
				refresh.DefaultPlanner{PageSize: a.PageSize()}, a.PageSize(), a.Workers(0))
			if generic.sum.Errors != testPatients {
				t.Errorf("generic planner on %s: %d errors, want %d (one per patient)", tc.vendor, generic.sum.Errors, testPatients)
			}
			st := states(t, generic, synthID(0))[tc.typ]
			if st.Availability != store.Failed || !strings.Contains(st.Detail, "400") {
				t.Errorf("generic planner %s state = %+v, want failed with HTTP %d", tc.typ, st, tc.status)
			}
			got := adapterSync(t, a, base)
			if got.sum.Errors != 0 {
				t.Errorf("%s adapter: %d errors, want 0", tc.vendor, got.sum.Errors)
			}
		})
	}
}

// TestEpicMissingCategoryShape checks the Epic personality's refusal has
// the recorded shape (HTTP 400, severity fatal, code required) and that the
// epic adapter classifies it as an invalid request, not "not supported".
func TestEpicMissingCategoryShape(t *testing.T) {
	sim := newSim(t)
	base := serveVendor(t, sim, "epic", nil)
	c, err := fhir.NewClient(base, fhir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Search(context.Background(), "Observation", fhir.NewQuery().Patient(synthID(0)))
	var fe *fhir.Error
	if !errors.As(err, &fe) || fe.StatusCode != 400 || fe.Outcome == nil || fe.Outcome.Issue[0].Code != "required" || fe.Outcome.Issue[0].Severity != "fatal" {
		t.Fatalf("Observation without category: %v, want 400 fatal required", err)
	}
	if c := ehr.MustLookup("epic").Classify(err); c != ehr.ClassInvalid {
		t.Errorf("Classify = %q, want %q", c, ehr.ClassInvalid)
	}
}

// TestRateLimitNeedsClientPacing shows the athena personality's rate limit
// refuses an unpaced client, and the adapter's client-side limit avoids it.
func TestRateLimitNeedsClientPacing(t *testing.T) {
	sim := newSim(t)
	base := serveVendor(t, sim, "athena", nil)
	a := ehr.MustLookup("athena")
	noRetry := fhir.Options{Retry: fhir.RetryPolicy{MaxAttempts: 1}}
	unpaced := runSync(t, "unpaced", base, noRetry, a.Planner(), a.PageSize(), 8)
	if unpaced.sum.Errors == 0 {
		t.Errorf("unpaced client: no errors, want some 429s")
	}
	time.Sleep(time.Second) // let the bucket refill
	paced := runSync(t, "paced", base, a.ClientOptions(noRetry), a.Planner(), a.PageSize(), a.Workers(8))
	if paced.sum.Errors != 0 {
		t.Errorf("adapter-paced client: %d errors, want 0", paced.sum.Errors)
	}
}

// TestSiteProfile syncs against a site that switches off a type and a
// search parameter: the sync completes without errors, the type is marked
// not available with the site's reason, and the adapter warns about both.
func TestSiteProfile(t *testing.T) {
	site, err := ehr.ParseSiteProfile([]byte(siteYAML))
	if err != nil {
		t.Fatal(err)
	}
	sim := newSim(t)
	a, err := ehr.MustLookup("epic").WithSite(site)
	if err != nil {
		t.Fatal(err)
	}
	got := adapterSync(t, a, serveVendor(t, sim, "epic", site))
	if got.sum.Errors != 0 || got.sum.Patients != testPatients {
		t.Fatalf("sync = %+v, want no errors", got.sum)
	}
	st := states(t, got, synthID(0))["Immunization"]
	if st.Availability != store.NotAvailable || st.Detail == "" {
		t.Errorf("Immunization state = %+v, want not available with a reason", st)
	}
	want := []string{
		`site st-example switches off Immunization: Immunizations are kept in the state registry.`,
		`site st-example disables the Observation search parameter "code"`,
	}
	if diff := cmp.Diff(want, a.Warnings()); diff != "" {
		t.Errorf("Warnings() (-want +got):\n%s", diff)
	}
	if n := got.sum.Resources["Immunization"]; n != 0 {
		t.Errorf("%d Immunizations synced from a site that switched them off", n)
	}
	if !slices.Contains(refresh.ChartTypes, "Immunization") {
		t.Fatal("test assumes Immunization is a chart type")
	}
}

const siteYAML = `
name: st-example
vendor: epic
disabled_types:
  Immunization: "Immunizations are kept in the state registry."
disabled_params:
  Observation: [code]
local_code_systems:
  - system: urn:oid:1.2.840.114350.1.13.999.2.7.2.768282
    types: [Observation]
    description: local lab codes
page_size: 50
`

// TestPartialPageFailureIsNotDropped fails every second page of a vendor's
// searches: the sync must count errors and mark the types failed, never
// store a silently shorter chart as complete.
func TestPartialPageFailureIsNotDropped(t *testing.T) {
	sim := newSim(t)
	h, err := personality.Wrap("nextgen", nil, sim.Handler())
	if err != nil {
		t.Fatal(err)
	}
	failing := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("_cursor") && strings.HasSuffix(r.URL.Path, "/Observation") {
			fhir.WriteOutcome(w, http.StatusBadRequest, "error", "processing", "page expired")
			return
		}
		h.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(failing)
	defer srv.Close()
	a := ehr.MustLookup("nextgen")
	got := adapterSync(t, a, srv.URL+"/fhir")
	if got.sum.Errors == 0 {
		t.Fatal("sync reported no errors although Observation pages failed")
	}
	failed := 0
	for i := range testPatients {
		st := states(t, got, synthID(i))["Observation"]
		switch {
		case st.Availability == store.Failed:
			failed++
		case st.Count >= a.PageSize():
			// A full first page means a second page was asked for and failed.
			t.Errorf("patient %d Observation %s with %d resources after a failed page", i, st.Availability, st.Count)
		}
	}
	if failed == 0 {
		t.Error("no patient's Observation fetch marked failed")
	}
}
