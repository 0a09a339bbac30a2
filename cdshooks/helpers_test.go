package cdshooks_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ehrgate/audit"
	"ehrgate/cdshooks"
	"ehrgate/clients"
	"ehrgate/ehrsim"
	"ehrgate/ehrsim/cdsclient"
	"ehrgate/server"
	"ehrgate/store"
	_ "ehrgate/store/sqlite" // registers sqlite: stores
)

// Synthetic patients of the simulated EHR (ehrsim) in these tests.
const (
	patPenicillin = "pen1"   // penicillin allergy (SNOMED substance), criticality high, severe reaction
	patNone       = "clear1" // no allergies
	patText       = "text1"  // one drug allergy recorded as text only ("Keflex rash")
	patResolved   = "res1"   // a resolved penicillin allergy
)

func patient(id string) string {
	return `{"resourceType":"Patient","id":"` + id + `","name":[{"family":"Test","given":["` + id + `"]}],"birthDate":"1970-01-01"}`
}

func allergyJSON(id, patientID, code string, extra string) string {
	s := `{"resourceType":"AllergyIntolerance","id":"` + id + `","patient":{"reference":"Patient/` + patientID + `"},"code":` + code
	if extra != "" {
		s += "," + extra
	}
	return s + "}"
}

const (
	penicillinCode  = `{"coding":[{"system":"http://snomed.info/sct","code":"764146007","display":"Penicillin (substance)"}],"text":"Penicillin"}`
	activeConfirmed = `"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"active"}]},` +
		`"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-verification","code":"confirmed"}]}`
)

// ehrResources are what the simulated EHR serves.
var ehrResources = []string{
	patient(patPenicillin), patient(patNone), patient(patText), patient(patResolved),
	allergyJSON("alg-pen", patPenicillin, penicillinCode, activeConfirmed+`,"category":["medication"],"criticality":"high",`+
		`"recordedDate":"2019-03-01","reaction":[{"manifestation":[{"text":"Anaphylaxis"}],"severity":"severe"}]`),
	allergyJSON("alg-text", patText, `{"text":"Keflex rash"}`, activeConfirmed+`,"category":["medication"]`),
	`{"resourceType":"MedicationRequest","id":"med-amox","status":"active","intent":"order","subject":{"reference":"Patient/` + patNone + `"},` +
		`"authoredOn":"2026-11-30","medicationCodeableConcept":` + amoxicillin + `}`,
	`{"resourceType":"MedicationRequest","id":"med-old","status":"stopped","intent":"order","subject":{"reference":"Patient/` + patNone + `"},` +
		`"authoredOn":"2020-01-01","medicationCodeableConcept":` + ibuprofen + `}`,
	allergyJSON("alg-res", patResolved, penicillinCode, `"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"resolved"}]}`),
}

// draftAmoxicillin is a draft order of amoxicillin 250 MG Oral Capsule
// (RxNorm 308182) for patientID.
func draftOrder(id, patientID, medication string) map[string]any {
	var med any
	_ = json.Unmarshal([]byte(medication), &med)
	return map[string]any{"resourceType": "MedicationRequest", "id": id, "status": "draft", "intent": "order",
		"medicationCodeableConcept": med, "subject": map[string]string{"reference": "Patient/" + patientID}}
}

const (
	amoxicillin = `{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"308182","display":"amoxicillin 250 MG Oral Capsule"}]}`
	ibuprofen   = `{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"310965","display":"ibuprofen 200 MG Oral Tablet"}]}`
)

func orderContext(patientID string, drafts ...map[string]any) map[string]any {
	var entries []map[string]any
	var sel []string
	for _, d := range drafts {
		entries = append(entries, map[string]any{"resource": d})
		sel = append(sel, "MedicationRequest/"+d["id"].(string))
	}
	return map[string]any{"userId": "Practitioner/dr-smith", "patientId": patientID, "selections": sel,
		"draftOrders": map[string]any{"resourceType": "Bundle", "type": "collection", "entry": entries}}
}

