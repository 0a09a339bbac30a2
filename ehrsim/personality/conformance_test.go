package personality_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ehrgate/ehr"
	"ehrgate/ehrsim/personality"
	"ehrgate/fhir"
)

// fixturesDir returns $EHRGATE_FIXTURES (default ../shared/fixtures from the
// repository root) or skips.
func fixturesDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("EHRGATE_FIXTURES")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "fixtures")
	}
	if _, err := os.Stat(filepath.Join(dir, "smart-config")); err != nil {
		t.Skipf("shared fixtures not found at %s (set EHRGATE_FIXTURES): %v", dir, err)
	}
	return dir
}

func getJSON(t *testing.T, u string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return resp.StatusCode, m
}

func metadata(t *testing.T, base string) ([]byte, map[string]any) {
	t.Helper()
	resp, err := http.Get(base + "/metadata")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return b, m
}

// vendorKeys are the CapabilityStatement elements that carry a vendor's
// identity.
var vendorKeys = []string{"software", "name", "publisher", "copyright", "url"}

// TestCapabilityMatchesCaptures compares each personality's
// CapabilityStatement with the vendor's recorded one: the same identity
// elements present (and absent), software with the same fields, and the same
// detected vendor.
func TestCapabilityMatchesCaptures(t *testing.T) {
	dir := filepath.Join(fixturesDir(t), "smart-config", "capability")
	sim := newSim(t)
	captures := map[string]string{
		"epic":     "epic-dstu2.Conformance.json",
		"oracle":   "cerner-dstu2.Conformance.json",
		"meditech": "meditech-dstu2.Conformance.json",
		"veradigm": "allscripts-dstu2.Conformance.json",
	}
	for vendor, file := range captures {
		t.Run(vendor, func(t *testing.T) {
			capBytes, err := os.ReadFile(filepath.Join(dir, file))
			if err != nil {
				t.Fatal(err)
			}
			var capture map[string]any
			if err := json.Unmarshal(capBytes, &capture); err != nil {
				t.Fatal(err)
			}
			raw, got := metadata(t, serveVendor(t, sim, vendor, nil))
			for _, k := range vendorKeys {
				_, inCapture := capture[k]
				_, inGot := got[k]
				if inCapture != inGot {
					t.Errorf("%s: capture has it %v, personality %v", k, inCapture, inGot)
				}
			}
			if sw, ok := capture["software"].(map[string]any); ok {
				gsw, _ := got["software"].(map[string]any)
				for k := range sw {
					if _, ok := gsw[k]; !ok {
						t.Errorf("software.%s missing (personality software %v)", k, gsw)
					}
				}
			}
			wantV, _, _ := ehr.Detect(context.Background(), capBytes, nil)
			gotV, _, conf := ehr.Detect(context.Background(), raw, nil)
			if gotV != wantV || gotV != vendor {
				t.Errorf("Detect(personality) = %q (%.2f), Detect(capture) = %q, want %q", gotV, conf, wantV, vendor)
			}
		})
	}
}

