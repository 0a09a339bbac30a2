package tofhir

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ehrgate/hl7"
)

const adtInsMSH = "MSH|^~\\&|REG|NORTHMC|EHRGATE|EHRGATE|20260301083100||ADT^A04^ADT_A01|CI1|P|2.5.1\r" +
	"PID|1||100200^^^NORTHMC^MR||Quill^Ada||19790412|F\rPV1|1|O|CLINIC||||||||||||||||V7001^^^NORTHMC^VN\r"

// TestInsurance: IN1/IN2 → Coverage with its payer Organization and (when
// the insured is not the patient) subscriber RelatedPerson; GT1 → a
// guarantor RelatedPerson; every patient-linked resource references the
// patient, the payer none.
func TestInsurance(t *testing.T) {
	msg := adtInsMSH +
		seg("IN1", map[int]string{1: "1", 2: "BAV^Blue Advantage HMO", 3: "IC-1^^^BCBS", 4: "Blue Cross Blue Shield",
			5: "1979 MILKY WAY^^VERONA^WI^53593", 6: "Henry^Rony", 7: "(555)555-5555", 8: "GRP-9", 9: "State Workers", 10: "E-55^^^^SN", 11: "Employer Inc",
			12: "20260101", 13: "20261231", 15: "HMO", 16: "Quill^Ada", 17: "SEL", 18: "19790412", 22: "1",
			36: "POL-145", 49: "M123^^^BCBS"}) +
		seg("IN1", map[int]string{1: "2", 2: "MED^Medigap", 3: "IC-2^^^AETNA", 4: "Aetna", 12: "20250101", 15: "PPO",
			16: "Quill^Bob^J", 17: "SPO", 18: "19750101", 19: "1 MAIN ST^^MADISON^WI^53703", 22: "2", 36: "POL-2",
			43: "M", 49: "M456^^^AETNA"}) +
		seg("IN2", map[int]string{2: "425-57-9745", 61: "MB-77"}) +
		seg("IN1", map[int]string{1: "3", 2: "X^No payer"}) +
		seg("GT1", map[int]string{1: "1", 2: "G-77^^^NORTHMC", 3: "Quill^Bob^J", 5: "1 MAIN ST^^MADISON^WI^53703",
			6: "(608)555-0101", 8: "19750101", 9: "M", 11: "SPO", 12: "111-22-3333"}) +
		seg("GT1", map[int]string{1: "2", 3: "Quill^Ada", 11: "SEL"})
	r, err := Convert(mustParse(t, msg), Options{})
	if err != nil {
		t.Fatal(err)
	}
	covs, orgs, rps := r.Of("Coverage"), r.Of("Organization"), r.Of("RelatedPerson")
	if len(covs) != 2 || len(orgs) != 2 || len(rps) != 2 {
		t.Fatalf("got %d Coverage, %d Organization, %d RelatedPerson; want 2, 2 (payers), 2 (spouse subscriber, guarantor)", len(covs), len(orgs), len(rps))
	}
	for _, o := range orgs {
		if o.PatientID != "" {
			t.Errorf("payer Organization/%s has patient %q, want none (shared)", o.ID, o.PatientID)
		}
	}
	self := jsonOf(t, covs[0])
	for path, want := range map[string]string{
		"status": "active", "beneficiary.reference": "Patient/" + r.PatientID, "subscriber.reference": "Patient/" + r.PatientID,
		"relationship.coding.0.code": "SEL", "relationship.coding.0.system": "http://terminology.hl7.org/CodeSystem/v2-0063",
		"relationship.coding.1.code": "self", "period.start": "2026-01-01", "period.end": "2026-12-31",
		"type.coding.0.code": "HMO", "type.coding.0.system": "http://terminology.hl7.org/CodeSystem/v2-0086",
		"class.0.type.coding.0.code": "plan", "class.0.value": "BAV", "class.0.name": "Blue Advantage HMO",
		"class.1.type.coding.0.code": "group", "class.1.value": "GRP-9", "class.1.name": "State Workers",
		"identifier.0.value": "BAV", "identifier.1.value": "POL-145", "subscriberId": "M123", "order": "1",
		"extension.0.valueIdentifier.value": "M123", "extension.0.valueIdentifier.system": "urn:ehrgate:hl7v2:authority:BCBS",
		"payor.0.reference":    "Organization/" + orgs[0].ID,
		"policyHolder.display": "Employer Inc", "policyHolder.identifier.value": "E-55", "policyHolder.type": "Organization",
	} {
		if got := pick(self, path); got != want {
			t.Errorf("Coverage[self].%s = %q, want %q", path, got, want)
		}
	}
	spouse := jsonOf(t, covs[1])
	sub := pick(spouse, "subscriber.reference")
	if sub != "RelatedPerson/"+rps[0].ID || pick(spouse, "relationship.coding.1.code") != "spouse" || pick(spouse, "identifier.2.value") != "MB-77" || pick(spouse, "identifier.1.value") != "POL-2" {
		t.Errorf("Coverage[spouse] = %s", covs[1].JSON)
	}
	rp := jsonOf(t, rps[0])
	for path, want := range map[string]string{
		"patient.reference": "Patient/" + r.PatientID, "name.0.family": "Quill", "name.0.given.0": "Bob",
		"relationship.0.coding.0.code": "SPO", "birthDate": "1975-01-01", "gender": "male", "address.0.city": "MADISON",
		"identifier.0.value": "M456", "identifier.1.system": "http://hl7.org/fhir/sid/us-ssn", "identifier.1.value": "425-57-9745",
	} {
		if got := pick(rp, path); got != want {
			t.Errorf("RelatedPerson[subscriber].%s = %q, want %q", path, got, want)
		}
	}
	payer := jsonOf(t, orgs[0])
	for path, want := range map[string]string{
		"name": "Blue Cross Blue Shield", "identifier.0.value": "IC-1", "identifier.0.system": "urn:ehrgate:hl7v2:authority:BCBS",
		"address.0.city": "VERONA", "contact.0.name.family": "Henry", "contact.0.telecom.0.value": "(555)555-5555",
	} {
		if got := pick(payer, path); got != want {
			t.Errorf("Organization[payer].%s = %q, want %q", path, got, want)
		}
	}
	guar := jsonOf(t, rps[1])
	for path, want := range map[string]string{
		"patient.reference": "Patient/" + r.PatientID, "relationship.0.coding.0.code": "GUAR", "relationship.1.coding.0.code": "SPO",
		"identifier.0.value": "G-77", "identifier.1.value": "111-22-3333", "birthDate": "1975-01-01", "telecom.0.use": "home",
	} {
		if got := pick(guar, path); got != want {
			t.Errorf("RelatedPerson[guarantor].%s = %q, want %q", path, got, want)
		}
	}
	if rps[0].ID == rps[1].ID {
		t.Error("the subscriber and the guarantor (same person, other roles) share an id: one would overwrite the other")
	}

	// Stable across resends; the same policy from the next ADT is the same Coverage.
	again, err := Convert(mustParse(t, strings.Replace(msg, "|CI1|", "|CI2|", 1)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if again.Of("Coverage")[0].ID != covs[0].ID || again.Of("Organization")[0].ID != orgs[0].ID {
		t.Error("Coverage / payer ids changed between two messages naming the same policy")
	}

	// Dates the mapping uses must be valid.
	for _, tt := range []struct{ seg, loc string }{
		{seg("IN1", map[int]string{3: "IC-1^^^BCBS", 12: "2026133"}), "IN1[1]-12"},
		{seg("IN1", map[int]string{3: "IC-1^^^BCBS"}) + seg("IN1", map[int]string{4: "Payer", 18: "1975x"}), "IN1[2]-18"},
		{seg("GT1", map[int]string{3: "Quill^Bob", 8: "19751301"}), "GT1[1]-8"},
	} {
		_, err := Convert(mustParse(t, adtInsMSH+tt.seg), Options{})
		var me *hl7.MessageError
		if !errors.As(err, &me) || me.Condition != hl7.ErrDataType || me.Location.String() != tt.loc {
			t.Errorf("Convert(%q) = %v, want AE 102 at %s", tt.seg, err, tt.loc)
		}
	}
}

// seg builds a segment from its numbered fields, ending with a CR.
func seg(name string, fields map[int]string) string {
	n := 0
	for k := range fields {
		n = max(n, k)
	}
	parts := make([]string, n+1)
	parts[0] = name
	for k, v := range fields {
		parts[k] = v
	}
	return strings.Join(parts, "|") + "\r"
}

// TestConformanceIN1 compares the Coverage of ReportStream's IN1 mapping
// fixtures (which follow the IG) with ehrgate's: period, type, the
// relationship code, subscriber (Patient or RelatedPerson with its
// family name), payer name. The fixtures are OML messages without an
// order, so PID and IN1 are converted directly.
func TestConformanceIN1(t *testing.T) {
	root := filepath.Join(fixturesDir(t), "hl7v2", "mapping-inventory", "in1")
	files, _ := filepath.Glob(filepath.Join(root, "*.hl7"))
	if len(files) == 0 {
		t.Skipf("no IN1 mapping fixtures under %s", root)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".hl7")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(strings.TrimSuffix(f, ".hl7") + ".fhir")
			if err != nil {
				t.Skip("no expected output")
			}
			var bundle struct {
				Entry []struct{ Resource map[string]any } `json:"entry"`
			}
			if err := json.Unmarshal(b, &bundle); err != nil {
				t.Fatal(err)
			}
			byRef := map[string]map[string]any{}
			var want map[string]any
			for _, e := range bundle.Entry {
				byRef[pick(e.Resource, "resourceType")+"/"+pick(e.Resource, "id")] = e.Resource
				if e.Resource["resourceType"] == "Coverage" {
					want = e.Resource
				}
			}
			m := parseFile(t, f)
			mt := m.MessageType()
			c := &conv{m: m, o: Options{}, source: Source(m), res: &Result{MessageType: mt.Code, Trigger: mt.Trigger}}
			p, err := c.patient()
			if err != nil {
				t.Fatal(err)
			}
			c.addPatient(p)
			if err := c.insurance(); err != nil {
				t.Fatal(err)
			}
			got := map[string]map[string]any{}
			var cov map[string]any
			for _, r := range c.res.Resources {
				got[r.Type+"/"+r.ID] = jsonOf(t, r)
				if r.Type == "Coverage" {
					cov = got[r.Type+"/"+r.ID]
				}
			}
			if cov == nil {
				t.Fatal("no Coverage")
			}
			facts := func(cv map[string]any, res map[string]map[string]any) map[string]string {
				sub := pick(cv, "subscriber.reference")
				subj := strings.SplitN(sub, "/", 2)[0]
				if subj == "RelatedPerson" {
					subj += " " + pick(res[sub], "name.0.family")
				}
				return map[string]string{
					"period": pick(cv, "period.start") + "/" + pick(cv, "period.end"),
					"type":   pick(cv, "type.coding.0.code"), "relationship": pick(cv, "relationship.coding.0.code"),
					"subscriber": subj, "payer": pick(res[pick(cv, "payor.0.reference")], "name"),
					"beneficiary": strings.SplitN(pick(cv, "beneficiary.reference"), "/", 2)[0],
				}
			}
			wf, gf := facts(want, byRef), facts(cov, got)
			for k, w := range wf {
				if gf[k] != w {
					t.Errorf("Coverage %s = %q, reference %q", k, gf[k], w)
				}
			}
		})
	}
}
