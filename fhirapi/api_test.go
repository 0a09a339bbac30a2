package fhirapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"ehrgate/apiauth"
	"ehrgate/audit"
	"ehrgate/fhirapi"
	"ehrgate/refresh"
	"ehrgate/server"
	"ehrgate/store"
	"ehrgate/store/sqlite"
	"ehrgate/synth"
)

const (
	issuer   = "https://auth.test"
	audience = "https://ehrgate.test/fhir"
)

// env is an API over a real store with synthetic patients on two
// connections, behind real token verification and the real audit trail.
type env struct {
	t     *testing.T
	srv   *httptest.Server
	st    *sqlite.Store
	key   *ecdsa.PrivateKey
	gen   *synth.Generator
	audit audit.Recorder
}

type failingRecorder struct{}

func (failingRecorder) Record(context.Context, audit.Event) error { return errors.New("disk full") }

func newEnv(t *testing.T, opts ...func(*fhirapi.Options)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	gen := synth.New(synth.Options{Patients: 3, Seed: 7})
	now := gen.Now()
	var recs []store.Record
	for i := 0; i < gen.Patients(); i++ {
		for _, raw := range gen.Patient(i) {
			conn := "epic_a"
			if i == 2 {
				conn = "cerner"
			}
			rec, err := refresh.NewRecord(conn, raw, now, "test")
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, rec)
		}
	}
	if _, err := st.PutResources(ctx, recs); err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v, err := apiauth.NewVerifier(apiauth.Options{Issuer: issuer, Audience: audience,
		JWKS: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, key: key, gen: gen, audit: audit.NewLog(st, audit.Source{InstanceID: "test"}, nil)}
	o := fhirapi.Options{Store: st, Auth: v, Audit: e.audit, Trail: st, Docs: st, BaseURL: audience, DefaultCount: 10,
		Connections: map[string]string{"epic_a": "https://epic.test/api/FHIR/R4", "cerner": "https://cerner.test/r4"},
		Now:         func() time.Time { return now }}
	for _, f := range opts {
		f(&o)
	}
	api, err := fhirapi.New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(server.New(server.Options{Routes: api.Routes()}).Handler())
	t.Cleanup(e.srv.Close)
	return e
}

// token signs an access token with scopes, for patient (a served id, or "").
func (e *env) token(scopes, patient string, edit ...func(*jwt.Claims)) string {
	e.t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: e.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		e.t.Fatal(err)
	}
	c := jwt.Claims{Issuer: issuer, Audience: jwt.Audience{audience}, Subject: "user-1",
		Expiry: jwt.NewNumericDate(time.Now().Add(5 * time.Minute)), IssuedAt: jwt.NewNumericDate(time.Now().Add(-time.Minute))}
	for _, f := range edit {
		f(&c)
	}
	extra := map[string]any{"scope": scopes, "client_id": "app-1"}
	if patient != "" {
		extra["patient"] = patient
	}
	s, err := jwt.Signed(signer).Claims(c).Claims(extra).Serialize()
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// get calls the API; path is relative to /fhir or an absolute URL from a
// link (rewritten to the test server).
func (e *env) get(tok, path string) (int, map[string]any) {
	e.t.Helper()
	u := e.srv.URL + "/fhir/" + strings.TrimPrefix(path, "/")
	if strings.HasPrefix(path, audience) {
		u = e.srv.URL + "/fhir" + strings.TrimPrefix(path, audience)
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		e.t.Fatalf("GET %s: %d, not JSON: %.200s", path, resp.StatusCode, body)
	}
	return resp.StatusCode, m
}

func (e *env) auditCount() int {
	e.t.Helper()
	es, err := e.st.QueryAudit(context.Background(), store.AuditQuery{Limit: 100000})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(es)
}

// ids lists the bundle's entries as Type/id, with their search mode when
// it is not "match".
func ids(b map[string]any) []string {
	var out []string
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		m := e.(map[string]any)
		r := m["resource"].(map[string]any)
		s := fmt.Sprint(r["resourceType"], "/", r["id"])
		if mode := m["search"].(map[string]any)["mode"]; mode != "match" {
			s += " (" + mode.(string) + ")"
		}
		out = append(out, s)
	}
	return out
}

func next(b map[string]any) string {
	links, _ := b["link"].([]any)
	for _, l := range links {
		m := l.(map[string]any)
		if m["relation"] == "next" {
			return m["url"].(string)
		}
	}
	return ""
}

// all follows next links and returns every entry.
func (e *env) all(tok, path string) []string {
	e.t.Helper()
	var out []string
	for page := 0; path != ""; page++ {
		if page > 1000 {
			e.t.Fatal("more than 1000 pages")
		}
		code, b := e.get(tok, path)
		if code != http.StatusOK {
			e.t.Fatalf("GET %s = %d %v", path, code, b)
		}
		out = append(out, ids(b)...)
		path = next(b)
	}
	return out
}

