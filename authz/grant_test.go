package authz

import (
	"strings"
	"testing"

	"ehrgate/smart"
)

func mustScopes(t testing.TB, s string) smart.Scopes {
	t.Helper()
	ss, err := smart.ParseScopes(s)
	if err != nil {
		t.Fatalf("ParseScopes(%q) = %v", s, err)
	}
	return ss
}

var grantCases = []struct {
	name                  string
	requested, registered string
	flow                  flow
	want                  string
}{
	{"nothing registered", "launch/patient patient/Observation.rs", "", flowPerson, ""},
	{"exact", "launch/patient patient/Observation.rs", "launch/patient patient/Observation.rs", flowPerson, "launch/patient patient/Observation.rs"},
	{"beyond registration dropped", "launch/patient patient/Observation.rs patient/Condition.rs", "launch/patient patient/Observation.rs", flowPerson, "launch/patient patient/Observation.rs"},
	{"v2 permissions narrowed", "launch/patient patient/Observation.cruds", "launch/patient patient/Observation.rs", flowPerson, "launch/patient patient/Observation.rs"},
	{"v1 request, v2 registration", "launch/patient patient/Observation.read", "launch/patient patient/Observation.rs", flowPerson, "launch/patient patient/Observation.read"},
	{"v1 .* narrowed to .read", "launch/patient patient/Observation.*", "launch/patient patient/*.rs", flowPerson, "launch/patient patient/Observation.read"},
	{"v1 .write not covered", "launch/patient patient/Observation.write", "launch/patient patient/Observation.cu", flowPerson, "launch/patient"},
	{"wildcard becomes registered types", "launch/patient patient/*.rs", "launch/patient patient/Observation.rs patient/Patient.r", flowPerson, "launch/patient patient/Observation.rs patient/Patient.r"},
	{"wildcard v1 skips restricted registration", "launch/patient patient/*.read", "launch/patient patient/Observation.rs?category=laboratory patient/Patient.rs", flowPerson, "launch/patient patient/Patient.read"},
	{"restricted request not widened", "launch/patient patient/Observation.rs?category=laboratory", "launch/patient patient/Observation.rs", flowPerson, "launch/patient patient/Observation.rs?category=laboratory"},
	{"restricted registration not widened", "launch/patient patient/Observation.rs", "launch/patient patient/Observation.rs?category=laboratory", flowPerson, "launch/patient"},
	{"patient scopes need launch/patient", "patient/Observation.rs user/Observation.rs", "patient/Observation.rs user/Observation.rs", flowPerson, "user/Observation.rs"},
	{"launch/patient must be registered", "launch/patient patient/Observation.rs", "patient/Observation.rs", flowPerson, ""},
	{"offline_access must be registered", "user/Patient.rs offline_access online_access", "user/Patient.rs online_access", flowPerson, "user/Patient.rs online_access"},
	{"no system scopes with a person", "system/Patient.rs user/Patient.rs", "system/Patient.rs user/Patient.rs", flowPerson, "user/Patient.rs"},
	{"only system scopes for backends", "system/Patient.rs patient/Patient.rs launch/patient offline_access", "system/Patient.rs patient/Patient.rs launch/patient offline_access", flowSystem, "system/Patient.rs"},
	{"openid and launch not granted", "openid fhirUser launch user/Patient.rs", "openid fhirUser launch user/Patient.rs", flowPerson, "user/Patient.rs"},
	{"duplicates once", "system/Patient.rs system/Patient.rs system/Patient.read", "system/*.rs", flowSystem, "system/Patient.rs system/Patient.read"},
}

func TestGrant(t *testing.T) {
	for _, tc := range grantCases {
		t.Run(tc.name, func(t *testing.T) {
			got := grant(mustScopes(t, tc.requested), mustScopes(t, tc.registered), tc.flow).String()
			if got != tc.want {
				t.Errorf("grant(%q, %q) = %q, want %q", tc.requested, tc.registered, got, tc.want)
			}
		})
	}
}

// FuzzGrant checks grant's invariants: it never grants what the
// registration does not cover, nor more than was requested, nor a scope
// of another flow.
func FuzzGrant(f *testing.F) {
	for _, tc := range grantCases {
		f.Add(tc.requested, tc.registered, tc.flow == flowSystem)
	}
	f.Fuzz(func(t *testing.T, requested, registered string, system bool) {
		req, _ := smart.ParseScopes(requested)
		reg, _ := smart.ParseScopes(registered)
		fl := flowPerson
		if system {
			fl = flowSystem
		}
		got := grant(req, reg, fl)
		if d := smart.CompareScopes(got, reg); !d.Complete() {
			t.Errorf("grant(%q, %q) = %q, beyond the registration: %q", requested, registered, got, d.NotGranted)
		}
		if d := smart.CompareScopes(got, req); !d.Complete() {
			// A wildcard request covers the registered types it became.
			t.Errorf("grant(%q, %q) = %q, beyond the request: %q", requested, registered, got, d.NotGranted)
		}
		for _, s := range got {
			if s.IsResource() && (s.Context == smart.ContextSystem) != system {
				t.Errorf("grant(%q, %q, system=%v) = %q: a scope of another flow", requested, registered, system, got)
			}
			if !s.IsResource() && (system || !strings.Contains(" launch/patient offline_access online_access ", " "+s.Name+" ")) {
				t.Errorf("grant(%q, %q) = %q: scope %s is never granted here", requested, registered, got, s.Name)
			}
		}
	})
}

// TestSystemScopeError: client_credentials scopes no client may be granted
// are refused before the client authenticates.
func TestSystemScopeError(t *testing.T) {
	for _, tc := range []struct {
		scope string
		ok    bool
	}{
		{"system/*.read", true},
		{"system/*.*", true},
		{"system/Patient.cruds system/Observation.rs", true},
		{"patient/Patient.rs", true}, // no system/ scope: left to the grant
		{"launch fhirUser", true},
		{"system/UnknownResource.read", false},
		{"system/UnknownResource.r", false},
		{"system/Patient.write", false},
		{"system/Patient.cud", false},
	} {
		if err := systemScopeError(tc.scope); (err == nil) != tc.ok {
			t.Errorf("systemScopeError(%q) = %v, want ok %v", tc.scope, err, tc.ok)
		}
	}
}
