package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"ehrgate/store"
)

// A chart view through the gateway's HTTP service leaves exactly one
// AuditEvent in the store's trail, naming the patient, and the trail
// verifies.
func TestChartViewIsInTheAuditTrail(t *testing.T) {
	ctx := context.Background()
	ehr := simulatedEHR(2)
	defer ehr.Close()
	g, st, conn := newClinicGateway(t, ctx, ehr.URL)
	if _, err := g.Sync(ctx, conn); err != nil {
		t.Fatal(err)
	}
	pats, err := st.SearchPatients(ctx, store.PatientQuery{Connection: "clinic", Limit: 1})
	if err != nil || len(pats) != 1 {
		t.Fatal(pats, err)
	}
	web := httptest.NewServer(g.Handler())
	defer web.Close()
	resp, err := http.Get(web.URL + "/patients/clinic/" + pats[0].ID)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("chart: %v %v", resp, err)
	}
	resp.Body.Close()
	got, err := st.QueryAudit(ctx, store.AuditQuery{Patient: pats[0].ID})
	if err != nil || len(got) != 1 || got[0].Connection != "clinic" || got[0].Agent != "ehrgate-dashboard" {
		t.Fatalf("audit entries for the patient = %+v, %v; want one chart view by the dashboard", got, err)
	}
	if v, err := st.VerifyAudit(ctx); err != nil || v.Broken != 0 {
		t.Errorf("VerifyAudit = %+v, %v", v, err)
	}
}
