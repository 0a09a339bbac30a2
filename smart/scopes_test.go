package smart

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const labQuery = "category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"

var scopeRoundTrips = []struct {
	in   string
	want Scope
}{
	{"patient/Observation.read", Scope{Context: "patient", Type: "Observation", Perms: PermRead | PermSearch, Style: V1}},
	{"user/*.write", Scope{Context: "user", Type: "*", Perms: PermCreate | PermUpdate | PermDelete, Style: V1}},
	{"system/Patient.*", Scope{Context: "system", Type: "Patient", Perms: PermAll, Style: V1}},
	{"patient/Observation.rs", Scope{Context: "patient", Type: "Observation", Perms: PermRead | PermSearch, Style: V2}},
	{"patient/Observation.cruds", Scope{Context: "patient", Type: "Observation", Perms: PermAll, Style: V2}},
	{"user/Encounter.r", Scope{Context: "user", Type: "Encounter", Perms: PermRead, Style: V2}},
	{"system/Condition.ud", Scope{Context: "system", Type: "Condition", Perms: PermUpdate | PermDelete, Style: V2}},
	{"patient/Observation.rs?" + labQuery, Scope{Context: "patient", Type: "Observation", Perms: PermRead | PermSearch, Query: labQuery, Style: V2}},
	{"patient/*.rs", Scope{Context: "patient", Type: "*", Perms: PermRead | PermSearch, Style: V2}},
	{"openid", Scope{Name: "openid"}},
	{"fhirUser", Scope{Name: "fhirUser"}},
	{"launch", Scope{Name: "launch"}},
	{"launch/patient", Scope{Name: "launch/patient"}},
	{"offline_access", Scope{Name: "offline_access"}},
}

func TestParseScopeRoundTrip(t *testing.T) {
	for _, c := range scopeRoundTrips {
		got, err := ParseScope(c.in)
		if err != nil {
			t.Errorf("ParseScope(%q) error %v", c.in, err)
			continue
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("ParseScope(%q) (-want +got):\n%s", c.in, diff)
		}
		if s := got.String(); s != c.in {
			t.Errorf("ParseScope(%q).String() = %q", c.in, s)
		}
	}
}

func TestParseScopeErrors(t *testing.T) {
	for _, in := range []string{
		"", "patient/Observation", "patient/Observation.", "patient/Observation.sr", "patient/Observation.rr",
		"patient/Observation.x", "patient/observation.read", "patient/Obs-ervation.rs", "patient/.rs",
		"patient/Observation.rs?", "patient/Observation.read?category=x", `quo"te`, "back\\slash", "tab\there",
	} {
		if s, err := ParseScope(in); !errors.Is(err, ErrScopeSyntax) {
			t.Errorf("ParseScope(%q) = %+v, %v; want ErrScopeSyntax", in, s, err)
		}
	}
	all, err := ParseScopes("openid patient/Observation.rs bad/ patient/X.zz")
	if err == nil || len(all) != 3 {
		t.Errorf("ParseScopes with one bad scope = %v, %v; want the 3 good ones and an error", all, err)
	}
}

func TestScopeAs(t *testing.T) {
	cases := []struct{ in, v1, v2 string }{
		{"patient/Observation.rs?" + labQuery, "patient/Observation.read", "patient/Observation.rs?" + labQuery},
		{"patient/Observation.r", "patient/Observation.read", "patient/Observation.r"},
		{"user/Patient.cud", "user/Patient.write", "user/Patient.cud"},
		{"user/Patient.rud", "user/Patient.*", "user/Patient.rud"},
		{"patient/Observation.read", "patient/Observation.read", "patient/Observation.rs"},
		{"openid", "openid", "openid"},
	}
	for _, c := range cases {
		s, _ := ParseScope(c.in)
		if got := s.As(V1).String(); got != c.v1 {
			t.Errorf("%q.As(V1) = %q, want %q", c.in, got, c.v1)
		}
		if got := s.As(V2).String(); got != c.v2 {
			t.Errorf("%q.As(V2) = %q, want %q", c.in, got, c.v2)
		}
	}
}