func TestReadServesTheSourceBytesWithServedIDs(t *testing.T) {
	e := newEnv(t)
	tok := e.token("user/*.rs", "")
	before := e.auditCount()
	code, p := e.get(tok, "Patient/epic-a.p00000")
	if code != http.StatusOK {
		t.Fatalf("read = %d %v", code, p)
	}
	if p["id"] != "epic-a.p00000" {
		t.Errorf("id = %v, want epic-a.p00000", p["id"])
	}
	meta := p["meta"].(map[string]any)
	if meta["source"] != "https://epic.test/api/FHIR/R4" || !strings.Contains(fmt.Sprint(meta["tag"]), "epic_a") {
		t.Errorf("meta = %v, want source and connection tag", meta)
	}
	// Everything else is as the source sent it.
	stored, err := e.st.Get(context.Background(), "epic_a", "Patient", "p00000")
	if err != nil {
		t.Fatal(err)
	}
	var src map[string]any
	json.Unmarshal(stored.Raw, &src)
	for k, v := range src {
		if k == "id" || k == "meta" {
			continue
		}
		if fmt.Sprint(p[k]) != fmt.Sprint(v) {
			t.Errorf("%s = %v, want %v as received", k, p[k], v)
		}
	}
	// References point at served ids.
	code, obs := e.get(tok, "Observation?patient=epic-a.p00000&_count=1")
	if code != http.StatusOK {
		t.Fatalf("search = %d %v", code, obs)
	}
	r := obs["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
	if got := r["subject"].(map[string]any)["reference"]; got != "Patient/epic-a.p00000" {
		t.Errorf("subject.reference = %v, want Patient/epic-a.p00000", got)
	}
	if after := e.auditCount(); after != before+2 {
		t.Errorf("audit entries grew by %d for two accesses, want 2", after-before)
	}
}

func TestVreadAndETag(t *testing.T) {
	e := newEnv(t)
	tok := e.token("user/Patient.r", "")
	code, p := e.get(tok, "Patient/epic-a.p00000")
	if code != 200 {
		t.Fatalf("read = %d", code)
	}
	v := p["meta"].(map[string]any)["versionId"].(string)
	code, old := e.get(tok, "Patient/epic-a.p00000/_history/"+url.PathEscape(v))
	if code != 200 || old["id"] != "epic-a.p00000" {
		t.Errorf("vread(%s) = %d %v", v, code, old["id"])
	}
	if code, _ := e.get(tok, "Patient/epic-a.p00000/_history/nope"); code != 404 {
		t.Errorf("vread(unknown version) = %d, want 404", code)
	}
}

func TestPatientTokenSeesOnlyItsPatient(t *testing.T) {
	e := newEnv(t)
	tok := e.token("patient/*.rs", "epic-a.p00000")
	other := "epic-a.p00001"
	cases := []struct {
		path string
		want int
	}{
		{"Patient/" + other, 404},
		{"Patient/" + other + "/$everything", 404},
		{"Observation/" + other + "-obs-001", 404},
	}
	for _, c := range cases {
		if code, b := e.get(tok, c.path); code != c.want {
			t.Errorf("GET %s = %d %v, want %d", c.path, code, b, c.want)
		}
	}
	for _, path := range []string{
		"Observation?patient=" + other,
		"Observation?subject=Patient/" + other,
		"Patient?_id=" + other,
		"Patient?identifier=" + other,
		"Observation",
		"Observation?_include=Observation:patient",
		"Patient?_revinclude=Observation:patient",
	} {
		for _, id := range e.all(tok, path) {
			if strings.Contains(id, other) || strings.Contains(id, "cerner") {
				t.Errorf("GET %s with a token for epic-a.p00000 returned %s", path, id)
			}
		}
	}
	// Its own record is there.
	if got := e.all(tok, "Patient/epic-a.p00000/$everything"); len(got) < 10 || got[0] != "Patient/epic-a.p00000" {
		t.Errorf("$everything = %d entries starting %v, want the patient first and the record", len(got), got[:min(1, len(got))])
	}
}

func TestScopesAreEnforced(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		scopes, path string
		want         int
	}{
		{"user/Observation.rs", "Condition?patient=epic-a.p00000", 403},
		{"user/Observation.r", "Observation?patient=epic-a.p00000", 403},
		{"user/Observation.s", "Observation/epic-a.p00000-obs-001", 403},
		{"user/Observation.read", "Observation?patient=epic-a.p00000", 200},
		{"openid fhirUser", "Patient/epic-a.p00000", 403},
	}
	for _, c := range cases {
		code, b := e.get(e.token(c.scopes, ""), c.path)
		if code != c.want {
			t.Errorf("%s: GET %s = %d, want %d", c.scopes, c.path, code, c.want)
		}
		if code == 403 && b["resourceType"] != "OperationOutcome" {
			t.Errorf("%s: 403 body is %v, want an OperationOutcome", c.scopes, b["resourceType"])
		}
	}
	// A v2 restriction limits what is returned.
	tok := e.token("user/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", "")
	got := e.all(tok, "Observation?patient=epic-a.p00000")
	all := e.all(e.token("user/Observation.rs", ""), "Observation?patient=epic-a.p00000")
	labs := e.all(e.token("user/Observation.rs", ""), "Observation?patient=epic-a.p00000&category=laboratory")
	if len(got) != len(labs) || len(labs) == 0 || len(labs) == len(all) {
		t.Errorf("restricted scope gave %d observations; labs %d of %d", len(got), len(labs), len(all))
	}
}