// env is a running loop: the simulated EHR (FHIR server and CDS client)
// and ehrgate's CDS service on a real embedded store.
type env struct {
	st     store.Backend
	svc    *cdshooks.Service
	cds    *httptest.Server // ehrgate
	ehr    *httptest.Server // the simulated EHR's FHIR server
	sim    *cdsclient.Client
	reg    *clients.Registry
	rec    *flakyRecorder
	prom   *prometheus.Registry
	ehrHit *authLog
	fhir   string // the simulated EHR's FHIR base
	h      atomic.Pointer[http.Handler]
}

// serve makes svc the service e.cds serves.
func (e *env) serve(svc *cdshooks.Service) {
	e.svc = svc
	h := server.New(server.Options{Routes: svc.Routes()}).Handler()
	e.h.Store(&h)
}

// authLog records the Authorization headers the simulated EHR received.
type authLog struct {
	mu   sync.Mutex
	seen []string
}

func (a *authLog) add(h string) {
	a.mu.Lock()
	a.seen = append(a.seen, h)
	a.mu.Unlock()
}

func (a *authLog) all() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

// flakyRecorder is the store's audit log, which can be made to fail.
type flakyRecorder struct {
	audit.Recorder
	mu   sync.Mutex
	fail bool
}

func (f *flakyRecorder) Record(ctx context.Context, e audit.Event) error {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return context.DeadlineExceeded
	}
	return f.Recorder.Record(ctx, e)
}

func (f *flakyRecorder) setFail(v bool) {
	f.mu.Lock()
	f.fail = v
	f.mu.Unlock()
}

func newEnv(t testing.TB, mutate ...func(*cdshooks.Options)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+t.TempDir(), store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	e := &env{st: st, reg: clients.NewRegistry(st), ehrHit: &authLog{}, prom: prometheus.NewRegistry()}
	sim := ehrsim.New(ehrsim.Options{})
	for _, r := range ehrResources {
		if err := sim.Load(json.RawMessage(r)); err != nil {
			t.Fatalf("loading %s: %v", r, err)
		}
	}
	simH := sim.Handler()
	e.ehr = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.ehrHit.add(r.Header.Get("Authorization"))
		simH.ServeHTTP(w, r)
	}))
	t.Cleanup(e.ehr.Close)
	e.fhir = e.ehr.URL + "/fhir"

	e.sim, err = cdsclient.New(cdsclient.Options{Issuer: "https://sim-ehr.example", FHIRServer: e.fhir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Add(ctx, clients.Client{ID: "sim-ehr", CDS: true, Issuer: "https://sim-ehr.example", JWKS: e.sim.JWKS()}); err != nil {
		t.Fatal(err)
	}

	e.cds = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*e.h.Load()).ServeHTTP(w, r) }))
	t.Cleanup(e.cds.Close)
	e.rec = &flakyRecorder{Recorder: audit.NewLog(st, audit.Source{InstanceID: "test"}, nil)}
	o := cdshooks.Options{BaseURL: e.cds.URL, Store: st, Audit: e.rec, Registerer: e.prom, AllowHTTPFHIRServer: true}
	for _, m := range mutate {
		m(&o)
	}
	svc, err := cdshooks.New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.serve(svc)
	return e
}

// service returns the discovered service with id.
func (e *env) service(t testing.TB, id string) cdsclient.Service {
	t.Helper()
	svcs, err := e.sim.Discover(context.Background(), e.cds.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("discovery has no service %s", id)
	return cdsclient.Service{}
}

// auditFor returns the audit entries about patient id.
func (e *env) auditFor(t testing.TB, id string) []store.AuditEntry {
	t.Helper()
	es, err := e.st.QueryAudit(context.Background(), store.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var out []store.AuditEntry
	for _, x := range es {
		if x.Patient == id {
			out = append(out, x)
		}
	}
	return out
}

func cardSummaries(cs []cdsclient.Card) string {
	var s []string
	for _, c := range cs {
		s = append(s, c.Indicator+": "+c.Summary)
	}
	return strings.Join(s, "\n")
}

var fixedNow = time.Date(2026, 12, 7, 17, 0, 0, 0, time.UTC)

// serverFor is svc behind ehrgate's HTTP server middleware.
func serverFor(svc *cdshooks.Service) http.Handler {
	return server.New(server.Options{Routes: svc.Routes()}).Handler()
}