func TestLeastPrivilege(t *testing.T) {
	cases := []struct {
		name string
		req  ScopeRequest
		want string
	}{
		{"v1 patient", ScopeRequest{Context: "patient", Types: []string{"Observation", "Patient", "Observation"}, Style: V1, Extra: []string{"launch", "openid", "fhirUser"}},
			"patient/Observation.read patient/Patient.read launch openid fhirUser"},
		{"v2 system with restriction", ScopeRequest{Context: "system", Types: []string{"Patient", "Observation"}, Style: V2,
			Restrictions: map[string][]string{"Observation": {labQuery, "category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"}}},
			"system/Observation.rs?" + labQuery + " system/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs system/Patient.rs"},
		{"v1 ignores restrictions", ScopeRequest{Context: "user", Types: []string{"Observation"}, Style: V1, Restrictions: map[string][]string{"Observation": {labQuery}}},
			"user/Observation.read"},
		{"wildcard only when configured", ScopeRequest{Context: "patient", Types: []string{"*"}, Style: V2}, "patient/*.rs"},
		{"nothing configured", ScopeRequest{Context: "patient", Style: V2}, ""},
		{"v2 write-back", ScopeRequest{Context: "system", Types: []string{"Patient"}, Style: V2,
			Writes: map[string]Perm{"Flag": PermCreate | PermUpdate, "Task": PermCreate, "Observation": PermDelete}},
			"system/Patient.rs system/Flag.cu system/Task.c"},
		{"v1 write-back", ScopeRequest{Context: "system", Style: V1, Writes: map[string]Perm{"Flag": PermCreate}},
			"system/Flag.write"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := LeastPrivilege(c.req)
			if got.String() != c.want {
				t.Errorf("LeastPrivilege() = %q, want %q", got, c.want)
			}
			for _, s := range got {
				if s.IsResource() && s.Perms&(PermCreate|PermUpdate|PermDelete) != 0 && c.req.Writes == nil {
					t.Errorf("least privilege asks to write: %s", s)
				}
				if s.IsResource() && s.Type == "*" && c.req.Types[0] != "*" {
					t.Errorf("wildcard requested without configuration: %s", s)
				}
			}
		})
	}
}

func TestCompareScopes(t *testing.T) {
	cases := []struct {
		name, requested, granted, notGranted string
	}{
		{"all", "patient/Observation.rs patient/Patient.rs openid", "openid patient/Patient.rs patient/Observation.rs", ""},
		{"v1 grant covers v2 request", "patient/Observation.rs", "patient/Observation.read", ""},
		{"v2 grant covers v1 request", "patient/Observation.read", "patient/Observation.rs", ""},
		{"split grant", "patient/Observation.rs", "patient/Observation.r patient/Observation.s", ""},
		{"wildcard grant", "patient/Observation.rs patient/Condition.rs", "patient/*.read", ""},
		{"missing type", "patient/Observation.rs patient/Condition.rs", "patient/Condition.rs", "patient/Observation.rs"},
		{"partial perms", "patient/Observation.rs", "patient/Observation.r", "patient/Observation.rs"},
		{"other context", "patient/Observation.rs", "user/Observation.rs", "patient/Observation.rs"},
		{"unrestricted covers restricted", "patient/Observation.rs?" + labQuery, "patient/Observation.rs", ""},
		{"restricted does not cover unrestricted", "patient/Observation.rs", "patient/Observation.rs?" + labQuery, "patient/Observation.rs"},
		{"missing openid", "openid fhirUser", "fhirUser", "openid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := ParseScopes(c.requested)
			gr, _ := ParseScopes(c.granted)
			d := CompareScopes(req, gr)
			if d.NotGranted.String() != c.notGranted || d.Complete() != (c.notGranted == "") {
				t.Errorf("CompareScopes(%q, %q).NotGranted = %q, want %q", c.requested, c.granted, d.NotGranted, c.notGranted)
			}
		})
	}
	gr, _ := ParseScopes("patient/Observation.rs?" + labQuery + " patient/Patient.read")
	for _, c := range []struct {
		typ            string
		ok, restricted bool
	}{{"Patient", true, false}, {"Observation", true, true}, {"Condition", false, false}} {
		if ok, r := gr.CanSearch("patient", c.typ); ok != c.ok || r != c.restricted {
			t.Errorf("CanSearch(patient, %s) = %v, %v; want %v, %v", c.typ, ok, r, c.ok, c.restricted)
		}
	}
}

func FuzzParseScopes(f *testing.F) {
	for _, c := range scopeRoundTrips {
		f.Add(c.in)
	}
	f.Add("patient/Observation.rs?a=b&c=d user/*.* launch/patient")
	f.Fuzz(func(t *testing.T, s string) {
		ss, _ := ParseScopes(s)
		// Whatever parses must print and re-parse to the same thing.
		again, err := ParseScopes(ss.String())
		if err != nil {
			t.Fatalf("re-parsing %q: %v", ss.String(), err)
		}
		if diff := cmp.Diff(ss, again); diff != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s", s, diff)
		}
		_ = CompareScopes(ss, again)
	})
}