// TestPersonalityBehaviour checks the paging, error and extension styles.
func TestPersonalityBehaviour(t *testing.T) {
	sim := newSim(t)
	for _, vendor := range ehr.Vendors() {
		t.Run(vendor, func(t *testing.T) {
			spec, ok := personality.Lookup(vendor)
			if !ok {
				t.Fatalf("no personality for %s", vendor)
			}
			base := serveVendor(t, sim, vendor, nil)
			raw, _ := metadata(t, base)
			if v, _, _ := ehr.Detect(context.Background(), raw, nil); v != vendor {
				t.Errorf("Detect(metadata) = %q, want %q", v, vendor)
			}
			// Paging: two pages of patients.
			status, page1 := getJSON(t, base+"/Patient?_count=2")
			if status != 200 {
				t.Fatalf("Patient search: %d", status)
			}
			b1 := toBundle(t, page1)
			next := b1.LinkURL("next")
			_, page2 := getJSON(t, next)
			b2 := toBundle(t, page2)
			if spec.PrevRelation != "" && !hasRelation(b2, spec.PrevRelation) {
				t.Errorf("page 2 links %v lack %q", b2.Link, spec.PrevRelation)
			}
			// The last page.
			_, last := getJSON(t, base+"/Patient?_count=1000")
			bl := toBundle(t, last)
			if got := bl.LinkURL("next") != "" && bl.LinkURL("next") == bl.LinkURL("self"); got != spec.NextEqualsSelfOnLast {
				t.Errorf("last page next==self = %v, want %v", got, spec.NextEqualsSelfOnLast)
			}
			if c := spec.MaxPageSize; c > 0 && c < testPatients*100 {
				if !strings.Contains(bl.LinkURL("self"), "_count="+itoa(c)) {
					t.Errorf("self %q: _count not capped at %d", bl.LinkURL("self"), c)
				}
			}
			// Unknown parameter.
			status, oo := getJSON(t, base+"/Patient?ehrgate-unknown=1")
			if spec.Lenient {
				if status != 200 {
					t.Errorf("lenient vendor answered %d to an unknown parameter", status)
				}
			} else if status != spec.UnsupportedParam.Status || issueCode(oo) != spec.UnsupportedParam.Code {
				t.Errorf("unknown parameter: %d %q, want %d %q", status, issueCode(oo), spec.UnsupportedParam.Status, spec.UnsupportedParam.Code)
			}
			// Unsupported type.
			status, oo = getJSON(t, base+"/Basic?patient=p00000")
			if status != spec.UnsupportedType.Status || issueCode(oo) != spec.UnsupportedType.Code {
				t.Errorf("unsupported type: %d %q, want %d %q", status, issueCode(oo), spec.UnsupportedType.Status, spec.UnsupportedType.Code)
			}
			// Extension.
			for _, x := range spec.Extensions {
				typ := x.Types[0]
				_, res := getJSON(t, base+"/"+typ+"?patient=p00000")
				if typ == "Patient" {
					_, res = getJSON(t, base+"/Patient?_id=p00000")
				}
				if !strings.Contains(mustJSON(res), x.URL) {
					t.Errorf("%s lacks the vendor extension %s", typ, x.URL)
				}
			}
		})
	}
}

// TestSiteOnPersonality checks a site profile's effect on the wire.
func TestSiteOnPersonality(t *testing.T) {
	site, err := ehr.ParseSiteProfile([]byte(siteYAML))
	if err != nil {
		t.Fatal(err)
	}
	sim := newSim(t)
	base := serveVendor(t, sim, "epic", site)
	_, cs := metadata(t, base)
	s := mustJSON(cs)
	if strings.Contains(s, `"type":"Immunization"`) {
		t.Error("CapabilityStatement still lists Immunization")
	}
	status, oo := getJSON(t, base+"/Immunization?patient=p00000")
	if status != 400 || issueCode(oo) != "not-supported" {
		t.Errorf("Immunization search: %d %q, want epic's not-supported", status, issueCode(oo))
	}
	status, _ = getJSON(t, base+"/Observation?patient=p00000&category=laboratory&code=2345-7")
	if status != 400 {
		t.Errorf("Observation by code on a site that disables it: %d, want 400", status)
	}
	_, b := getJSON(t, base+"/Observation?patient=p00000&category=laboratory")
	if !strings.Contains(mustJSON(b), "urn:oid:1.2.840.114350.1.13.999.2.7.2.768282") {
		t.Error("laboratory Observations lack the site's local code system")
	}
	if _, err := personality.Wrap("cerner-classic", nil, sim.Handler()); err == nil {
		t.Error("Wrap(unknown vendor) = nil error")
	}
	if !slices.Contains(personality.Vendors(), "generic") {
		t.Error("Vendors() lacks generic")
	}
}

func toBundle(t *testing.T, m map[string]any) *fhir.Bundle {
	t.Helper()
	var b fhir.Bundle
	if err := json.Unmarshal([]byte(mustJSON(m)), &b); err != nil {
		t.Fatal(err)
	}
	return &b
}

func hasRelation(b *fhir.Bundle, rel string) bool {
	for _, l := range b.Link {
		if l.Relation == rel {
			return true
		}
	}
	return false
}

func issueCode(m map[string]any) string {
	is, _ := m["issue"].([]any)
	if len(is) == 0 {
		return ""
	}
	c, _ := is[0].(map[string]any)["code"].(string)
	return c
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