func TestRefusedTokens(t *testing.T) {
	e := newEnv(t)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forged := func() string {
		k := e.key
		e.key = other
		defer func() { e.key = k }()
		return e.token("user/*.rs", "")
	}()
	cases := map[string]string{
		"none":           "",
		"expired":        e.token("user/*.rs", "", func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(time.Now().Add(-time.Hour)) }),
		"wrong audience": e.token("user/*.rs", "", func(c *jwt.Claims) { c.Audience = jwt.Audience{"https://other.test/fhir"} }),
		"forged":         forged,
		"garbage":        "not.a.token",
	}
	before := e.auditCount()
	for name, tok := range cases {
		code, b := e.get(tok, "Patient/epic-a.p00000")
		if code != http.StatusUnauthorized || b["resourceType"] != "OperationOutcome" {
			t.Errorf("%s token: %d %v, want 401 with an OperationOutcome", name, code, b["resourceType"])
		}
	}
	if after := e.auditCount(); after != before {
		t.Errorf("unauthenticated calls wrote %d audit entries, want none (no one to name)", after-before)
	}
}

func TestAuditFailureRefusesTheAccess(t *testing.T) {
	e := newEnv(t, func(o *fhirapi.Options) { o.Audit = failingRecorder{} })
	code, b := e.get(e.token("user/*.rs", ""), "Patient/epic-a.p00000")
	if code != http.StatusServiceUnavailable || b["resourceType"] != "OperationOutcome" {
		t.Errorf("read with a failing audit trail = %d %v, want 503 OperationOutcome", code, b["resourceType"])
	}
}

