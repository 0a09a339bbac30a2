package cdshooks_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"ehrgate/audit"
	"ehrgate/cdshooks"
	"ehrgate/ehrsim/cdsclient"
	"ehrgate/fhir"
	"ehrgate/normalize"
	"ehrgate/refresh"
	"ehrgate/store"
)

// TestLoopSimulatorOrdersAmoxicillinForPenicillinAllergy runs the whole
// loop: the simulated EHR discovers ehrgate's services, fills the prefetch
// templates from its own FHIR server, calls order-select with a signed JWT
// and a draft amoxicillin order for a patient allergic to penicillin, gets
// a critical card naming the allergy, accepts the suggested alternative
// and sends feedback, which ehrgate records. The same order for a patient
// without allergies gets no card.
func TestLoopSimulatorOrdersAmoxicillinForPenicillinAllergy(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	svc := e.service(t, cdshooks.ServiceOrderSelect)
	if svc.Prefetch["allergies"] != "AllergyIntolerance?patient={{context.patientId}}" {
		t.Fatalf("discovery prefetch = %v", svc.Prefetch)
	}

	resp, err := e.sim.Invoke(ctx, e.cds.URL, svc, cdsclient.Call{FillPrefetch: true,
		Context: orderContext(patPenicillin, draftOrder("draft-1", patPenicillin, amoxicillin))})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusOK || len(resp.Cards) != 1 {
		t.Fatalf("order-select = %d with cards:\n%s\n%s", resp.Status, cardSummaries(resp.Cards), resp.Body)
	}
	card := resp.Cards[0]
	if card.Indicator != "critical" || !strings.Contains(card.Summary, "Penicillin") || !strings.Contains(card.Summary, "amoxicillin") {
		t.Errorf("card = %s: %s, want a critical card naming the penicillin allergy and amoxicillin", card.Indicator, card.Summary)
	}
	if !strings.Contains(card.Detail, "allergy list from the EHR's prefetch") {
		t.Errorf("card detail does not say where the allergy list came from:\n%s", card.Detail)
	}
	if card.SelectionBehavior != "at-most-one" || len(card.Suggestions) != 2 || len(card.OverrideReasons) == 0 || card.UUID == "" {
		t.Fatalf("card suggestions = %+v, selection %q, override reasons %d", card.Suggestions, card.SelectionBehavior, len(card.OverrideReasons))
	}
	remove, replace := card.Suggestions[0], card.Suggestions[1]
	if a := remove.Actions; len(a) != 1 || a[0].Type != "delete" || a[0].ResourceID != "MedicationRequest/draft-1" {
		t.Errorf("remove suggestion = %+v", remove)
	}
	if a := replace.Actions; len(a) != 2 || a[1].Type != "create" || !strings.Contains(string(a[1].Resource), "azithromycin") ||
		!strings.Contains(string(a[1].Resource), "Patient/"+patPenicillin) {
		t.Errorf("replace suggestion = %+v", replace)
	}
	if got := e.ehrHit.all(); len(got) == 0 {
		t.Error("the simulator did not fill the prefetch from its FHIR server")
	}

	// The user accepts the alternative; ehrgate records it.
	if st, err := e.sim.Feedback(ctx, e.cds.URL, svc.ID, card.UUID, []string{replace.UUID}, nil); err != nil || st != http.StatusOK {
		t.Fatalf("feedback = %d, %v", st, err)
	}
	fb, err := e.svc.Feedback(ctx, svc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(fb) != 1 || fb[0].Card != card.UUID || fb[0].Outcome != "accepted" || fb[0].AcceptedSuggestions[0] != replace.UUID || fb[0].Client != "sim-ehr" {
		t.Errorf("recorded feedback = %+v", fb)
	}

	// The access is in the audit trail: who (the CDS client for the
	// user), which patient, success.
	es := e.auditFor(t, patPenicillin)
	if len(es) != 1 || es[0].Outcome != string(audit.OutcomeSuccess) || es[0].Agent != "Practitioner/dr-smith" {
		t.Fatalf("audit entries for the patient = %+v", es)
	}
	if !strings.Contains(string(es[0].Event), "sim-ehr") {
		t.Errorf("audit event does not name the CDS client: %s", es[0].Event)
	}

	// The same order for a patient without allergies: no card.
	resp, err = e.sim.Invoke(ctx, e.cds.URL, svc, cdsclient.Call{FillPrefetch: true,
		Context: orderContext(patNone, draftOrder("draft-2", patNone, amoxicillin))})
	if err != nil || resp.Status != http.StatusOK || len(resp.Cards) != 0 {
		t.Fatalf("order-select without allergies = %v, %+v", err, resp)
	}
	if string(resp.Body) != `{"cards":[]}` {
		t.Errorf("empty answer = %s, want {\"cards\":[]}", resp.Body)
	}
}

func TestOrderSignAndLegacyHookAndPatientView(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	// order-sign with both drafts: only amoxicillin conflicts.
	sign := e.service(t, cdshooks.ServiceOrderSign)
	c := orderContext(patPenicillin, draftOrder("a", patPenicillin, amoxicillin), draftOrder("b", patPenicillin, ibuprofen))
	delete(c, "selections")
	resp, err := e.sim.Invoke(ctx, e.cds.URL, sign, cdsclient.Call{FillPrefetch: true, Context: c})
	if err != nil || resp.Status != http.StatusOK || len(resp.Cards) != 1 {
		t.Fatalf("order-sign = %v %+v", err, resp)
	}

	// The legacy medication-prescribe hook carries the orders in
	// context.medications.
	c = orderContext(patPenicillin, draftOrder("a", patPenicillin, amoxicillin))
	c["medications"] = c["draftOrders"]
	delete(c, "draftOrders")
	resp, err = e.sim.Invoke(ctx, e.cds.URL, e.service(t, cdshooks.ServicePrescribe), cdsclient.Call{FillPrefetch: true, Context: c})
	if err != nil || resp.Status != http.StatusOK || len(resp.Cards) != 1 {
		t.Fatalf("medication-prescribe = %v %+v", err, resp)
	}

	// patient-view points out an allergy that orders cannot be checked
	// against.
	pv := e.service(t, cdshooks.ServicePatientView)
	resp, err = e.sim.Invoke(ctx, e.cds.URL, pv, cdsclient.Call{FillPrefetch: true,
		Context: map[string]any{"userId": "Practitioner/dr-smith", "patientId": patText}})
	if err != nil || resp.Status != http.StatusOK || len(resp.Cards) != 1 || !strings.Contains(resp.Cards[0].Detail, "Keflex rash") {
		t.Fatalf("patient-view = %v %+v", err, resp)
	}
	// A hook the service does not answer is refused.
	resp, err = e.sim.Invoke(ctx, e.cds.URL, pv, cdsclient.Call{Hook: "order-sign", FillPrefetch: true,
		Context: map[string]any{"userId": "Practitioner/dr-smith", "patientId": patText}})
	if err != nil || resp.Status != http.StatusBadRequest {
		t.Fatalf("order-sign on the patient-view service = %v %+v", err, resp)
	}
}

// TestMissingPrefetch: without the allergies prefetch the service searches
// fhirServer with fhirAuthorization (its token, within its scopes); with
// neither, or with scopes that do not cover allergies, it answers 412 and
// records the refused access.
func TestMissingPrefetch(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	svc := e.service(t, cdshooks.ServiceOrderSelect)
	c := orderContext(patPenicillin, draftOrder("d", patPenicillin, amoxicillin))

	resp, err := e.sim.Invoke(ctx, e.cds.URL, svc, cdsclient.Call{Context: c})
	if err != nil || resp.Status != http.StatusPreconditionFailed {
		t.Fatalf("no prefetch, no fhirAuthorization = %v %+v", err, resp)
	}
	if !strings.Contains(string(resp.Body), "no fhirAuthorization") {
		t.Errorf("412 body does not say what was missing: %s", resp.Body)
	}
	if es := e.auditFor(t, patPenicillin); len(es) != 1 || es[0].Outcome != string(audit.OutcomeMinor) {
		t.Errorf("audit of the 412 = %+v", es)
	}

	auth := func(scope, patient string) map[string]any {
		m := map[string]any{"access_token": "opaque-token-123", "token_type": "Bearer", "expires_in": 300, "scope": scope, "subject": "ehrgate-cds"}
		if patient != "" {
			m["patient"] = patient
		}
		return m
	}
	resp, err = e.sim.Invoke(ctx, e.cds.URL, svc, cdsclient.Call{Context: c, FHIRAuthorization: auth("patient/AllergyIntolerance.read", patPenicillin)})
	if err != nil || resp.Status != http.StatusOK || len(resp.Cards) != 1 {
		t.Fatalf("with fhirAuthorization = %v %+v", err, resp)
	}
	if !strings.Contains(resp.Cards[0].Detail, "FHIR server") {
		t.Errorf("card does not say the list came from the FHIR server:\n%s", resp.Cards[0].Detail)
	}
	sawToken := false
	for _, h := range e.ehrHit.all() {
		sawToken = sawToken || h == "Bearer opaque-token-123"
	}
	if !sawToken {
		t.Error("the FHIR server never saw the fhirAuthorization token")
	}

	for name, a := range map[string]map[string]any{
		"scope without allergies":   auth("patient/Observation.read", patPenicillin),
		"token for another patient": auth("patient/AllergyIntolerance.read", "someone-else"),
		"v2 scope without search":   auth("user/AllergyIntolerance.r", ""),
	} {
		resp, err = e.sim.Invoke(ctx, e.cds.URL, svc, cdsclient.Call{Context: c, FHIRAuthorization: a})
		if err != nil || resp.Status != http.StatusPreconditionFailed {
			t.Errorf("%s = %v %d %s, want 412", name, err, resp.Status, resp.Body)
		}
	}
}

// TestExpiredFHIRAuthorization: a token whose expires_in has passed by the
// time the service would use it is not used.
func TestExpiredFHIRAuthorization(t *testing.T) {
	var calls int
	e := newEnv(t, func(o *cdshooks.Options) {
		o.Now = func() time.Time {
			calls++
			return time.Now().Add(time.Duration(calls) * 2 * time.Second) // every reading is 2 s later
		}
		o.ClockSkew = time.Hour
	})
	svc := e.service(t, cdshooks.ServiceOrderSelect)
	before := len(e.ehrHit.all())
	resp, err := e.sim.Invoke(context.Background(), e.cds.URL, svc, cdsclient.Call{
		Context: orderContext(patPenicillin, draftOrder("d", patPenicillin, amoxicillin)),
		FHIRAuthorization: map[string]any{"access_token": "t", "token_type": "Bearer", "expires_in": 1,
			"scope": "user/AllergyIntolerance.read", "subject": "ehrgate-cds"}})
	if err != nil || resp.Status != http.StatusPreconditionFailed || !strings.Contains(string(resp.Body), "expired") {
		t.Fatalf("expired fhirAuthorization = %v %d %s", err, resp.Status, resp.Body)
	}
	if len(e.ehrHit.all()) != before {
		t.Error("the service used an expired token")
	}
}

// TestAnswersFromTheStoreForAConfiguredConnection: when fhirServer is a
// connection ehrgate syncs, the allergy list is ehrgate's own copy; a
// source that does not provide allergies gives a card saying so, not
// silence; a patient ehrgate never fetched gives 412.
func TestAnswersFromTheStoreForAConfiguredConnection(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// Re-create the service with the simulator as a configured connection.
	svc2, err := cdshooks.New(cdshooks.Options{BaseURL: e.cds.URL, Store: e.st, Audit: e.rec,
		Connections: []cdshooks.Connection{{Name: "clinic", BaseURL: e.fhir + "/"}}})
	if err != nil {
		t.Fatal(err)
	}
	e.serve(svc2)

	now := time.Now().UTC()
	raw := []byte(ehrResources[4]) // the penicillin allergy of patPenicillin
	n, err := normalize.Normalize(normalize.Ref{Connection: "clinic", Type: "AllergyIntolerance", ID: "alg-pen"}, raw)
	if err != nil {
		t.Fatal(err)
	}
	nb, _ := json.Marshal(n)
	if _, err := e.st.PutResources(ctx, []store.Record{{Key: store.Key{Connection: "clinic", Type: "AllergyIntolerance", ID: "alg-pen", VersionID: "1"},
		PatientID: patPenicillin, Raw: raw, Normalized: nb, FetchedAt: now, Source: "test"}}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.PutFetchStates(ctx, []store.FetchState{
		{Connection: "clinic", PatientID: patPenicillin, Type: "AllergyIntolerance", Availability: store.Available, Count: 1, FetchedAt: now},
		{Connection: "clinic", PatientID: patNone, Type: "AllergyIntolerance", Availability: store.NotAvailable, FetchedAt: now},
	}); err != nil {
		t.Fatal(err)
	}
	svc := e.service(t, cdshooks.ServiceOrderSign)
	resp, err := e.sim.Invoke(ctx, e.cds.URL, svc, cdsclient.Call{Context: orderContext(patPenicillin, draftOrder("d", patPenicillin, amoxicillin))})
	if err != nil || resp.Status != http.StatusOK || len(resp.Cards) != 1 || !strings.Contains(resp.Cards[0].Detail, "ehrgate's copy from clinic") {
		t.Fatalf("from the store = %v %+v", err, resp)
	}
	es, err := e.st.QueryAudit(ctx, store.AuditQuery{Connection: "clinic", Patient: patPenicillin})
	if err != nil || len(es) != 1 || !strings.Contains(string(es[0].Event), "AllergyIntolerance/alg-pen") {
		t.Fatalf("audit of a store read = %v %+v", err, es)
	}

	resp, err = e.sim.Invoke(ctx, e.cds.URL, svc, cdsclient.Call{Context: orderContext(patNone, draftOrder("d", patNone, amoxicillin))})
	if err != nil || resp.Status != http.StatusOK || len(resp.Cards) != 1 || !strings.Contains(resp.Cards[0].Detail, "clinic does not provide allergy lists") ||
		!strings.Contains(resp.Cards[0].Detail, "does **not** mean the patient has no allergies") {
		t.Fatalf("source without allergies = %v %+v", err, resp)
	}

	resp, err = e.sim.Invoke(ctx, e.cds.URL, svc, cdsclient.Call{Context: orderContext(patText, draftOrder("d", patText, amoxicillin))})
	if err != nil || resp.Status != http.StatusPreconditionFailed || !strings.Contains(string(resp.Body), "has not fetched") {
		t.Fatalf("patient never fetched = %v %d %s", err, resp.Status, resp.Body)
	}
}

// TestAuditFailsClosed: when the access cannot be recorded, no cards are
// sent.
func TestAuditFailsClosed(t *testing.T) {
	e := newEnv(t)
	e.rec.setFail(true)
	resp, err := e.sim.Invoke(context.Background(), e.cds.URL, e.service(t, cdshooks.ServiceOrderSelect), cdsclient.Call{FillPrefetch: true,
		Context: orderContext(patPenicillin, draftOrder("d", patPenicillin, amoxicillin))})
	if err != nil || resp.Status != http.StatusServiceUnavailable || strings.Contains(string(resp.Body), "Penicillin") {
		t.Fatalf("with the audit trail down = %v %d %s", err, resp.Status, resp.Body)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	svc := e.service(t, cdshooks.ServiceOrderSelect)
	_, _ = e.sim.Invoke(context.Background(), e.cds.URL, svc, cdsclient.Call{FillPrefetch: true,
		Context: orderContext(patPenicillin, draftOrder("d", patPenicillin, amoxicillin))})
	_, _ = e.sim.Invoke(context.Background(), e.cds.URL, svc, cdsclient.Call{OmitToken: true,
		Context: orderContext(patPenicillin, draftOrder("d", patPenicillin, amoxicillin))})
	mfs, err := e.prom.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
			got[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	for k, want := range map[string]float64{
		"ehrgate_cds_calls_total{code=200,service=drug-allergy-select}":           1,
		"ehrgate_cds_calls_total{code=401,service=drug-allergy-select}":           1,
		"ehrgate_cds_cards_total{indicator=critical,service=drug-allergy-select}": 1,
		"ehrgate_cds_call_duration_seconds{service=drug-allergy-select}":          2,
		"ehrgate_cds_auth_failures_total{reason=missing}":                         1,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
}

// TestOrderSelectWithoutMedication: selecting an order that is not a
// medication reads nothing of the patient and answers no cards.
func TestOrderSelectWithoutMedication(t *testing.T) {
	e := newEnv(t)
	c := orderContext(patText)
	c["draftOrders"] = map[string]any{"resourceType": "Bundle", "entry": []any{map[string]any{"resource": map[string]any{
		"resourceType": "NutritionOrder", "id": "diet", "status": "draft"}}}}
	c["selections"] = []string{"NutritionOrder/diet"}
	resp, err := e.sim.Invoke(context.Background(), e.cds.URL, e.service(t, cdshooks.ServiceOrderSelect), cdsclient.Call{Context: c})
	if err != nil || resp.Status != http.StatusOK || len(resp.Cards) != 0 {
		t.Fatalf("order-select of a diet = %v %+v", err, resp)
	}
	if es := e.auditFor(t, patText); len(es) != 0 {
		t.Errorf("audit entries for a call that read nothing: %+v", es)
	}
}

// TestPlainHTTPFHIRServerRefused: the client's token is not sent to a
// fhirServer over plain http unless the operator allowed it.
func TestPlainHTTPFHIRServerRefused(t *testing.T) {
	e := newEnv(t, func(o *cdshooks.Options) { o.AllowHTTPFHIRServer = false })
	before := len(e.ehrHit.all())
	resp, err := e.sim.Invoke(context.Background(), e.cds.URL, e.service(t, cdshooks.ServiceOrderSelect), cdsclient.Call{
		Context: orderContext(patPenicillin, draftOrder("d", patPenicillin, amoxicillin)),
		FHIRAuthorization: map[string]any{"access_token": "t", "token_type": "Bearer", "expires_in": 300,
			"scope": "user/AllergyIntolerance.read", "subject": "ehrgate-cds"}})
	if err != nil || resp.Status != http.StatusPreconditionFailed || !strings.Contains(string(resp.Body), "https") {
		t.Fatalf("http fhirServer = %v %d %s", err, resp.Status, resp.Body)
	}
	if len(e.ehrHit.all()) != before {
		t.Error("the token was sent over plain http")
	}
}

// TestDraftForAnotherPatientRefused: a draft whose subject is not
// context.patientId is refused rather than checked against the wrong
// allergy list.
func TestDraftForAnotherPatientRefused(t *testing.T) {
	e := newEnv(t)
	resp, err := e.sim.Invoke(context.Background(), e.cds.URL, e.service(t, cdshooks.ServiceOrderSelect), cdsclient.Call{FillPrefetch: true,
		Context: orderContext(patNone, draftOrder("d", patPenicillin, amoxicillin))})
	if err != nil || resp.Status != http.StatusBadRequest || !strings.Contains(string(resp.Body), "another subject") {
		t.Fatalf("draft for another patient = %v %d %s", err, resp.Status, resp.Body)
	}
}

// TestAfterASyncTheStoreAnswers: ehrgate syncs the simulated EHR (the real
// refresh engine), then the EHR calls order-sign without prefetch and
// without a token: the allergy list is ehrgate's own copy.
func TestAfterASyncTheStoreAnswers(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	src, err := fhir.NewClient(e.fhir, fhir.Options{Connection: "clinic"})
	if err != nil {
		t.Fatal(err)
	}
	syncer, err := refresh.New(src, e.st, refresh.Options{Connection: "clinic", Types: []string{"Patient", "AllergyIntolerance"}})
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := syncer.Run(ctx); err != nil || sum.Errors > 0 {
		t.Fatalf("sync = %+v, %v", sum, err)
	}
	svc, err := cdshooks.New(cdshooks.Options{BaseURL: e.cds.URL, Store: e.st, Audit: e.rec,
		Connections: []cdshooks.Connection{{Name: "clinic", BaseURL: e.fhir}}})
	if err != nil {
		t.Fatal(err)
	}
	e.serve(svc)
	sign := e.service(t, cdshooks.ServiceOrderSign)
	for _, tc := range []struct {
		patient string
		cards   int
		want    string
	}{
		{patPenicillin, 1, "ehrgate's copy from clinic"},
		{patNone, 0, ""},
		{patResolved, 0, ""},
		{patText, 1, "Keflex rash"},
	} {
		c := orderContext(tc.patient, draftOrder("d", tc.patient, amoxicillin))
		delete(c, "selections")
		resp, err := e.sim.Invoke(ctx, e.cds.URL, sign, cdsclient.Call{Context: c})
		if err != nil || resp.Status != http.StatusOK || len(resp.Cards) != tc.cards ||
			(tc.want != "" && !strings.Contains(resp.Cards[0].Detail, tc.want)) {
			t.Errorf("order-sign for %s after a sync = %v %d %s", tc.patient, err, resp.Status, resp.Body)
		}
	}
}

// TestDuplicateTherapyLoop: the simulator orders amoxicillin for a patient
// who has an active amoxicillin order (and a stopped ibuprofen one): one
// duplicate-therapy card naming the active order and its date.
func TestDuplicateTherapyLoop(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	svc := e.service(t, cdshooks.ServiceDuplicateSelect)
	if svc.Prefetch["medications"] != "MedicationRequest?patient={{context.patientId}}&status=active" {
		t.Fatalf("discovery prefetch = %v", svc.Prefetch)
	}
	resp, err := e.sim.Invoke(ctx, e.cds.URL, svc, cdsclient.Call{FillPrefetch: true,
		Context: orderContext(patNone, draftOrder("new", patNone, amoxicillin), draftOrder("new2", patNone, ibuprofen))})
	if err != nil || resp.Status != http.StatusOK || len(resp.Cards) != 1 {
		t.Fatalf("duplicate-therapy = %v %d %s", err, resp.Status, resp.Body)
	}
	c := resp.Cards[0]
	if c.Indicator != "warning" || !strings.Contains(c.Summary, "amoxicillin") || !strings.Contains(c.Detail, "2026-11-30") {
		t.Errorf("card = %s: %s\n%s", c.Indicator, c.Summary, c.Detail)
	}
	// Without the medication list: 412.
	resp, err = e.sim.Invoke(ctx, e.cds.URL, svc, cdsclient.Call{Context: orderContext(patNone, draftOrder("new", patNone, amoxicillin))})
	if err != nil || resp.Status != http.StatusPreconditionFailed || !strings.Contains(string(resp.Body), "medication list") {
		t.Fatalf("without the list = %v %d %s", err, resp.Status, resp.Body)
	}
}

// TestNullPrefetchIsAnEmptyList: CDS Hooks sends null for a prefetch key
// the client has no data for (instead of an empty Bundle): no allergies,
// so no allergy card; a missing key is not the same (412 here).
func TestNullPrefetchIsAnEmptyList(t *testing.T) {
	e := newEnv(t)
	svc := e.service(t, cdshooks.ServiceOrderSelect)
	resp, err := e.sim.Invoke(context.Background(), e.cds.URL, svc, cdsclient.Call{
		Context:  orderContext(patPenicillin, draftOrder("d", patPenicillin, amoxicillin)),
		Prefetch: map[string]json.RawMessage{"allergies": json.RawMessage(`null`)}})
	if err != nil || resp.Status != http.StatusOK || len(resp.Cards) != 0 {
		t.Fatalf("null allergies prefetch = %v %d %s", err, resp.Status, resp.Body)
	}
	resp, err = e.sim.Invoke(context.Background(), e.cds.URL, e.service(t, cdshooks.ServicePatientView), cdsclient.Call{
		Context:  map[string]any{"userId": "Practitioner/dr-smith", "patientId": patPenicillin},
		Prefetch: map[string]json.RawMessage{"allergies": json.RawMessage(`null`)}})
	if err != nil || resp.Status != http.StatusOK || len(resp.Cards) != 0 {
		t.Fatalf("null allergies prefetch on patient-view = %v %d %s", err, resp.Status, resp.Body)
	}
}

// TestCORS: with CORS origins configured, a browser-based client's
// preflight and calls get the headers; other origins do not.
func TestCORS(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		method string
		status int
	}{{http.MethodOptions, http.StatusNoContent}, {http.MethodGet, http.StatusOK}} {
		req, _ := http.NewRequest(tc.method, e.cds.URL+"/cds-services", nil)
		req.Header.Set("Origin", "https://sandbox.cds-hooks.org")
		req.Header.Set("Access-Control-Request-Method", "GET")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" || resp.StatusCode != tc.status {
			t.Errorf("%s from the CDS Hooks sandbox = %d, Allow-Origin %q; want %d, *", tc.method, resp.StatusCode, got, tc.status)
		}
	}
}
