package tofhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ehrgate/hl7"
	"ehrgate/refresh"
)

// convertedMessages converts every handwritten message and, when the shared
// fixtures are present, every fixture message tofhir converts.
func convertedMessages(t *testing.T) map[string]*Result {
	t.Helper()
	files, _ := filepath.Glob("testdata/messages/*.hl7")
	{
		dir := os.Getenv("EHRGATE_FIXTURES")
		for _, c := range []string{dir, "../../../shared/fixtures"} {
			if c == "" {
				continue
			}
			if fx, _ := filepath.Glob(filepath.Join(c, "hl7v2", "messages", "*.hl7")); len(fx) > 0 {
				files = append(files, fx...)
				break
			}
		}
	}
	out := map[string]*Result{}
	for _, f := range files {
		r, err := Convert(parseFile(t, f), Options{})
		if err != nil {
			continue // refusals and unsupported types are tested elsewhere
		}
		out[f] = r
	}
	return out
}

// TestConvertedResourcesNormalize runs every converted resource through
// refresh.NewRecord, as hl7store does: each must normalize, keep its type
// and id, and (clinical resources and the Provenance) point at the
// message's patient; the MessageHeader and payer Organizations at none.
func TestConvertedResourcesNormalize(t *testing.T) {
	for f, r := range convertedMessages(t) {
		for _, res := range r.Resources {
			rec, err := refresh.NewRecord("hl7", res.JSON, time.Unix(0, 0), r.Source)
			if err != nil {
				t.Errorf("%s: NewRecord(%s/%s) = %v", filepath.Base(f), res.Type, res.ID, err)
				continue
			}
			if rec.Type != res.Type || rec.ID != res.ID {
				t.Errorf("%s: NewRecord(%s/%s) came out as %s/%s", filepath.Base(f), res.Type, res.ID, rec.Type, rec.ID)
			}
			// Each resource is filed under its own patient (two for an A17),
			// message-level and shared ones under none.
			if rec.PatientID != res.PatientID {
				t.Errorf("%s: %s/%s has patient %q, want %q", filepath.Base(f), res.Type, res.ID, rec.PatientID, res.PatientID)
			}
			if res.PatientID != "" && res.PatientID != r.PatientID && len(r.Patients) < 2 {
				t.Errorf("%s: %s/%s belongs to %q, not the message's patient %q", filepath.Base(f), res.Type, res.ID, res.PatientID, r.PatientID)
			}
		}
	}
}

