// Package storetest is the conformance suite every store backend runs:
//
//	func TestConformance(t *testing.T) {
//		storetest.RunTests(t, func(t *testing.T) store.Store { return openMyBackend(t) })
//	}
//
// Each subtest gets a fresh, empty store from the factory.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"ehrgate/store"
)

// RunTests runs the whole suite against stores made by newStore.
func RunTests(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"PutNewThenUnchanged", testPutNewThenUnchanged},
		{"RawKeptByteForByte", testRawKeptByteForByte},
		{"NewVersionUpdates", testNewVersionUpdates},
		{"SameVersionDifferentBytesKeepsBoth", testSameVersionDifferentBytes},
		{"NoVersionUsesContentHash", testNoVersion},
		{"ListByPatient", testListByPatient},
		{"SearchPatients", testSearchPatients},
		{"FetchStates", testFetchStates},
		{"Quarantine", testQuarantine},
		{"Stats", testStats},
		{"ConcurrentWriters", testConcurrentWriters},
		{"GetNotFound", testGetNotFound},
		{"InvalidRecordRejectsBatch", testInvalidRecord},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func rec(conn, typ, id, version, patient string, raw string) store.Record {
	return store.Record{
		Key:         store.Key{Connection: conn, Type: typ, ID: id, VersionID: version},
		PatientID:   patient,
		Raw:         []byte(raw),
		Normalized:  []byte(`{"source":{"type":"` + typ + `","id":"` + id + `"}}`),
		LastUpdated: t0,
		FetchedAt:   t0.Add(time.Minute),
		Source:      "test://" + typ + "/" + id,
	}
}

func put(t *testing.T, s store.Store, recs ...store.Record) []store.Change {
	t.Helper()
	ch, err := s.PutResources(context.Background(), recs)
	if err != nil {
		t.Fatalf("PutResources: %v", err)
	}
	if len(ch) != len(recs) {
		t.Fatalf("PutResources returned %d changes for %d records", len(ch), len(recs))
	}
	return ch
}

func count(t *testing.T, s store.Store) (current, versions int) {
	t.Helper()
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	for _, tc := range st.Resources {
		current += tc.Count
	}
	return current, st.Versions
}

func testPutNewThenUnchanged(t *testing.T, s store.Store) {
	r := rec("c1", "Observation", "o1", "1", "p1", `{"resourceType":"Observation","id":"o1"}`)
	if got := put(t, s, r); got[0] != store.New {
		t.Errorf("first put = %v, want new", got[0])
	}
	if got := put(t, s, r); got[0] != store.Unchanged {
		t.Errorf("second put = %v, want unchanged", got[0])
	}
	if cur, ver := count(t, s); cur != 1 || ver != 1 {
		t.Errorf("after two identical puts: current=%d versions=%d, want 1 and 1", cur, ver)
	}
}

func testRawKeptByteForByte(t *testing.T, s store.Store) {
	raw := "{ \"resourceType\" : \"Patient\",\n \"id\":\"p1\", \"name\":[{\"text\":\"Zoë \\u00e9\"}] }"
	r := rec("c1", "Patient", "p1", "7", "p1", raw)
	put(t, s, r)
	got, err := s.Get(context.Background(), "c1", "Patient", "p1")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !bytes.Equal(got.Raw, []byte(raw)) {
		t.Errorf("Get().Raw = %q, want %q", got.Raw, raw)
	}
	if got.VersionID != "7" || got.PatientID != "p1" || got.Source != r.Source {
		t.Errorf("Get() = version %q patient %q source %q, want 7, p1, %q", got.VersionID, got.PatientID, got.Source, r.Source)
	}
	if !got.LastUpdated.Equal(t0) || !got.FetchedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("Get() times = %v, %v; want %v, %v", got.LastUpdated, got.FetchedAt, t0, t0.Add(time.Minute))
	}
	if !bytes.Equal(got.Normalized, r.Normalized) {
		t.Errorf("Get().Normalized = %s, want %s", got.Normalized, r.Normalized)
	}
}

func testNewVersionUpdates(t *testing.T, s store.Store) {
	put(t, s, rec("c1", "Condition", "x", "1", "p1", `{"v":1}`))
	if got := put(t, s, rec("c1", "Condition", "x", "2", "p1", `{"v":2}`)); got[0] != store.Updated {
		t.Errorf("put of version 2 = %v, want updated", got[0])
	}
	got, err := s.Get(context.Background(), "c1", "Condition", "x")
	if err != nil {
		t.Fatal(err)
	}
	if got.VersionID != "2" || string(got.Raw) != `{"v":2}` {
		t.Errorf("current = version %q raw %s, want version 2", got.VersionID, got.Raw)
	}
	if cur, ver := count(t, s); cur != 1 || ver != 2 {
		t.Errorf("current=%d versions=%d, want 1 and 2 (old version kept)", cur, ver)
	}
}

