package ehr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ehrgate/fhir"
)

func encode(qs []*fhir.Query) []string {
	out := make([]string, len(qs))
	for i, q := range qs {
		out[i] = q.Encode()
	}
	return out
}

func TestPlanner(t *testing.T) {
	site := &SiteProfile{Name: "s", DisabledTypes: map[string]string{"Immunization": "kept elsewhere"},
		DisabledParams: map[string][]string{"CarePlan": {"category"}, "Procedure": {"patient"}}, PageSize: 20}
	tests := []struct {
		vendor     string
		site       *SiteProfile
		typ        string
		want       []string
		wantReason string // substring
	}{
		{Generic, nil, "Observation", []string{"_count=100&patient=p1"}, ""},
		{Generic, nil, "Whatever", []string{"_count=100&patient=p1"}, ""},
		{"epic", nil, "Observation", []string{
			"_count=100&category=vital-signs&patient=p1", "_count=100&category=laboratory&patient=p1",
			"_count=100&category=social-history&patient=p1", "_count=100&category=survey&patient=p1",
			"_count=100&category=exam&patient=p1", "_count=100&category=imaging&patient=p1",
			"_count=100&category=procedure&patient=p1", "_count=100&category=therapy&patient=p1",
			"_count=100&category=activity&patient=p1", "_count=100&category=smartdata&patient=p1"}, ""},
		{"epic", nil, "Condition", []string{"_count=100&patient=p1"}, ""},
		{"epic", nil, "Basic", nil, "Epic does not offer Basic"},
		{"athena", nil, "MedicationRequest", []string{
			"_count=100&intent=proposal%2Cplan%2Corder%2Coriginal-order%2Creflex-order%2Cfiller-order%2Cinstance-order%2Coption&patient=p1"}, ""},
		{"meditech", nil, "Encounter", nil, "does not list Encounter"},
		{"ecw", nil, "Condition", []string{"_count=50&patient=p1"}, ""},
		{"epic", site, "Immunization", nil, "Switched off at this site (s): kept elsewhere"},
		{"epic", site, "CarePlan", nil, "which this site (s) disables"},
		{"epic", site, "Procedure", nil, "does not allow searching Procedure by patient"},
		{"epic", site, "Condition", []string{"_count=20&patient=p1"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.vendor+"/"+tc.typ, func(t *testing.T) {
			a, err := MustLookup(tc.vendor).WithSite(tc.site)
			if err != nil {
				t.Fatal(err)
			}
			qs, reason := a.Planner().Plan(tc.typ, "p1")
			if diff := cmp.Diff(tc.want, encode(qs)); len(tc.want) > 0 && diff != "" {
				t.Errorf("Plan(%q) queries (-want +got):\n%s", tc.typ, diff)
			}
			if len(tc.want) == 0 && len(qs) != 0 {
				t.Errorf("Plan(%q) = %v, want none", tc.typ, encode(qs))
			}
			if !strings.Contains(reason, tc.wantReason) || (tc.wantReason == "") != (reason == "") {
				t.Errorf("Plan(%q) reason = %q, want it to contain %q", tc.typ, reason, tc.wantReason)
			}
		})
	}
}

func TestWithSiteVendorMismatch(t *testing.T) {
	if _, err := MustLookup("epic").WithSite(&SiteProfile{Name: "x", Vendor: "oracle"}); err == nil {
		t.Error("WithSite(oracle site) on epic = nil error")
	}
}

func outcome(code, diag string) *fhir.OperationOutcome {
	o := fhir.NewOutcome("error", code, diag)
	return o
}

func TestClassify(t *testing.T) {
	tests := []struct {
		vendor string
		err    error
		want   ErrorClass
	}{
		{Generic, nil, ClassNone},
		{Generic, errors.New("boom"), ClassOther},
		{Generic, fmt.Errorf("x: %w", fhir.ErrMalformedBody), ClassTransient},
		{Generic, &fhir.Error{StatusCode: 403}, ClassNotPermitted},
		{Generic, &fhir.Error{StatusCode: 404, Outcome: outcome("not-found", "")}, ClassNotFound},
		{Generic, &fhir.Error{StatusCode: 404, Outcome: outcome("not-supported", "")}, ClassNotSupported},
		{Generic, &fhir.Error{StatusCode: 400, Outcome: outcome("not-supported", "")}, ClassNotSupported},
		{Generic, &fhir.Error{StatusCode: 400, Outcome: outcome("invalid", "")}, ClassInvalid},
		{Generic, &fhir.Error{StatusCode: 401}, ClassUnauthorized},
		{Generic, &fhir.Error{StatusCode: 429}, ClassRateLimited},
		{Generic, &fhir.Error{StatusCode: 503}, ClassTransient},
		{Generic, &fhir.Error{StatusCode: 501}, ClassNotSupported},
		{"epic", &fhir.Error{StatusCode: 400, Outcome: outcome("required", "category")}, ClassInvalid},
		{"epic", fmt.Errorf("wrapped: %w", &fhir.Error{StatusCode: 403, Outcome: outcome("forbidden", "")}), ClassNotPermitted},
		// eClinicalWorks: a practice that has not enabled the API answers 401.
		{"ecw", &fhir.Error{StatusCode: 401}, ClassNotPermitted},
		{"ecw", &fhir.Error{StatusCode: 400, Outcome: outcome("processing", "API access is Not Enabled for this practice")}, ClassNotPermitted},
		{"oracle", &fhir.Error{StatusCode: 422}, ClassInvalid},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%v", tc.vendor, tc.err), func(t *testing.T) {
			if got := MustLookup(tc.vendor).Classify(tc.err); got != tc.want {
				t.Errorf("Classify(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

func TestSMART(t *testing.T) {
	tests := []struct {
		vendor  string
		base    string
		wantAud string
		sendAud bool
		method  string
		mode    string
	}{
		{Generic, "https://x/fhir/", "https://x/fhir/", true, "client_secret_basic", ""},
		{"epic", "https://x/api/FHIR/R4", "https://x/api/FHIR/R4", true, "private_key_jwt", ""},
		{"ecw", "https://x/fhir/r4/ABC/", "https://x/fhir/r4/ABC", true, "client_secret_basic", "query"},
		{"nextgen", "https://x/fhir", "", false, "client_secret_basic", ""},
		{"oracle", "https://x/r4/t", "https://x/r4/t", true, "client_secret_basic", ""},
	}
	for _, tc := range tests {
		t.Run(tc.vendor, func(t *testing.T) {
			r := MustLookup(tc.vendor).SMART()
			aud, send := r.AudFor(tc.base)
			if aud != tc.wantAud || send != tc.sendAud {
				t.Errorf("AudFor(%q) = %q, %v; want %q, %v", tc.base, aud, send, tc.wantAud, tc.sendAud)
			}
			if r.Methods[0] != tc.method || r.ResponseMode != tc.mode {
				t.Errorf("SMART() methods %v response_mode %q; want %s first, %q", r.Methods, r.ResponseMode, tc.method, tc.mode)
			}
		})
	}
	if got := MustLookup("oracle").SMART().TokenLifetime; got != 10*time.Minute {
		t.Errorf("oracle token lifetime = %s, want 10m", got)
	}
	if got := MustLookup("epic").SMART().IntrospectionAuth; got != "bearer" {
		t.Errorf("epic introspection auth = %q, want bearer", got)
	}
	if !MustLookup("athena").SMART().ServerSideTokenExchange {
		t.Error("athena: server-side token exchange not set")
	}
	if !MustLookup("meditech").Profile().Everything || MustLookup("epic").Profile().Everything {
		t.Error("$everything: want meditech yes, epic no")
	}
}

func TestBulk(t *testing.T) {
	b := MustLookup("oracle").Bulk()
	if !b.AllowsLevel("group") || b.AllowsLevel("system") || b.AllowsLevel("patient") {
		t.Errorf("oracle bulk levels = %v, want group only", b.Levels)
	}
	ok, refused := b.FilterTypes([]string{"Patient", "Observation", "Claim"})
	if diff := cmp.Diff([]string{"Patient", "Observation"}, ok); diff != "" {
		t.Errorf("allowed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"Claim"}, refused); diff != "" {
		t.Errorf("refused (-want +got):\n%s", diff)
	}
	if b.MaxParallelDownloads != 2 {
		t.Errorf("oracle max parallel downloads = %d, want 2", b.MaxParallelDownloads)
	}
	all, none := MustLookup(Generic).Bulk().FilterTypes([]string{"Claim"})
	if len(all) != 1 || len(none) != 0 {
		t.Errorf("generic FilterTypes = %v, %v", all, none)
	}
}

func TestClientOptions(t *testing.T) {
	p := &Profile{Vendor: "test-headers", Headers: map[string]string{"Epic-Client-ID": "abc"},
		Paging: PagingRules{PageSize: 100, MaxResults: 10000}, Limits: Limits{RetryStatuses: []int{429, 503}, RequestsPerSecond: 50, Burst: 1}}
	a := &Adapter{p: p}
	base := fhir.Options{Header: http.Header{"X-Mine": {"1"}}}
	o := a.ClientOptions(base)
	if o.Header.Get("Epic-Client-ID") != "abc" || o.Header.Get("X-Mine") != "1" || base.Header.Get("Epic-Client-ID") != "" {
		t.Errorf("headers = %v (base %v)", o.Header, base.Header)
	}
	if o.MaxPages != 101 {
		t.Errorf("MaxPages = %d, want 101", o.MaxPages)
	}
	if diff := cmp.Diff([]int{429, 503}, o.Retry.Statuses); diff != "" {
		t.Errorf("retry statuses (-want +got):\n%s", diff)
	}
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1) }))
	defer srv.Close()
	start := time.Now()
	for range 6 {
		resp, err := o.HTTPClient.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// 6 requests at 50/s with a burst of 1 take at least 5 intervals.
	if el := time.Since(start); el < 90*time.Millisecond {
		t.Errorf("6 paced requests took %s, want >= 100ms", el)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	for range 3 {
		if _, err := o.HTTPClient.Do(req); err == nil {
			t.Error("request with a cancelled context succeeded")
		}
	}
}

func TestWorkersAndPageSize(t *testing.T) {
	tests := []struct {
		vendor             string
		requested, workers int
		pageSize           int
	}{
		{Generic, 0, 8, 100},
		{Generic, 16, 16, 100},
		{"epic", 8, 4, 100},
		{"ecw", 0, 2, 50},
		{"nextgen", 1, 1, 50},
	}
	if got := MustLookup("epic").WithPageSize(30).PageSize(); got != 30 {
		t.Errorf("epic WithPageSize(30).PageSize() = %d, want 30", got)
	}
	if got := MustLookup("ecw").WithPageSize(500).PageSize(); got != 50 {
		t.Errorf("ecw WithPageSize(500).PageSize() = %d, want 50", got)
	}
	for _, tc := range tests {
		a := MustLookup(tc.vendor)
		if got := a.Workers(tc.requested); got != tc.workers {
			t.Errorf("%s Workers(%d) = %d, want %d", tc.vendor, tc.requested, got, tc.workers)
		}
		if got := a.PageSize(); got != tc.pageSize {
			t.Errorf("%s PageSize() = %d, want %d", tc.vendor, got, tc.pageSize)
		}
	}
}

func TestProfileValidate(t *testing.T) {
	_, err := ParseProfile([]byte(`
vendor: ""
auth: {aud: sometimes, scopes: v3}
paging: {page_size: 500, max_page_size: 100}
types:
  Observation: {required: [{param: category}]}
errors:
  status: {403: nope}
`))
	if err == nil {
		t.Fatal("ParseProfile(bad) = nil error")
	}
	for _, want := range []string{"vendor is required", "auth.aud", "auth.scopes", "page_size 500", "types.Observation.required", "errors.status.403"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := ParseProfile([]byte("vendor: x\nunknown_key: 1\n")); err == nil {
		t.Error("unknown key accepted")
	}
}

func TestRegistry(t *testing.T) {
	want := []string{"athena", "ecw", "epic", "generic", "meditech", "nextgen", "oracle", "veradigm"}
	if diff := cmp.Diff(want, Vendors()); diff != "" {
		t.Errorf("Vendors() (-want +got):\n%s", diff)
	}
	if _, err := Lookup("cerner-classic"); err == nil {
		t.Error("Lookup(unknown) = nil error")
	}
	if a, err := Lookup(""); err != nil || a.Vendor() != Generic {
		t.Errorf("Lookup(\"\") = %v, %v; want generic", a, err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Register(duplicate) did not panic")
		}
	}()
	Register(&Profile{Vendor: "epic"})
}

// TestHooks checks hooks run after the data: a Plan hook rewrites the
// planned queries and a Classify hook overrules the data's class.
func TestHooks(t *testing.T) {
	p := &Profile{Vendor: "hooked", Errors: ErrorRules{Status: map[int]ErrorClass{403: ClassNotPermitted}}}
	a := &Adapter{p: p, hooks: Hooks{
		Plan: func(typ, patientID string, planned []*fhir.Query) []*fhir.Query {
			return append(planned, fhir.NewQuery().Patient(patientID).Set("extra", typ))
		},
		Classify: func(e *fhir.Error) (ErrorClass, bool) {
			if e.StatusCode == 403 && e.Outcome != nil {
				return ClassNotFound, true // e.g. a vendor hiding existence behind 403
			}
			return "", false
		},
	}}
	qs, _ := a.Planner().Plan("Condition", "p1")
	if diff := cmp.Diff([]string{"_count=100&patient=p1", "extra=Condition&patient=p1"}, encode(qs)); diff != "" {
		t.Errorf("Plan with hook (-want +got):\n%s", diff)
	}
	if c := a.Classify(&fhir.Error{StatusCode: 403, Outcome: outcome("forbidden", "")}); c != ClassNotFound {
		t.Errorf("Classify with hook = %q, want not_found", c)
	}
	if c := a.Classify(&fhir.Error{StatusCode: 403}); c != ClassNotPermitted {
		t.Errorf("Classify where the hook declines = %q, want not_permitted", c)
	}
}
