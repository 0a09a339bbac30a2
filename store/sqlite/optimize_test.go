package sqlite

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"ehrgate/store"
)

// TestPatientListingUsesItsIndex: with the statistics the store keeps, a
// patient's resources are found through resources_by_patient, not by
// scanning every resource of the type (which the planner chose without
// statistics: 100x slower on a 10,000-patient store).
func TestPatientListingUsesItsIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	var recs []store.Record
	for p := 0; p < 300; p++ {
		for o := 0; o < 20; o++ {
			id := fmt.Sprintf("p%03d-obs-%02d", p, o)
			recs = append(recs, store.Record{Key: store.Key{Connection: "c", Type: "Observation", ID: id, VersionID: "1"},
				PatientID: fmt.Sprintf("p%03d", p), Raw: []byte(`{"resourceType":"Observation","id":"` + id + `"}`),
				FetchedAt: time.Unix(0, 0)})
		}
	}
	if _, err := s.PutResources(ctx, recs); err != nil {
		t.Fatal(err)
	}
	plan := func(s *Store) string {
		rows, err := s.r.QueryContext(ctx, `EXPLAIN QUERY PLAN `+selectPatientPlanProbe, "c", "p007", "Observation")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			out = append(out, detail)
		}
		return strings.Join(out, "; ")
	}
	s.optimize(ctx) // what the refresher does while the store is open
	if got := plan(s); !strings.Contains(got, "resources_by_patient") {
		t.Errorf("after optimize, the plan of a patient listing is %q, want it through resources_by_patient", got)
	}
	s.Close()
	s, err = OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := plan(s); !strings.Contains(got, "resources_by_patient") {
		t.Errorf("after reopening, the plan is %q, want resources_by_patient", got)
	}
	got, err := s.ListRawByPatient(ctx, "c", "p007", "Observation")
	if err != nil || len(got) != 20 {
		t.Errorf("ListRawByPatient = %d records, %v; want 20", len(got), err)
	}
}

// selectPatientPlanProbe is the query ListByPatient runs (sqlstore's
// selectRecord with its patient filter).
const selectPatientPlanProbe = `SELECT v.raw FROM resources c JOIN resource_versions v
	ON v.connection=c.connection AND v.type=c.type AND v.id=c.id AND v.version_id=c.version_id
	WHERE c.connection=? AND c.patient_id=? AND c.type=? ORDER BY c.id`