func testSameVersionDifferentBytes(t *testing.T, s store.Store) {
	put(t, s, rec("c1", "Condition", "x", "1", "p1", `{"v":"a"}`))
	if got := put(t, s, rec("c1", "Condition", "x", "1", "p1", `{"v":"b"}`)); got[0] != store.Updated {
		t.Errorf("put of changed bytes under the same versionId = %v, want updated", got[0])
	}
	got, _ := s.Get(context.Background(), "c1", "Condition", "x")
	if string(got.Raw) != `{"v":"b"}` {
		t.Errorf("current raw = %s, want the newer bytes", got.Raw)
	}
	if _, ver := count(t, s); ver != 2 {
		t.Errorf("versions = %d, want 2: the earlier bytes must not be overwritten", ver)
	}
}

func testNoVersion(t *testing.T, s store.Store) {
	put(t, s, rec("c1", "Procedure", "x", "", "p1", `{"a":1}`))
	if got := put(t, s, rec("c1", "Procedure", "x", "", "p1", `{"a":1}`)); got[0] != store.Unchanged {
		t.Errorf("same bytes, no versionId = %v, want unchanged", got[0])
	}
	if got := put(t, s, rec("c1", "Procedure", "x", "", "p1", `{"a":2}`)); got[0] != store.Updated {
		t.Errorf("new bytes, no versionId = %v, want updated", got[0])
	}
}

func testListByPatient(t *testing.T, s store.Store) {
	put(t, s,
		rec("c1", "Observation", "o2", "1", "p1", `{}`),
		rec("c1", "Observation", "o1", "1", "p1", `{}`),
		rec("c1", "Observation", "o3", "1", "p2", `{}`),
		rec("c2", "Observation", "o4", "1", "p1", `{}`),
		rec("c1", "Condition", "k1", "1", "p1", `{}`),
	)
	got, err := s.ListByPatient(context.Background(), "c1", "p1", "Observation")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	if fmt.Sprint(ids) != "[o1 o2]" {
		t.Errorf("ListByPatient(c1, p1, Observation) ids = %v, want [o1 o2]", ids)
	}
}

func patientRec(conn, id, name, mrn, birth string) store.Record {
	r := rec(conn, "Patient", id, "1", id, `{"resourceType":"Patient","id":"`+id+`"}`)
	r.Patient = &store.PatientKeys{Names: []string{name}, MRNs: []string{mrn}, BirthDate: birth}
	return r
}

func testSearchPatients(t *testing.T, s store.Store) {
	put(t, s,
		patientRec("c1", "a", "Ana María Lopez", "MRN-001", "1980-02-03"),
		patientRec("c1", "b", "Bob Smith", "MRN-002", "1975-12-30"),
		patientRec("c2", "c", "Anabel Smith", "X9", "1980-02-03"),
	)
	tests := []struct {
		q    store.PatientQuery
		want string
	}{
		{store.PatientQuery{Text: "smith"}, "[b c]"},
		{store.PatientQuery{Text: "SMITH", Connection: "c1"}, "[b]"},
		{store.PatientQuery{Text: "ana lopez"}, "[a]"},
		{store.PatientQuery{Text: "mrn-002"}, "[b]"},
		{store.PatientQuery{BirthDate: "1980-02-03"}, "[a c]"},
		{store.PatientQuery{Text: "smith", BirthDate: "1980-02-03"}, "[c]"},
		{store.PatientQuery{Text: "nobody"}, "[]"},
		{store.PatientQuery{}, "[a b c]"},
	}
	for _, tc := range tests {
		got, err := s.SearchPatients(context.Background(), tc.q)
		if err != nil {
			t.Fatalf("SearchPatients(%+v): %v", tc.q, err)
		}
		ids := []string{}
		for _, r := range got {
			ids = append(ids, r.ID)
		}
		sort.Strings(ids)
		if fmt.Sprint(ids) != tc.want {
			t.Errorf("SearchPatients(%+v) = %v, want %v", tc.q, ids, tc.want)
		}
	}
}

