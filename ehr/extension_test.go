package ehr

import (
	"strings"
	"testing"

	"ehrgate/normalize"
)

// TestVendorExtensionsReachTheModel checks that every extension a vendor
// profile documents is understood by the normalizer once the profile is
// registered, and lands in Common.Extensions with the profile's name.
func TestVendorExtensionsReachTheModel(t *testing.T) {
	for _, vendor := range Vendors() {
		p := MustLookup(vendor).Profile()
		for _, e := range p.Extensions {
			typ := "Patient"
			if len(e.Types) > 0 {
				typ = e.Types[0]
			}
			raw := `{"resourceType":"` + typ + `","id":"x","extension":[{"url":"` + e.URL + `","valueCodeableConcept":{"coding":[{"system":"urn:oid:1.2.3","code":"c1","display":"Shown"}]}}]}`
			res, err := normalize.Normalize(normalize.Ref{Type: typ}, []byte(raw))
			if err != nil {
				t.Fatalf("%s %s: %v", vendor, e.URL, err)
			}
			b := res.Base()
			if len(b.Extensions) != 1 || b.Extensions[0].Name != e.Name || b.Extensions[0].Value != "Shown" || b.Extensions[0].Source != p.Display {
				t.Errorf("%s: Extensions = %+v, want one %s = Shown from %s", e.URL, b.Extensions, e.Name, p.Display)
			}
			if len(b.UnknownExtensions) != 0 {
				t.Errorf("%s: UnknownExtensions = %v, want none", e.URL, b.UnknownExtensions)
			}
		}
	}
	if p := MustLookup("epic").Profile(); len(p.Extensions) < 2 {
		t.Errorf("the Epic profile documents %d extensions, want at least 2", len(p.Extensions))
	}
}

func TestProfileExtensionNeedsNameAndLabel(t *testing.T) {
	_, err := ParseProfile([]byte("vendor: x\nextensions:\n  - url: urn:x\n    types: [Patient]\n"))
	if err == nil || !strings.Contains(err.Error(), "extensions[0]") {
		t.Fatalf("ParseProfile = %v, want an error naming extensions[0]", err)
	}
}
