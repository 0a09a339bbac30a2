package personality_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"ehrgate/ehr"
	"ehrgate/ehrsim"
	"ehrgate/ehrsim/personality"
	"ehrgate/fhir"
	"ehrgate/refresh"
	"ehrgate/store"
	"ehrgate/store/sqlite"
	"ehrgate/synth"
)

const testPatients = 4

// newSim returns a core simulator loaded with the test population.
func newSim(t *testing.T) *ehrsim.Server {
	t.Helper()
	sim := ehrsim.New(ehrsim.Options{})
	err := synth.New(synth.Options{Patients: testPatients, Seed: 7}).Each(func(_ string, raw json.RawMessage) error {
		return sim.Load(raw)
	})
	if err != nil {
		t.Fatalf("loading synth data: %v", err)
	}
	return sim
}

// serveVendor serves the simulator with a vendor personality (vendor ""
// serves the bare core) and returns the FHIR base URL.
func serveVendor(t *testing.T, sim *ehrsim.Server, vendor string, site *ehr.SiteProfile) string {
	t.Helper()
	h := sim.Handler()
	if vendor != "" {
		var err error
		h, err = personality.Wrap(vendor, site, h)
		if err != nil {
			t.Fatalf("Wrap(%q) = %v", vendor, err)
		}
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/fhir"
}

// syncResult is one sync's summary plus the store it wrote.
type syncResult struct {
	sum   refresh.Summary
	store *sqlite.Store
	conn  string
}

// runSync runs the unchanged refresh engine against base with planner and
// client options, into a fresh store.
func runSync(t *testing.T, conn, base string, opts fhir.Options, planner refresh.Planner, pageSize, workers int) syncResult {
	t.Helper()
	ctx := context.Background()
	opts.Connection = conn
	if opts.Sleep == nil {
		opts.Sleep = func(ctx context.Context, d time.Duration) error { return nil }
	}
	client, err := fhir.NewClient(base, opts)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := refresh.New(client, st, refresh.Options{Connection: conn, Planner: planner, PageSize: pageSize, Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := s.Run(ctx)
	if err != nil {
		t.Fatalf("sync %s: %v", conn, err)
	}
	return syncResult{sum: sum, store: st, conn: conn}
}

// adapterSync syncs with a vendor adapter, exactly as cmd wires it.
func adapterSync(t *testing.T, a *ehr.Adapter, base string) syncResult {
	t.Helper()
	return runSync(t, a.Vendor(), base, a.ClientOptions(fhir.Options{}), a.Planner(), a.PageSize(), a.Workers(0))
}

// chart returns a patient's normalized resources per type, each as JSON
// with the connection name removed, sorted by id.
func chart(t *testing.T, r syncResult, patientID string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, typ := range refresh.ChartTypes {
		recs, err := r.store.ListByPatient(context.Background(), r.conn, patientID, typ)
		if err != nil {
			t.Fatal(err)
		}
		sort.Slice(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
		for _, rec := range recs {
			out[typ] = append(out[typ], strings.ReplaceAll(string(withoutExtensions(t, rec.Normalized)), `"`+r.conn+`"`, `"CONN"`))
		}
	}
	return out
}

// withoutExtensions removes the extensions and unknownExtensions members of
// a normalized record: a personality adds its vendor's extensions, which
// TestSyncEveryPersonality checks apart.
func withoutExtensions(t *testing.T, normalized []byte) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(normalized, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "extensions")
	delete(m, "unknownExtensions")
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b // every record is re-encoded, so both sides compare alike
}

// extensionURLs returns, by type, the extension URLs of a patient's
// normalized records as "understood URL" or "unknown URL", each once.
func extensionURLs(t *testing.T, r syncResult, patientID string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, typ := range refresh.ChartTypes {
		recs, err := r.store.ListByPatient(context.Background(), r.conn, patientID, typ)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			var c struct {
				Extensions []struct {
					URL string `json:"url"`
				} `json:"extensions"`
				Unknown []string `json:"unknownExtensions"`
			}
			if err := json.Unmarshal(rec.Normalized, &c); err != nil {
				t.Fatal(err)
			}
			for _, e := range c.Extensions {
				if k := "understood " + e.URL; !slices.Contains(out[typ], k) {
					out[typ] = append(out[typ], k)
				}
			}
			for _, u := range c.Unknown {
				if k := "unknown " + u; !slices.Contains(out[typ], k) {
					out[typ] = append(out[typ], k)
				}
			}
		}
	}
	return out
}

// states returns a patient's fetch states by type.
func states(t *testing.T, r syncResult, patientID string) map[string]store.FetchState {
	t.Helper()
	fs, err := r.store.FetchStates(context.Background(), r.conn, patientID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.FetchState{}
	for _, s := range fs {
		out[s.Type] = s
	}
	return out
}