func TestSearchParameters(t *testing.T) {
	e := newEnv(t)
	tok := e.token("user/*.rs", "")
	count := func(path string) int { return len(e.all(tok, path)) }
	p0 := "patient=epic-a.p00000"
	allObs := count("Observation?" + p0)
	if allObs < 10 {
		t.Fatalf("patient 0 has %d observations; the fixture needs more", allObs)
	}
	cases := []struct {
		path string
		want func(n int) bool
		desc string
	}{
		{"Observation?" + p0 + "&category=vital-signs", func(n int) bool { return n > 0 && n < allObs }, "some vitals"},
		{"Observation?" + p0 + "&category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs", func(n int) bool {
			return n == count("Observation?"+p0+"&category=vital-signs")
		}, "system|code same as code"},
		{"Observation?" + p0 + "&category=http://wrong.example|vital-signs", func(n int) bool { return n == 0 }, "wrong system"},
		{"Observation?" + p0 + "&category:not=vital-signs", func(n int) bool {
			return n == allObs-count("Observation?"+p0+"&category=vital-signs")
		}, ":not"},
		{"Observation?" + p0 + "&code=http://loinc.org|8867-4", func(n int) bool { return n > 0 }, "heart rate by LOINC"},
		{"Observation?" + p0 + "&date=ge1900&date=lt3000", func(n int) bool { return n == allObs }, "date range covering all"},
		{"Observation?" + p0 + "&date=lt1900", func(n int) bool { return n == 0 }, "date before all"},
		{"Observation?" + p0 + "&_lastUpdated=gt1900-01-01", func(n int) bool { return n == allObs }, "_lastUpdated"},
		{"Observation?" + p0 + "&status=final,amended,corrected,preliminary", func(n int) bool { return n > 0 }, "status OR"},
		{"Observation?" + p0 + "&_summary=count", nil, "count"},
		{"Patient?birthdate=ge1800", func(n int) bool { return n == 3 }, "all patients"},
		{"Patient?gender=male,female,other,unknown", func(n int) bool { return n == 3 }, "gender"},
		{"Patient?_id=epic-a.p00001,cerner.p00002", func(n int) bool { return n == 2 }, "_id list"},
		{"Patient?identifier=nope", func(n int) bool { return n == 0 }, "unknown identifier"},
		{"Condition?" + p0 + "&clinical-status=active,resolved,inactive,recurrence,relapse,remission", func(n int) bool { return n > 0 }, "clinical-status"},
		{"Encounter?" + p0 + "&date=ge2000", func(n int) bool { return n >= 0 }, "encounter period"},
	}
	for _, c := range cases {
		if c.want == nil {
			continue
		}
		if n := count(c.path); !c.want(n) {
			t.Errorf("%s (%s): %d results", c.path, c.desc, n)
		}
	}
	code, b := e.get(tok, "Observation?"+p0+"&_summary=count")
	if code != 200 || b["total"] != float64(allObs) || b["entry"] != nil {
		t.Errorf("_summary=count = %d total %v entries %v, want %d and no entries", code, b["total"], b["entry"] != nil, allObs)
	}
	// Patient by name and identifier, read from the fixture itself.
	var pat map[string]any
	_, pat = e.get(tok, "Patient/epic-a.p00001")
	name := pat["name"].([]any)[0].(map[string]any)
	family := name["family"].(string)
	if got := e.all(tok, "Patient?family="+url.QueryEscape(strings.ToLower(family[:3]))); !contains(got, "Patient/epic-a.p00001") {
		t.Errorf("family prefix %q found %v", family[:3], got)
	}
	if got := e.all(tok, "Patient?name:exact="+url.QueryEscape(family)); !contains(got, "Patient/epic-a.p00001") {
		t.Errorf("name:exact %q found %v", family, got)
	}
	idf := pat["identifier"].([]any)[0].(map[string]any)
	q := url.QueryEscape(fmt.Sprint(idf["system"], "|", idf["value"]))
	if got := e.all(tok, "Patient?identifier="+q); len(got) != 1 || got[0] != "Patient/epic-a.p00001" {
		t.Errorf("identifier %s found %v", q, got)
	}
	// Errors.
	for _, path := range []string{"Observation?bogus=1", "Observation?date=yesterday", "Observation?code:above=x",
		"Observation?_sort=status", "Observation?_count=-1", "Observation?_include=Condition:patient", "Observation?subject.name=x"} {
		if code, b := e.get(tok, path); code != 400 || b["resourceType"] != "OperationOutcome" {
			t.Errorf("GET %s = %d %v, want 400 OperationOutcome", path, code, b["resourceType"])
		}
	}
	if code, _ := e.get(tok, "Medication?code=x"); code != 404 {
		t.Errorf("unserved type = %d, want 404", code)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestPagingIsCompleteAndStable(t *testing.T) {
	e := newEnv(t)
	tok := e.token("user/*.rs", "")
	for _, path := range []string{
		"Observation?patient=epic-a.p00000",
		"Observation?patient=epic-a.p00000&_sort=-date",
		"Observation?patient=epic-a.p00000&_sort=date,_id",
		"Observation",
		"Observation?_sort=_lastUpdated",
		"Patient/epic-a.p00000/$everything",
	} {
		one := e.all(tok, path+sep(path)+"_count=1000")
		paged := e.all(tok, path+sep(path)+"_count=7")
		if strings.Join(one, ",") != strings.Join(paged, ",") {
			t.Errorf("%s: paging by 7 gave %d entries, one page %d (or a different order)", path, len(paged), len(one))
		}
		seen := map[string]bool{}
		for _, id := range paged {
			if seen[id] {
				t.Errorf("%s: %s twice", path, id)
			}
			seen[id] = true
		}
	}
	// The scan budget makes short pages with next links, never lost ones.
	small := newEnv(t, func(o *fhirapi.Options) { o.ScanBudget = 3 })
	tok = small.token("user/*.rs", "")
	if a, b := small.all(tok, "Observation?category=laboratory&_count=1000"), e.all(e.token("user/*.rs", ""), "Observation?category=laboratory&_count=1000"); len(a) != len(b) || len(a) == 0 {
		t.Errorf("with a scan budget of 3: %d labs, without %d", len(a), len(b))
	}
}

func sep(path string) string {
	if strings.Contains(path, "?") {
		return "&"
	}
	return "?"
}

func TestIncludes(t *testing.T) {
	e := newEnv(t)
	tok := e.token("user/*.rs", "")
	got := e.all(tok, "Observation?patient=epic-a.p00000&_count=3&_include=Observation:patient")
	if !contains(got, "Patient/epic-a.p00000 (include)") {
		t.Errorf("_include=Observation:patient gave %v", got)
	}
	got = e.all(tok, "Patient?_id=epic-a.p00000&_revinclude=Condition:patient")
	if len(got) < 2 || got[0] != "Patient/epic-a.p00000" || !strings.HasPrefix(got[1], "Condition/") {
		t.Errorf("_revinclude=Condition:patient gave %v", got)
	}
	// _elements subsets and marks it.
	_, b := e.get(tok, "Patient?_id=epic-a.p00000&_elements=gender")
	r := b["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
	if r["name"] != nil || r["gender"] == nil || !strings.Contains(fmt.Sprint(r["meta"]), "SUBSETTED") {
		t.Errorf("_elements=gender gave %v", r)
	}
}

func TestLenientHandlingIgnoresUnknownParameters(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest("GET", e.srv.URL+"/fhir/Patient?bogus=1&_id=epic-a.p00000", nil)
	req.Header.Set("Authorization", "Bearer "+e.token("user/*.rs", ""))
	req.Header.Set("Prefer", "handling=lenient")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b map[string]any
	json.NewDecoder(resp.Body).Decode(&b)
	if resp.StatusCode != 200 || len(ids(b)) != 1 || strings.Contains(fmt.Sprint(b["link"]), "bogus") {
		t.Errorf("lenient: %d %v links %v", resp.StatusCode, ids(b), b["link"])
	}
}

func TestMetadataIsPublicAndTrue(t *testing.T) {
	e := newEnv(t)
	code, cs := e.get("", "metadata")
	if code != 200 || cs["resourceType"] != "CapabilityStatement" {
		t.Fatalf("metadata = %d %v", code, cs["resourceType"])
	}
	res := cs["rest"].([]any)[0].(map[string]any)["resource"].([]any)
	// The served types, and Group (each connection), for group-export only.
	if len(res) != len(fhirapi.ServedTypes)+1 {
		t.Errorf("CapabilityStatement lists %d types, want %d", len(res), len(fhirapi.ServedTypes)+1)
	}
	group := res[len(res)-1].(map[string]any)
	if ops, _ := group["operation"].([]any); group["type"] != "Group" || len(ops) != 1 || ops[0].(map[string]any)["name"] != "group-export" {
		t.Errorf("last resource = %v, want Group with group-export", group)
	}
	res = res[:len(res)-1]
	// Every advertised search parameter is accepted.
	tok := e.token("user/*.rs", "")
	for _, r := range res {
		m := r.(map[string]any)
		for _, p := range m["searchParam"].([]any) {
			sp := p.(map[string]any)
			v := map[string]string{"token": "x", "string": "x", "date": "2020", "reference": "Patient/epic-a.p00000"}[sp["type"].(string)]
			path := fmt.Sprintf("%s?%s=%s", m["type"], sp["name"], url.QueryEscape(v))
			if code, b := e.get(tok, path); code != 200 {
				t.Errorf("advertised %s = %d %v", path, code, b)
			}
		}
	}
}

func TestEveryAccessLeavesOneAuditEvent(t *testing.T) {
	e := newEnv(t)
	pt := e.token("patient/*.rs", "epic-a.p00000")
	user := e.token("user/Observation.rs", "")
	calls := []struct{ tok, path string }{
		{pt, "Patient/epic-a.p00000"},
		{pt, "Patient/epic-a.p00001"}, // refused: another patient
		{pt, "Observation?category=laboratory&_include=Observation:patient"},
		{pt, "Patient/epic-a.p00000/$everything"},
		{user, "Condition?patient=epic-a.p00000"}, // refused: scope
		{user, "Observation?bogus=1"},             // refused: bad search
		{user, "Observation?patient=epic-a.p00000&_count=2"},
	}
	for _, c := range calls {
		before := e.auditCount()
		e.get(c.tok, c.path)
		if n := e.auditCount() - before; n != 1 {
			t.Errorf("GET %s left %d audit events, want exactly 1", c.path, n)
		}
	}
	// An auditor reads them back by patient; others cannot.
	auditor := e.token("user/AuditEvent.rs", "")
	got := e.all(auditor, "AuditEvent?patient=epic-a.p00000&_count=2")
	if len(got) < 4 {
		t.Errorf("AuditEvent?patient=epic-a.p00000 found %d events, want at least the 4 accesses naming that patient", len(got))
	}
	for _, tok := range []string{e.token("system/*.rs", ""), e.token("patient/AuditEvent.rs", "epic-a.p00000"), pt} {
		if code, _ := e.get(tok, "AuditEvent"); code != http.StatusForbidden {
			t.Errorf("AuditEvent with a non-auditor token = %d, want 403", code)
		}
	}
	if code, _ := e.get(auditor, "AuditEvent?date=ge2020-01-01&type=rest&agent=user-1&_count=5"); code != 200 {
		t.Errorf("AuditEvent search by date, type and agent = %d", code)
	}
	if code, _ := e.get(auditor, "AuditEvent?bogus=1"); code != 400 {
		t.Errorf("AuditEvent?bogus = %d, want 400", code)
	}
}

func TestFormHeader(t *testing.T) {
	e := newEnv(t)
	tok := e.token("user/*.rs", "")
	for form, want := range map[string]int{"cleaned": 200, "as-received": 200, "pretty": 400} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/fhir/Observation?patient=epic-a.p00000&_count=50", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set(fhirapi.FormHeader, form)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want || !strings.Contains(resp.Header.Get("Vary"), fhirapi.FormHeader) {
			t.Errorf("%s: %s = %d (Vary %q), want %d", fhirapi.FormHeader, form, resp.StatusCode, resp.Header.Get("Vary"), want)
		}
	}
}

// export kicks off a Bulk Data export and returns the status URL (or the
// refusal's status code).
func (e *env) export(tok, method, path, body string, hdr map[string]string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+"/fhir/"+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Prefer", "respond-async")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Content-Location")
}

