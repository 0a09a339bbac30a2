package cdshooks_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"ehrgate/audit"
	"ehrgate/cdshooks"
	"ehrgate/ehrsim/cdsclient"
	"ehrgate/store"
)

// TestFeedbackEndpoint: feedback is authenticated like the service calls
// (unsigned or replayed: 401, nothing stored), audited before it is
// stored (trail down: 503, nothing stored), checked (400), and recorded
// with the kind and urgency of the card when this process sent it.
func TestFeedbackEndpoint(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	svc := e.service(t, cdshooks.ServiceOrderSelect)
	resp, err := e.sim.Invoke(ctx, e.cds.URL, svc, cdsclient.Call{FillPrefetch: true,
		Context: orderContext(patPenicillin, draftOrder("d1", patPenicillin, amoxicillin))})
	if err != nil || resp.Status != http.StatusOK || len(resp.Cards) != 1 {
		t.Fatalf("order-select = %v %+v", err, resp)
	}
	card := resp.Cards[0]
	fbURL := e.svc.ServiceURL(svc.ID) + "/feedback"
	body := `{"feedback":[{"card":"` + card.UUID + `","outcome":"overridden","overrideReason":{"reason":` +
		`{"code":"tolerated-before","system":"https://ehrgate.example/cds/override-reason"},"userComment":"Penny took it in 2019"},` +
		`"outcomeTimestamp":"2026-12-07T10:00:00Z"}]}`
	stored := func() []cdshooks.FeedbackRecord {
		t.Helper()
		fb, err := e.svc.Feedback(ctx, svc.ID)
		if err != nil {
			t.Fatal(err)
		}
		return fb
	}

	// Unsigned, and replayed: refused, nothing stored.
	if st, b := postRaw(t, fbURL, "", body); st != http.StatusUnauthorized {
		t.Errorf("unsigned feedback = %d %s, want 401", st, b)
	}
	tok, _ := e.sim.Token(e.svc.ServiceURL(svc.ID))
	if st, b := postRaw(t, fbURL, tok, body); st != http.StatusOK {
		t.Fatalf("signed feedback = %d %s", st, b)
	}
	if st, _ := postRaw(t, fbURL, tok, body); st != http.StatusUnauthorized {
		t.Errorf("replayed feedback JWT = %d, want 401", st)
	}
	fb := stored()
	if len(fb) != 1 || fb[0].Outcome != "overridden" || fb[0].OverrideReason == nil || fb[0].OverrideReason.Code != "tolerated-before" ||
		fb[0].Kind != cdshooks.MatchClass || fb[0].Indicator != cdshooks.IndicatorCritical || !fb[0].HadComment {
		t.Fatalf("stored feedback = %+v, want one class/critical card overridden (tolerated-before) with a comment", fb)
	}
	names, _ := e.st.ListDocuments(ctx, cdshooks.DocFeedback)
	for _, n := range names {
		doc, _ := e.st.GetDocument(ctx, cdshooks.DocFeedback, n)
		if strings.Contains(string(doc.Body), "Penny") {
			t.Errorf("the free-text comment was stored: %s", doc.Body)
		}
	}
	creates := 0
	es, _ := e.st.QueryAudit(ctx, store.AuditQuery{})
	for _, x := range es {
		if x.Action == string(audit.ActionCreate) && x.Agent == "sim-ehr" {
			creates++
		}
	}
	if creates != 1 {
		t.Errorf("audit events for the feedback = %d, want 1", creates)
	}

	// Bad bodies: 400.
	for _, bad := range []string{`{}`, `{"feedback":[{"card":"x","outcome":"accepted","outcomeTimestamp":"t"}]}`} {
		tok, _ := e.sim.Token(e.svc.ServiceURL(svc.ID))
		if st, _ := postRaw(t, fbURL, tok, bad); st != http.StatusBadRequest {
			t.Errorf("feedback %s = %d, want 400", bad, st)
		}
	}

	// A card this process did not send: recorded without a kind.
	other := "0d5c1b8e-4b7e-4f4e-9d5e-2a7f3f0c9b11"
	if st, err := e.sim.Feedback(ctx, e.cds.URL, svc.ID, other, []string{"5d1b1c2a-0b3c-4d5e-8f9a-1b2c3d4e5f60"}, nil); err != nil || st != http.StatusOK {
		t.Fatalf("feedback on another card = %d %v", st, err)
	}
	for _, f := range stored() {
		if f.Card == other && (f.Kind != "" || f.Outcome != "accepted") {
			t.Errorf("feedback on a card not sent here = %+v", f)
		}
	}

	// The audit trail down: 503, nothing more stored.
	n := len(stored())
	e.rec.setFail(true)
	if st, err := e.sim.Feedback(ctx, e.cds.URL, svc.ID, card.UUID, nil, nil); err != nil || st != http.StatusServiceUnavailable {
		t.Errorf("feedback with the audit trail down = %d %v, want 503", st, err)
	}
	e.rec.setFail(false)
	if got := len(stored()); got != n {
		t.Errorf("feedback stored while the audit trail was down: %d records, want %d", got, n)
	}
}

// TestPagedPrefetch: a prefetched list with a next link is incomplete
// (412 without fhirAuthorization), except when the next link repeats
// self, a server quirk that marks the last page (as fhir.Client reads it).
func TestPagedPrefetch(t *testing.T) {
	e := newEnv(t)
	svc := e.service(t, cdshooks.ServiceOrderSelect)
	page := func(next string) json.RawMessage {
		return json.RawMessage(`{"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":"https://ehr.example/AllergyIntolerance?patient=pen1"},` +
			`{"relation":"next","url":"` + next + `"}],"entry":[{"resource":` +
			allergyJSON("a1", patPenicillin, penicillinCode, activeConfirmed+`,"category":["medication"],"criticality":"high"`) + `}]}`)
	}
	for _, tc := range []struct {
		next  string
		want  int
		cards int
	}{
		{"https://ehr.example/AllergyIntolerance?patient=pen1", http.StatusOK, 1},
		{"https://ehr.example/AllergyIntolerance?patient=pen1&page=2", http.StatusPreconditionFailed, 0},
	} {
		resp, err := e.sim.Invoke(context.Background(), e.cds.URL, svc, cdsclient.Call{
			Context:  orderContext(patPenicillin, draftOrder("d1", patPenicillin, amoxicillin)),
			Prefetch: map[string]json.RawMessage{"allergies": page(tc.next)}})
		if err != nil || resp.Status != tc.want || len(resp.Cards) != tc.cards {
			t.Errorf("prefetch with next %s = %v %d %d cards, want %d with %d", tc.next, err, resp.Status, len(resp.Cards), tc.want, tc.cards)
		}
	}
}