func testFetchStates(t *testing.T, s store.Store) {
	ctx := context.Background()
	states := []store.FetchState{
		{Connection: "c1", PatientID: "p1", Type: "Observation", Availability: store.Available, Count: 3, FetchedAt: t0},
		{Connection: "c1", PatientID: "p1", Type: "DocumentReference", Availability: store.NotAvailable, FetchedAt: t0, Detail: "not supported"},
	}
	if err := s.PutFetchStates(ctx, states); err != nil {
		t.Fatal(err)
	}
	states[0].Count = 5
	if err := s.PutFetchStates(ctx, states[:1]); err != nil {
		t.Fatal(err)
	}
	got, err := s.FetchStates(ctx, "c1", "p1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("FetchStates = %d states, want 2", len(got))
	}
	byType := map[string]store.FetchState{}
	for _, fs := range got {
		byType[fs.Type] = fs
	}
	if o := byType["Observation"]; o.Count != 5 || o.Availability != store.Available || !o.FetchedAt.Equal(t0) {
		t.Errorf("Observation state = %+v, want count 5 available", o)
	}
	if d := byType["DocumentReference"]; d.Availability != store.NotAvailable || d.Detail != "not supported" {
		t.Errorf("DocumentReference state = %+v, want not_available", d)
	}
}

func testQuarantine(t *testing.T, s store.Store) {
	ctx := context.Background()
	raw := []byte(`{"resourceType":"Observation","id":"bad","subject":12345}`)
	if err := s.Quarantine(ctx, store.QuarantineItem{Connection: "c1", Type: "Observation", ResourceID: "bad",
		Source: "http://x/fhir/Observation?patient=1", Reason: "subject: wrong JSON type", Raw: raw, ReceivedAt: t0}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Quarantined(ctx, "c1", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !bytes.Equal(got[0].Raw, raw) || got[0].ResourceID != "bad" || got[0].Reason == "" {
		t.Errorf("Quarantined = %+v, want the one item with its raw bytes", got)
	}
	if other, _ := s.Quarantined(ctx, "c2", 10); len(other) != 0 {
		t.Errorf("Quarantined(c2) = %d items, want 0", len(other))
	}
}

func testStats(t *testing.T, s store.Store) {
	put(t, s,
		rec("c1", "Observation", "o1", "1", "p1", `{}`),
		rec("c1", "Observation", "o2", "1", "p1", `{}`),
		rec("c2", "Patient", "p1", "1", "p1", `{}`),
	)
	_ = s.Quarantine(context.Background(), store.QuarantineItem{Connection: "c1", Reason: "r", Raw: []byte("x")})
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := "[{c1 Observation 2} {c2 Patient 1}]"
	if got := fmt.Sprint(st.Resources); got != want {
		t.Errorf("Stats().Resources = %s, want %s", got, want)
	}
	if st.Quarantined != 1 || st.Versions != 3 {
		t.Errorf("Stats() quarantined=%d versions=%d, want 1 and 3", st.Quarantined, st.Versions)
	}
	if len(st.LastFetched) != 0 {
		t.Errorf("Stats().LastFetched = %v before any fetch state, want empty", st.LastFetched)
	}
	later := t0.Add(time.Hour)
	if err := s.PutFetchStates(context.Background(), []store.FetchState{
		{Connection: "c1", PatientID: "p1", Type: "Observation", Availability: store.Available, FetchedAt: t0},
		{Connection: "c1", PatientID: "p2", Type: "Observation", Availability: store.Available, FetchedAt: later},
	}); err != nil {
		t.Fatal(err)
	}
	st, _ = s.Stats(context.Background())
	if got := st.LastFetched["c1"]; !got.Equal(later) {
		t.Errorf("Stats().LastFetched[c1] = %v, want %v (the newest fetch)", got, later)
	}
}

func testConcurrentWriters(t *testing.T, s store.Store) {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				// Every writer writes the same 20 resources: exactly 20 rows must result.
				_, err := s.PutResources(context.Background(), []store.Record{
					rec("c1", "Observation", fmt.Sprintf("o%d", i), "1", "p1", fmt.Sprintf(`{"i":%d}`, i)),
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent PutResources: %v", err)
	}
	if cur, ver := count(t, s); cur != 20 || ver != 20 {
		t.Errorf("after concurrent duplicate writes: current=%d versions=%d, want 20 and 20", cur, ver)
	}
}

func testGetNotFound(t *testing.T, s store.Store) {
	_, err := s.Get(context.Background(), "c1", "Patient", "missing")
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(missing) error = %v, want store.ErrNotFound", err)
	}
}

func testInvalidRecord(t *testing.T, s store.Store) {
	good := rec("c1", "Observation", "o1", "1", "p1", `{}`)
	bad := rec("c1", "", "o2", "1", "p1", `{}`)
	if _, err := s.PutResources(context.Background(), []store.Record{good, bad}); err == nil {
		t.Fatal("PutResources with a record lacking a type succeeded, want an error")
	}
	if cur, _ := count(t, s); cur != 0 {
		t.Errorf("after a rejected batch, current = %d, want 0 (the batch is one transaction)", cur)
	}
}
