package ehr

import (
	"context"
	"strings"
	"testing"
)

// TestVendorNamesOneVocabulary: every name a site may use for a vendor
// resolves to the same registered adapter.
func TestVendorNamesOneVocabulary(t *testing.T) {
	for _, tc := range []struct {
		name   string
		want   string
		wantOK bool
	}{
		{"oracle", "oracle", true},
		{"cerner", "oracle", true},
		{"Cerner", "oracle", true},
		{" CERNER ", "oracle", true},
		{"epic", "epic", true},
		{"", Generic, true},
		{"generic", Generic, true},
		{"millennium", "", false},
		{"allscripts", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Canonical(tc.name)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("Canonical(%q) = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.wantOK)
			}
			a, err := Lookup(tc.name)
			if (err == nil) != tc.wantOK {
				t.Fatalf("Lookup(%q) error = %v, want ok %v", tc.name, err, tc.wantOK)
			}
			if err == nil && a.Vendor() != tc.want {
				t.Errorf("Lookup(%q).Vendor() = %q, want %q", tc.name, a.Vendor(), tc.want)
			}
		})
	}
	if got := AcceptedNames(); !strings.Contains(got, "oracle (cerner)") || !strings.Contains(got, "epic") {
		t.Errorf("AcceptedNames() = %q, want oracle (cerner) and epic listed", got)
	}
	if _, err := Lookup("nope"); err == nil || !strings.Contains(err.Error(), "cerner") {
		t.Errorf("Lookup(nope) error = %v, want the accepted names listed", err)
	}
}

// TestDetectCernerAndOracleHealth: a server that says Cerner and one that
// says Oracle Health are both detected as the one vendor, under its
// registered name.
func TestDetectCernerAndOracleHealth(t *testing.T) {
	for _, tc := range []struct{ name, capability, smart string }{
		{"cerner publisher", `{"resourceType":"CapabilityStatement","publisher":"Cerner","name":"Cerner Conformance Statement"}`, ""},
		{"oracle health publisher", `{"resourceType":"CapabilityStatement","publisher":"Oracle Health","url":"https://fhir.oraclecloud.com/r4/metadata"}`, ""},
		{"cerner smart configuration", "", `{"token_endpoint":"https://authorization.cerner.com/tenants/x/protocols/oauth2/profiles/smart-v1/token"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c, s []byte
			if tc.capability != "" {
				c = []byte(tc.capability)
			}
			if tc.smart != "" {
				s = []byte(tc.smart)
			}
			if v, _, conf := Detect(context.Background(), c, s); v != "oracle" {
				t.Errorf("Detect(%s) = %q (%.2f), want oracle", tc.name, v, conf)
			}
		})
	}
}

// TestSiteProfileVendorAlias: a site profile may name its vendor by alias.
func TestSiteProfileVendorAlias(t *testing.T) {
	for _, tc := range []struct {
		vendor, adapter string
		wantOK          bool
	}{
		{"cerner", "oracle", true},
		{"oracle", "cerner", true},
		{"cerner", "epic", false},
	} {
		site, err := ParseSiteProfile([]byte("name: st-x\nvendor: " + tc.vendor + "\n"))
		if err != nil {
			t.Fatalf("ParseSiteProfile(vendor %s): %v", tc.vendor, err)
		}
		_, err = MustLookup(tc.adapter).WithSite(site)
		if (err == nil) != tc.wantOK {
			t.Errorf("Lookup(%s).WithSite(vendor %s) error = %v, want ok %v", tc.adapter, tc.vendor, err, tc.wantOK)
		}
	}
}
