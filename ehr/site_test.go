package ehr

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadSiteProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "site.yaml")
	if err := os.WriteFile(path, []byte(`
name: st-example
vendor: epic
disabled_types: {Immunization: ""}
disabled_params: {Observation: [code]}
local_code_systems: [{system: "urn:oid:1.2.3", types: [Observation]}]
page_size: 50
`), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSiteProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !s.TypeDisabled("Immunization") || s.TypeDisabled("Observation") || !s.ParamDisabled("Observation", "code:text") || s.ParamDisabled("Condition", "code") {
		t.Errorf("site profile read wrongly: %+v", s)
	}
	var nilSite *SiteProfile
	if nilSite.TypeDisabled("Immunization") || nilSite.ParamDisabled("Observation", "code") {
		t.Error("nil site disables something")
	}
	a, _ := MustLookup("epic").WithSite(s)
	if w := a.Warnings(); len(w) != 2 || !strings.Contains(w[0], "not offered by this health system") {
		t.Errorf("Warnings() = %q", w)
	}
	if _, err := LoadSiteProfile(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("missing file: nil error")
	}
}

// TestSiteProfileValidate checks every problem is reported at once.
func TestSiteProfileValidate(t *testing.T) {
	_, err := ParseSiteProfile([]byte(`
vendor: cerner-classic
disabled_types: {immunization: ""}
disabled_params: {Observation: ["Code!"], Condition: []}
local_code_systems: [{system: "local-labs", types: [obs]}]
page_size: -1
`))
	if err == nil {
		t.Fatal("ParseSiteProfile(bad) = nil error")
	}
	for _, want := range []string{"name is required", `vendor "cerner-classic"`, `"immunization" is not a FHIR resource type`,
		`"Code!" is not a search parameter`, "disabled_params.Condition", `system "local-labs"`, `"obs" is not`, "page_size -1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if _, err := ParseSiteProfile([]byte("name: x\ndisabled_type: {}\n")); err == nil {
		t.Error("unknown key accepted")
	}
}

func FuzzParseSiteProfile(f *testing.F) {
	f.Add([]byte("name: x\nvendor: epic\ndisabled_types: {Immunization: off}\npage_size: 10\n"))
	f.Add([]byte("disabled_params: {Observation: [code, \"\"]}\n"))
	f.Add([]byte("local_code_systems: [{system: \"urn:oid:1\"}]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSiteProfile(b)
		if err == nil && (s == nil || s.Validate() != nil) {
			t.Fatalf("ParseSiteProfile accepted an invalid profile: %+v", s)
		}
	})
}

func FuzzParseProfile(f *testing.F) {
	for _, v := range Vendors() {
		b, err := profileFS.ReadFile("profiles/" + v + ".yaml")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseProfile(b)
		if err == nil && p.Validate() != nil {
			t.Fatal("ParseProfile accepted an invalid profile")
		}
	})
}