// TestADTClinicalFixtures checks AL1, DG1 and NK1 of the fixture messages
// against the FHIR-Converter reference: every allergen the reference names
// ehrgate names too (code or text), and every diagnosis code and contact
// family name ehrgate produces is in the reference. Counts are not compared:
// the reference also makes Conditions and RelatedPersons from GT1, IN1 and
// DG1-21 (see README).
func TestADTClinicalFixtures(t *testing.T) {
	root := filepath.Join(fixturesDir(t), "hl7v2")
	msgs, _ := filepath.Glob(filepath.Join(root, "messages", "ADT*.hl7"))
	vxu, _ := filepath.Glob(filepath.Join(root, "messages", "VXU*.hl7"))
	msgs = append(msgs, vxu...)
	checked := 0
	for _, path := range msgs {
		name := strings.TrimSuffix(filepath.Base(path), ".hl7")
		expRaw, err := os.ReadFile(filepath.Join(root, "expected-fhir", name+"-expected.json"))
		if err != nil {
			continue
		}
		res, err := Convert(parseFile(t, path), Options{})
		if err != nil {
			continue
		}
		var bundle struct {
			Entry []struct {
				Resource map[string]any `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(expRaw, &bundle); err != nil {
			t.Fatal(err)
		}
		ref := map[string]map[string]bool{}
		for _, e := range bundle.Entry {
			typ, _ := e.Resource["resourceType"].(string)
			if ref[typ] == nil {
				ref[typ] = map[string]bool{}
			}
			for _, w := range words(typ, e.Resource) {
				ref[typ][w] = true
			}
		}
		got := map[string]map[string]bool{}
		for _, r := range res.Resources {
			var m map[string]any
			if err := json.Unmarshal(r.JSON, &m); err != nil {
				t.Fatal(err)
			}
			if got[r.Type] == nil {
				got[r.Type] = map[string]bool{}
			}
			for _, w := range words(r.Type, m) {
				got[r.Type][w] = true
			}
		}
		for w := range ref["AllergyIntolerance"] {
			if !got["AllergyIntolerance"][w] {
				t.Errorf("%s: allergen %q of the reference is missing", name, w)
			}
		}
		for _, typ := range []string{"Condition", "RelatedPerson"} {
			for w := range got[typ] {
				if !ref[typ][w] {
					t.Errorf("%s: %s %q is not in the reference", name, typ, w)
				}
			}
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no ADT fixture was checked")
	}
}

// words are the facts compared per resource: allergen code or text,
// diagnosis codes, contact family names.
func words(typ string, r map[string]any) []string {
	var out []string
	cc := func(v any) {
		m, _ := v.(map[string]any)
		cs, _ := m["coding"].([]any)
		for _, c := range cs {
			cm, _ := c.(map[string]any)
			if s, _ := cm["code"].(string); s != "" {
				out = append(out, s)
			}
		}
		if len(cs) == 0 {
			if s, _ := m["text"].(string); s != "" {
				out = append(out, s)
			}
		}
	}
	switch typ {
	case "AllergyIntolerance", "Condition":
		cc(r["code"])
	case "RelatedPerson":
		ns, _ := r["name"].([]any)
		for _, n := range ns {
			nm, _ := n.(map[string]any)
			if s, _ := nm["family"].(string); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// TestOtherIdentifiersNeverIdentity: PID-2/4/19/20 are kept as identifiers
// but never make or change the patient's identity.
func TestOtherIdentifiersNeverIdentity(t *testing.T) {
	const head = "MSH|^~\\&|APP|FAC|EHRGATE|EHRGATE|20260302100000||ADT^A28^ADT_A05|C1|P|2.5.1\r"
	tests := []struct {
		name, pid string
		wantErr   bool
	}{
		{"only PID-4", "PID|1|||55123^^^SOUTHMC^MR|Reyes^Lucia\r", true},
		{"only PID-19", "PID|1||\"\"||Reyes^Lucia|||||||||||||123-45-6789\r", true},
		{"only PID-20", "PID|1||UNKNOWN^^^FAC^MR||Reyes^Lucia||||||||||||||D1234567^NH\r", true},
		{"PID-3 and PID-19", "PID|1||100400^^^FAC^MR||Reyes^Lucia|||||||||||||123-45-6789\r", false},
	}
	base, err := Convert(mustParse(t, head+"PID|1||100400^^^FAC^MR||Reyes^Lucia\r"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Convert(mustParse(t, head+tt.pid), Options{})
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), ErrNoPatient.Error()) {
					t.Fatalf("Convert(%q) = %v, want ErrNoPatient", tt.pid, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.PatientID != base.PatientID {
				t.Errorf("PatientID = %s, want %s (identity from PID-3 only)", r.PatientID, base.PatientID)
			}
		})
	}
}

func mustParse(t *testing.T, s string) *hl7.Message {
	t.Helper()
	m, err := hl7.Parse([]byte(s), hl7.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestVisitTriggers: the added visit triggers update the visit of A01 (same
// Encounter id) with their status; A23 is status-only like A11; A17 (two
// PID/PV1 pairs) is tested in swap_test.go.
func TestVisitTriggers(t *testing.T) {
	admit, err := Convert(parseFile(t, "testdata/messages/adt-a01.hl7"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	encID := admit.Of("Encounter")[0].ID
	for _, tt := range []struct {
		trig, status string
		statusOnly   bool
	}{
		{"a05", "planned", false}, {"a06", "in-progress", false}, {"a07", "in-progress", false},
		{"a12", "in-progress", false}, {"a21", "onleave", false}, {"a22", "in-progress", false},
		{"a23", "entered-in-error", true},
	} {
		t.Run(tt.trig, func(t *testing.T) {
			r, err := Convert(parseFile(t, "testdata/messages/adt-"+tt.trig+".hl7"), Options{})
			if err != nil {
				t.Fatal(err)
			}
			encs := r.Of("Encounter")
			if len(encs) != 1 || encs[0].ID != encID {
				t.Fatalf("Encounters = %v, want one with id %s", encs, encID)
			}
			var e struct{ Status string }
			if err := json.Unmarshal(encs[0].JSON, &e); err != nil {
				t.Fatal(err)
			}
			if e.Status != tt.status || encs[0].StatusOnly != tt.statusOnly {
				t.Errorf("status = %q (StatusOnly %v), want %q (%v)", e.Status, encs[0].StatusOnly, tt.status, tt.statusOnly)
			}
		})
	}
}

// TestADTSegmentDates: a date the conversion of AL1, DG1 or NK1 uses must
// be a valid TS/DTM (AE 102 at the field), like PID-7 and PV1-44.
func TestADTSegmentDates(t *testing.T) {
	const head = "MSH|^~\\&|APP|FAC|EHRGATE|EHRGATE|20260302100000||ADT^A31^ADT_A05|C1|P|2.5.1\r" +
		"PID|1||100400^^^FAC^MR||Reyes^Lucia\r"
	for _, tt := range []struct {
		seg   string
		field int
	}{
		{"AL1|1|DA|7980^Penicillin G^RXNORM|||2019-03-12\r", 6},
		{"DG1|1||I10^Hypertension^I10||yesterday\r", 5},
		{"DG1|1||I10^Hypertension^I10|||A|||||||||||||20261340\r", 19},
		{"NK1|1|Reyes^Ana|MTH|||||2020XX\r", 8},
	} {
		name := tt.seg[:3]
		t.Run(fmt.Sprintf("%s-%d", name, tt.field), func(t *testing.T) {
			_, err := Convert(mustParse(t, head+tt.seg), Options{})
			var me *hl7.MessageError
			if !errors.As(err, &me) || me.Condition != hl7.ErrDataType || me.Location.Segment != name || me.Location.Field != tt.field {
				t.Errorf("Convert(%q) = %v, want a data type error at %s-%d", tt.seg, err, name, tt.field)
			}
		})
	}
}

// TestReferencesResolve: every reference a converted resource makes to
// another resource of the message (Encounter.diagnosis, Condition.encounter,
// Observation.partOf, DiagnosticReport.result, ...) names a resource the
// message produced (or, for a merge, the retired patient).
func TestReferencesResolve(t *testing.T) {
	for f, r := range convertedMessages(t) {
		have := map[string]bool{}
		for _, res := range r.Resources {
			have[res.Type+"/"+res.ID] = true
		}
		if r.Merge != nil {
			have["Patient/"+r.Merge.RetiredID] = true
		}
		for _, res := range r.Resources {
			var v any
			if err := json.Unmarshal(res.JSON, &v); err != nil {
				t.Fatal(err)
			}
			var walk func(any)
			walk = func(v any) {
				switch x := v.(type) {
				case map[string]any:
					if ref, ok := x["reference"].(string); ok && !have[ref] {
						t.Errorf("%s: %s/%s refers to %s, which the message did not produce", filepath.Base(f), res.Type, res.ID, ref)
					}
					for _, y := range x {
						walk(y)
					}
				case []any:
					for _, y := range x {
						walk(y)
					}
				}
			}
			walk(v)
		}
	}
}

// TestOrderWithoutOBR: an ORM carrying only a pharmacy order (RXO) is
// refused as unsupported (AR), as every ORM was before.
func TestOrderWithoutOBR(t *testing.T) {
	raw := "MSH|^~\\&|APP|FAC|EHRGATE|EHRGATE|20260302100000||ORM^O01^ORM_O01|C1|P|2.5.1\r" +
		"PID|1||100400^^^FAC^MR||Reyes^Lucia\rORC|NW|P1\rRXO|00093-4155-73^Amoxicillin^NDC|500||mg\r"
	var me *hl7.MessageError
	if _, err := Convert(mustParse(t, raw), Options{}); !errors.Is(err, ErrUnsupported) || !errors.As(err, &me) || !me.Reject {
		t.Errorf("Convert(ORM with RXO only) = %v, want ErrUnsupported with a rejecting MessageError", err)
	}
	if err := Check(mustParse(t, raw), Options{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Check(ORM with RXO only) = %v, want ErrUnsupported", err)
	}
}

// TestADTClinicalIDsAcrossMessages: the same allergy, diagnosis, contact
// and measurement sent again in a later ADT about the same visit keeps its
// id (updates are updates), and a resend of the same message gives the
// same ids.
func TestADTClinicalIDsAcrossMessages(t *testing.T) {
	const pid = "PID|1||100300^^^NORTHMC^MR||Marsh^Tobias^J||19580211|M\r" +
		"NK1|1|Marsh^Ellen^R|SPO^Spouse^HL70063\r" +
		"PV1|1|I|4W^414^A^NORTHMC||||||||||||||||V5101^^^NORTHMC^VN\r" +
		"OBX|1|NM|29463-7^Body weight^LN||82.5|kg^^UCUM|||||F|||20260301084500-0500\r" +
		"AL1|1|DA|7980^Penicillin G^RXNORM|SV\r" +
		"DG1|1||I10^Essential hypertension^I10|||A\r"
	msg := func(trig, ctrl string) *Result {
		r, err := Convert(mustParse(t, "MSH|^~\\&|EPICADT|NORTHMC|EHRGATE|EHRGATE|20260301||ADT^"+trig+"^ADT_A01|"+ctrl+"|P|2.5.1\r"+pid), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	ids := func(r *Result) map[string]string {
		out := map[string]string{}
		for _, res := range r.Resources {
			out[res.Type] += res.ID + " "
		}
		return out
	}
	a01, a08, again := ids(msg("A01", "C1")), ids(msg("A08", "C2")), ids(msg("A01", "C1"))
	for _, typ := range []string{"AllergyIntolerance", "Condition", "RelatedPerson", "Observation", "Encounter"} {
		if a01[typ] == "" || a01[typ] != a08[typ] || a01[typ] != again[typ] {
			t.Errorf("%s ids: A01 %q, A08 %q, resend %q; want the same", typ, a01[typ], a08[typ], again[typ])
		}
	}
}

// TestDocumentTriggers: MDM T02/T06 carry content and convert; the
// notifications without content (T01) stay unsupported; a T02 without TXA
// is refused (AE 100).
func TestDocumentTriggers(t *testing.T) {
	const pid = "PID|1||100400^^^FAC^MR||Reyes^Lucia\r"
	head := func(trig string) string {
		return "MSH|^~\\&|APP|FAC|EHRGATE|EHRGATE|20260302100000||MDM^" + trig + "^MDM_T02|C1|P|2.5.1\r"
	}
	if _, err := Convert(mustParse(t, head("T01")+pid+"TXA|1|DS|TX\r"), Options{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Convert(MDM^T01) = %v, want ErrUnsupported", err)
	}
	var me *hl7.MessageError
	if _, err := Convert(mustParse(t, head("T02")+pid+"OBX|1|TX|X^Y^L||text||||||F\r"), Options{}); !errors.As(err, &me) || me.Condition != hl7.ErrSegmentSequence || me.Location.Segment != "TXA" {
		t.Errorf("Convert(MDM^T02 without TXA) = %v, want a segment sequence error at TXA", err)
	}
	r, err := Convert(parseFile(t, "testdata/messages/mdm-t02.hl7"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Content []struct {
			Attachment struct{ Data []byte } `json:"attachment"`
		} `json:"content"`
	}
	if err := json.Unmarshal(r.Of("DocumentReference")[0].JSON, &doc); err != nil {
		t.Fatal(err)
	}
	want := "Admitted with chest pain.\nTroponin negative x2.\nDischarged home on aspirin & statin."
	if len(doc.Content) != 1 || string(doc.Content[0].Attachment.Data) != want {
		t.Errorf("document text = %+v, want %q", doc.Content, want)
	}
}

// TestPharmacyRules: RDE needs an ORC and an RXE with RXE-2.
func TestPharmacyRules(t *testing.T) {
	const head = "MSH|^~\\&|APP|FAC|EHRGATE|EHRGATE|20260302100000||RDE^O11^RDE_O11|C1|P|2.5.1\rPID|1||100400^^^FAC^MR||Reyes^Lucia\r"
	for _, tt := range []struct {
		name, body string
		cond       hl7.ErrorCondition
		seg        string
	}{
		{"no RXE", "ORC|NW|P1\rRXO|308182^Amoxicillin^RXNORM\r", hl7.ErrSegmentSequence, "RXE"},
		{"no ORC", "RXE||308182^Amoxicillin^RXNORM\r", hl7.ErrSegmentSequence, "ORC"},
		{"no give code", "ORC|NW|P1\rRXE|||500\r", hl7.ErrRequiredFieldMissing, "RXE"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Convert(mustParse(t, head+tt.body), Options{})
			var me *hl7.MessageError
			if !errors.As(err, &me) || me.Condition != tt.cond || me.Location.Segment != tt.seg {
				t.Errorf("Convert(%q) = %v, want condition %v at %s", tt.body, err, tt.cond, tt.seg)
			}
		})
	}
}

func TestStreetLine(t *testing.T) {
	for in, want := range map[string]string{
		"12 Harbour Rd":           "12 Harbour Rd",
		"&Main St&123":            "123 Main St",
		"123 Main St&Main St&123": "123 Main St",
		"PO Box 7":                "PO Box 7",
		"Apt 3&&":                 "Apt 3",
		"&Main St":                "Main St",
		"2222&HOME&STREET":        "2222 STREET HOME",
	} {
		m := mustParse(t, "MSH|^~\\&|A|B|||20260101||ADT^A28|C|P|2.5.1\rPID|1||1^^^B^MR||X^Y||||||"+in+"^^Town\r")
		pid, _ := m.Segment("PID", 1)
		if got := streetLine(pid.Field(11).Repetition(1).Component(1)); got != want {
			t.Errorf("streetLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsUCUM(t *testing.T) {
	for u, want := range map[string]bool{
		"mg/dL": true, "mmol/L": true, "10*3/uL": true, "10*9/L": true, "%": true, "/min": true, "kg/m2": true,
		"mm[Hg]": true, "{capsule}": true, "mL/min/{1.73_m2}": true, "Cel": true, "[degF]": true, "g/dL": true,
		"ug/mL": true, "U/L": true, "[IU]/L": true, "meq/L": true, "kg": true, "cm": true, "fL": true, "pg": true,
		"s": true, "mL": true, "ng/mL": true, "mg/(24.h)": true, "[lb_av]": true, "m2": true, "1": true,
		"beats/min": false, "mEq/L": false, "cells/uL": false, "IU/L": false, "mg/dl ": false, "": false,
		"kilogram": false, "lbs": false, "bpm": false, "x10E3/uL": false,
	} {
		if got := isUCUM(u); got != want {
			t.Errorf("isUCUM(%q) = %v, want %v", u, got, want)
		}
	}
}

func TestCodingSystemIsURI(t *testing.T) {
	for name, want := range map[string]string{
		"LN": sysLOINC, "99NLAB": sysLocalPfx + "99NLAB", "My Lab Codes": sysLocalPfx + "My%20Lab%20Codes",
	} {
		if got := codingSystem(name); got != want {
			t.Errorf("codingSystem(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestMergePairs: A34/A39/A47 with one PID/MRG pair convert like A40; a
// message with several pairs is refused (AR) instead of converting only
// the first.
func TestMergePairs(t *testing.T) {
	const pair = "PID|1||100200^^^NORTHMC^MR||Quill^Ada\rMRG|100377^^^NORTHMC^MR\r"
	head := func(trig string) string {
		return "MSH|^~\\&|APP|NORTHMC|EHRGATE|EHRGATE|20260302100000||ADT^" + trig + "^ADT_A39|C1|P|2.5.1\r"
	}
	for _, trig := range []string{"A34", "A39", "A40", "A47"} {
		r, err := Convert(mustParse(t, head(trig)+pair), Options{})
		if err != nil || r.Merge == nil || r.Merge.SurvivingID == r.Merge.RetiredID {
			t.Errorf("Convert(%s, one pair) = %+v, %v; want a merge", trig, r, err)
		}
		two := head(trig) + pair + "PID|2||100500^^^NORTHMC^MR||Lee^Jo\rMRG|100501^^^NORTHMC^MR\r"
		var me *hl7.MessageError
		if _, err := Convert(mustParse(t, two), Options{}); !errors.Is(err, ErrUnsupported) || !errors.As(err, &me) || !me.Reject {
			t.Errorf("Convert(%s, two pairs) = %v, want ErrUnsupported (AR)", trig, err)
		}
	}
}