// download fetches a manifest and every file it lists: resources by type.
func (e *env) download(tok, status string) (map[string][]string, string) {
	e.t.Helper()
	code, m := e.get(tok, status)
	if code != 200 {
		e.t.Fatalf("status %s = %d %v", status, code, m)
	}
	out := map[string][]string{}
	for _, o := range m["output"].([]any) {
		f := o.(map[string]any)
		req, _ := http.NewRequest("GET", e.srv.URL+"/fhir"+strings.TrimPrefix(f["url"].(string), audience), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			e.t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			e.t.Fatalf("file %s = %d", f["url"], resp.StatusCode)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if line == "" {
				continue
			}
			var r map[string]any
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				e.t.Fatalf("file %s: a line is not JSON: %v", f["url"], err)
			}
			out[f["type"].(string)] = append(out[f["type"].(string)], fmt.Sprint(r["id"]))
		}
	}
	return out, m["transactionTime"].(string)
}

func TestBulkExport(t *testing.T) {
	e := newEnv(t)
	sys := e.token("system/*.rs", "")
	for name, c := range map[string]struct {
		path string
		hdr  map[string]string
		want int
	}{
		"no Prefer":                             {"$export", map[string]string{"Prefer": ""}, 400},
		"no Accept":                             {"$export", map[string]string{"Accept": ""}, 400},
		"unknown _type":                         {"$export?_type=Banana", nil, 400},
		"future _since":                         {"$export?_since=2999-01-01T00:00:00Z", nil, 400},
		"bad format":                            {"$export?_outputFormat=text/csv", nil, 400},
		"unknown param":                         {"$export?color=red", nil, 400},
		"unknown group":                         {"Group/nope/$export", nil, 404},
		"associated":                            {"$export?includeAssociatedData=LatestProvenanceResources,RelevantProvenanceResources", nil, 202},
		"associated unknown":                    {"$export?includeAssociatedData=_custom", nil, 400},
		"typeFilter unknown parameter":          {"$export?_typeFilter=Patient%3Fstatus%3Dactive", nil, 400},
		"typeFilter unknown parameter, lenient": {"$export?_typeFilter=Patient%3Fstatus%3Dactive", map[string]string{"Prefer": "respond-async, handling=lenient"}, 202},
		"lenient ok":                            {"$export?_type=Patient,Banana&includeAssociatedData=X", map[string]string{"Prefer": "respond-async, handling=lenient"}, 202},
		"system export":                         {"$export", nil, 202},
		"patient export":                        {"Patient/$export?_type=Patient,Condition", nil, 202},
	} {
		if code, _ := e.export(sys, "GET", c.path, "", c.hdr); code != c.want {
			t.Errorf("%s: kick-off %s = %d, want %d", name, c.path, code, c.want)
		}
	}
	before := e.auditCount()
	code, status := e.export(sys, "GET", "$export?_type=Patient,Observation", "", nil)
	if code != 202 || status == "" {
		t.Fatalf("kick-off = %d, Content-Location %q", code, status)
	}
	if n := e.auditCount() - before; n != 1 {
		t.Errorf("an export left %d audit events, want 1", n)
	}
	files, tt := e.download(sys, status)
	if got, want := len(files["Patient"]), 3; got != want {
		t.Errorf("exported %d Patients, want %d", got, want)
	}
	if got, want := len(files["Observation"]), len(e.all(sys, "Observation?_count=1000")); got != want || got == 0 {
		t.Errorf("exported %d Observations, search finds %d", got, want)
	}
	// Another client cannot see it; the owner can cancel it.
	other := e.token("system/*.rs", "", func(c *jwt.Claims) { c.Subject = "someone-else" })
	if code, _ := e.get(other, status); code != 404 {
		t.Errorf("another client's status = %d, want 404", code)
	}
	// An export _since its transactionTime holds nothing (nothing was stored since).
	_, status2 := e.export(sys, "GET", "$export?_type=Observation&_since="+url.QueryEscape(tt), "", nil)
	if files, _ := e.download(sys, status2); len(files["Observation"]) != 0 {
		t.Errorf("export _since the last transactionTime gave %d Observations, want 0", len(files["Observation"]))
	}
	// Group (a connection) and _typeFilter, by POST.
	body := `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Observation"},` +
		`{"name":"_typeFilter","valueString":"Observation?category=laboratory"}]}`
	code, status3 := e.export(sys, "POST", "Group/cerner/$export", body, map[string]string{"Content-Type": "application/fhir+json"})
	if code != 202 {
		t.Fatalf("POST Group kick-off = %d", code)
	}
	labs, _ := e.download(sys, status3)
	if want := len(e.all(sys, "Observation?patient=cerner.p00002&category=laboratory&_count=1000")); len(labs["Observation"]) != want || want == 0 {
		t.Errorf("Group/cerner labs exported %d, want %d", len(labs["Observation"]), want)
	}
	for _, id := range labs["Observation"] {
		if !strings.HasPrefix(id, "cerner.") {
			t.Errorf("Group/cerner exported %s", id)
		}
	}
	// A patient token exports its patient only, and never at system level.
	pt := e.token("patient/*.rs", "epic-a.p00000")
	if code, _ := e.export(pt, "GET", "$export", "", nil); code != 403 {
		t.Errorf("system export with a patient token = %d, want 403", code)
	}
	_, status4 := e.export(pt, "GET", "Patient/$export", "", nil)
	mine, _ := e.download(pt, status4)
	for typ, ids := range mine {
		for _, id := range ids {
			if typ == "Patient" && id != "epic-a.p00000" || !strings.HasPrefix(id, "epic-a.p00000") {
				t.Errorf("a patient token exported %s/%s", typ, id)
			}
		}
	}
	if len(mine["Observation"]) == 0 {
		t.Error("a patient token exported no Observations of its own")
	}
	// Cancel.
	req, _ := http.NewRequest("DELETE", e.srv.URL+"/fhir"+strings.TrimPrefix(status, audience), nil)
	req.Header.Set("Authorization", "Bearer "+sys)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code, _ := e.get(sys, status); resp.StatusCode != 202 || code != 404 {
		t.Errorf("cancel = %d, then status = %d; want 202 and 404", resp.StatusCode, code)
	}
}

