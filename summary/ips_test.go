package summary_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"ehrgate/summary"
)

// ipsDoc decodes an IPS Bundle enough to check it.
type ipsDoc struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
	} `json:"entry"`
}

type ipsSection struct {
	Title string `json:"title"`
	Code  struct {
		Coding []struct{ Code string } `json:"coding"`
	} `json:"code"`
	Text struct {
		Div string `json:"div"`
	} `json:"text"`
	Entry []struct {
		Reference string `json:"reference"`
	} `json:"entry"`
	EmptyReason *struct {
		Coding []struct{ Code string } `json:"coding"`
		Text   string                  `json:"text"`
	} `json:"emptyReason"`
}

func checkIPS(t *testing.T, b []byte) map[string]ipsSection {
	t.Helper()
	var d ipsDoc
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("IPS is not JSON: %v", err)
	}
	if d.ResourceType != "Bundle" || d.Type != "document" || len(d.Entry) < 3 {
		t.Fatalf("IPS = %s %s with %d entries, want a document Bundle", d.ResourceType, d.Type, len(d.Entry))
	}
	urls := map[string]bool{}
	for _, e := range d.Entry {
		if urls[e.FullURL] {
			t.Errorf("fullUrl %s twice", e.FullURL)
		}
		urls[e.FullURL] = true
	}
	var comp struct {
		ResourceType string `json:"resourceType"`
		Type         struct {
			Coding []struct{ Code string } `json:"coding"`
		} `json:"type"`
		Subject struct{ Reference string }   `json:"subject"`
		Author  []struct{ Reference string } `json:"author"`
		Section []ipsSection                 `json:"section"`
	}
	if err := json.Unmarshal(d.Entry[0].Resource, &comp); err != nil || comp.ResourceType != "Composition" || comp.Type.Coding[0].Code != "60591-5" {
		t.Fatalf("first entry is not the IPS Composition: %v", err)
	}
	if !urls[comp.Subject.Reference] || len(comp.Author) != 1 || !urls[comp.Author[0].Reference] {
		t.Errorf("subject %q or author %v not in the Bundle", comp.Subject.Reference, comp.Author)
	}
	out := map[string]ipsSection{}
	for _, s := range comp.Section {
		out[s.Code.Coding[0].Code] = s
		if (len(s.Entry) == 0) != (s.EmptyReason != nil) {
			t.Errorf("section %s: %d entries, emptyReason %v; want an emptyReason exactly when empty", s.Title, len(s.Entry), s.EmptyReason)
		}
		for _, e := range s.Entry {
			if !urls[e.Reference] {
				t.Errorf("section %s refers to %s, not in the Bundle", s.Title, e.Reference)
			}
		}
		if !strings.HasPrefix(s.Text.Div, `<div xmlns="http://www.w3.org/1999/xhtml">`) {
			t.Errorf("section %s narrative = %q", s.Title, s.Text.Div)
		}
	}
	for _, code := range []string{"11450-4", "10160-0", "48765-2", "30954-2", "8716-3"} {
		if _, ok := out[code]; !ok {
			t.Errorf("IPS lacks section %s", code)
		}
	}
	return out
}

func indent(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", " "); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestIPS(t *testing.T) {
	o := summary.IPSOptions{PatientURL: "https://ehrgate.test/fhir/Patient/epic-a.p1", Now: asOf}
	s := build(t, twoSources(t), summary.Options{}, epic, cerner)
	b, err := summary.IPS(s, o)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "person.ips.json", indent(t, b))
	secs := checkIPS(t, b)
	if n := len(secs["11450-4"].Entry); n != 3 {
		t.Errorf("problems: %d entries, want 3", n)
	}
	if n := len(secs["30954-2"].Entry); n != 4 {
		t.Errorf("results: %d entries, want 4 (last and previous of two labs)", n)
	}
	al := secs["48765-2"]
	if len(al.Entry) != 1 || !strings.Contains(al.Text.Div, "Source cerner: not available from this source") {
		t.Errorf("allergies: %d entries, narrative %q; want one and cerner's absence said", len(al.Entry), al.Text.Div)
	}
	again, _ := summary.IPS(s, o)
	if !bytes.Equal(again, b) {
		t.Errorf("IPS is not deterministic")
	}

	// cerner alone: allergies not available, vital signs failed
	s = build(t, twoSources(t), summary.Options{}, cerner)
	o.PatientURL = "https://ehrgate.test/fhir/Patient/cerner.77"
	b, err = summary.IPS(s, o)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "cerner.ips.json", indent(t, b))
	secs = checkIPS(t, b)
	for code, want := range map[string]string{"48765-2": "not available from this source", "8716-3": "could not be fetched"} {
		er := secs[code].EmptyReason
		if er == nil || er.Coding[0].Code != "unavailable" || !strings.Contains(er.Text, want) {
			t.Errorf("section %s emptyReason = %+v, want unavailable: %s", code, er, want)
		}
	}

	// every source read, nothing recorded: nilknown; withheld: withheld
	f := twoSources(t)
	f.recs = f.recs[:2] // the two Patients only
	s = build(t, f, summary.Options{Withheld: map[string]bool{"Observation": true}}, epic)
	b, _ = summary.IPS(s, o)
	secs = checkIPS(t, b)
	for code, want := range map[string]string{"11450-4": "nilknown", "48765-2": "nilknown", "30954-2": "withheld", "8716-3": "withheld"} {
		if er := secs[code].EmptyReason; er == nil || er.Coding[0].Code != want {
			t.Errorf("section %s emptyReason = %+v, want %s", code, er, want)
		}
	}
}