// TestBulkExportPatientParameterAndWarnings: a patient parameter naming no
// served patient exports nothing (never everything); what handling=lenient
// let through is listed, one warning each, in the manifest's error file.
func TestBulkExportPatientParameterAndWarnings(t *testing.T) {
	e := newEnv(t)
	sys := e.token("system/*.rs", "")
	body := `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Patient,Observation"},` +
		`{"name":"patient","valueReference":{"reference":"Patient/123"}}]}`
	code, status := e.export(sys, "POST", "Patient/$export", body, map[string]string{"Content-Type": "application/fhir+json"})
	if code != 202 {
		t.Fatalf("POST Patient kick-off with an unknown patient = %d, want 202", code)
	}
	if files, _ := e.download(sys, status); len(files["Patient"])+len(files["Observation"]) != 0 {
		t.Errorf("an unknown patient exported %d Patients and %d Observations, want none", len(files["Patient"]), len(files["Observation"]))
	}
	code, status = e.export(sys, "GET", "$export?_type=Patient,Banana&_typeFilter=Patient%3Fstatus%3Dactive&color=red", "",
		map[string]string{"Prefer": "respond-async, handling=lenient"})
	if code != 202 {
		t.Fatalf("lenient kick-off = %d", code)
	}
	typ, b := e.errorFile(sys, status)
	for _, want := range []string{"Banana", "_typeFilter", "color"} {
		if typ != "OperationOutcome" || !strings.Contains(b, want) {
			t.Errorf("error file (%v) does not name %s:\n%s", typ, want, b)
		}
	}
}

// errorFile fetches the one file of an export's manifest error array: its
// type and content.
func (e *env) errorFile(tok, status string) (string, string) {
	e.t.Helper()
	_, m := e.get(tok, status)
	errs, _ := m["error"].([]any)
	if len(errs) != 1 {
		e.t.Fatalf("manifest error = %v, want one OperationOutcome file", m["error"])
	}
	f := errs[0].(map[string]any)
	req, _ := http.NewRequest("GET", e.srv.URL+"/fhir"+strings.TrimPrefix(f["url"].(string), audience), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return fmt.Sprint(f["type"]), string(b)
}

// TestBulkExportAssociatedProvenance: includeAssociatedData adds the
// Provenance targeting the exported resources to the Provenance file
// (each once; only the latest of each resource for
// LatestProvenanceResources), within the token's scopes; a token that may
// not read Provenance gets none, and the manifest's error file says so.
func TestBulkExportAssociatedProvenance(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	obs, err := e.st.ListByPatient(ctx, "epic_a", "p00000", "Observation")
	if err != nil || len(obs) == 0 {
		t.Fatalf("no Observation of p00000: %v", err)
	}
	conds, err := e.st.ListByPatient(ctx, "epic_a", "p00000", "Condition")
	if err != nil || len(conds) == 0 {
		t.Fatalf("no Condition of p00000: %v", err)
	}
	o, cond := "Observation/"+obs[0].ID, "Condition/"+conds[0].ID
	var recs []store.Record
	for _, p := range []struct{ conn, id, recorded, targets string }{
		{"epic_a", "pvA", "2026-01-01T00:00:00Z", `{"reference":"Patient/p00000"},{"reference":"` + o + `"}`},
		{"epic_a", "pvB", "2026-02-01T00:00:00Z", `{"reference":"` + o + `"}`},
		{"epic_a", "pvE", "2025-06-01T00:00:00Z", `{"reference":"` + o + `"}`},
		{"epic_a", "pvD", "2026-03-01T00:00:00Z", `{"reference":"` + cond + `"}`},
		{"cerner", "pvC", "2026-01-01T00:00:00Z", `{"reference":"Patient/p00002"}`},
	} {
		raw := `{"resourceType":"Provenance","id":"` + p.id + `","target":[` + p.targets + `],"recorded":"` + p.recorded +
			`","agent":[{"who":{"display":"feed"}}]}`
		rec, err := refresh.NewRecord(p.conn, []byte(raw), e.gen.Now(), "test")
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	if _, err := e.st.PutResources(ctx, recs); err != nil {
		t.Fatal(err)
	}
	sys := e.token("system/*.rs", "")
	for _, c := range []struct {
		name, tok, path string
		want            []string
	}{
		{"latest", sys, "$export?_type=Patient,Observation&includeAssociatedData=LatestProvenanceResources",
			[]string{"cerner.pvC", "epic-a.pvA", "epic-a.pvB"}},
		{"relevant", sys, "$export?_type=Patient,Observation&includeAssociatedData=RelevantProvenanceResources",
			[]string{"cerner.pvC", "epic-a.pvA", "epic-a.pvB", "epic-a.pvE"}},
		{"both values", sys, "$export?_type=Observation&includeAssociatedData=LatestProvenanceResources,RelevantProvenanceResources",
			[]string{"epic-a.pvA", "epic-a.pvB", "epic-a.pvE"}},
		{"a group", sys, "Group/cerner/$export?includeAssociatedData=RelevantProvenanceResources",
			[]string{"cerner.pvC"}},
		{"since", sys, "$export?_type=Observation&_since=2999-01-01T00:00:00Z&includeAssociatedData=RelevantProvenanceResources", nil},
		// Patient-level with Provenance among the types: the compartment's
		// own Provenance and the associated ones, each once.
		{"own and associated", sys, "Patient/$export?_type=Patient,Provenance&includeAssociatedData=RelevantProvenanceResources",
			[]string{"cerner.pvC", "epic-a.pvA"}},
		// A patient token reads the Provenance in its compartment only:
		// its Observation's latest (pvB) is not, so it gets none for it.
		{"patient token", e.token("patient/*.rs", "epic-a.p00000"), "Patient/$export?includeAssociatedData=LatestProvenanceResources",
			[]string{"epic-a.pvA"}},
	} {
		if c.name == "since" {
			// _since after the kick-off is refused; the store's clock is gen.Now.
			c.path = "$export?_type=Observation&_since=" + url.QueryEscape(e.gen.Now().Format(time.RFC3339)) + "&includeAssociatedData=RelevantProvenanceResources"
		}
		code, status := e.export(c.tok, "GET", c.path, "", nil)
		if code != 202 {
			t.Fatalf("%s: kick-off %s = %d", c.name, c.path, code)
		}
		files, _ := e.download(c.tok, status)
		got := files["Provenance"]
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: Provenance file = %v, want %v", c.name, got, c.want)
		}
		if _, m := e.get(c.tok, status); len(m["error"].([]any)) != 0 {
			t.Errorf("%s: manifest error = %v, want none", c.name, m["error"])
		}
	}
	// Without Provenance in its scopes: none, and a warning.
	tok := e.token("system/Patient.rs system/Observation.rs", "")
	code, status := e.export(tok, "GET", "$export?includeAssociatedData=RelevantProvenanceResources", "", nil)
	if code != 202 {
		t.Fatalf("kick-off without Provenance scope = %d", code)
	}
	if files, _ := e.download(tok, status); len(files["Provenance"]) != 0 || len(files["Observation"]) == 0 {
		t.Errorf("without Provenance scope: %d Provenance, %d Observations; want none and some", len(files["Provenance"]), len(files["Observation"]))
	}
	typ, b := e.errorFile(tok, status)
	if typ != "OperationOutcome" || !strings.Contains(b, `"warning"`) || !strings.Contains(b, "do not allow reading Provenance") {
		t.Errorf("error file (%s) does not warn that no Provenance was added:\n%s", typ, b)
	}
}

// TestExportFileWithAnUnservableResourceIsCutOff: a stored resource that
// cannot be served ends its export file unfinished, never a file that
// looks whole without it.
func TestExportFileWithAnUnservableResourceIsCutOff(t *testing.T) {
	e := newEnv(t)
	bad := store.Record{Key: store.Key{Connection: "epic_a", Type: "Observation", ID: "zz-broken", VersionID: "1"},
		PatientID: "p00000", Raw: []byte(`{"resourceType":"Observation","id":"zz-broken","subject":{"reference":`), FetchedAt: time.Now()}
	if _, err := e.st.PutResources(context.Background(), []store.Record{bad}); err != nil {
		t.Fatal(err)
	}
	tok := e.token("system/*.rs", "")
	code, status := e.export(tok, "GET", "$export?_type=Observation", "", nil)
	if code != 202 {
		t.Fatalf("kick-off = %d", code)
	}
	_, m := e.get(tok, status)
	out := m["output"].([]any)[0].(map[string]any)
	req, _ := http.NewRequest("GET", e.srv.URL+"/fhir"+strings.TrimPrefix(out["url"].(string), audience), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
	}
	if err == nil {
		t.Error("the export file with an unservable resource downloaded as complete, want it cut off")
	}
}
