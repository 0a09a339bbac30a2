package normalize

import (
	"strings"

	"ehrgate/fhir"
)

type patientJSON struct {
	header
	Name []struct {
		Use    string   `json:"use"`
		Text   string   `json:"text"`
		Family string   `json:"family"`
		Given  []string `json:"given"`
	} `json:"name"`
	BirthDate  string `json:"birthDate"`
	Gender     string `json:"gender"`
	Identifier []struct {
		Type   *codeableConcept `json:"type"`
		System string           `json:"system"`
		Value  string           `json:"value"`
	} `json:"identifier"`
	Address []struct {
		Use        string   `json:"use"`
		Text       string   `json:"text"`
		Line       []string `json:"line"`
		City       string   `json:"city"`
		State      string   `json:"state"`
		PostalCode string   `json:"postalCode"`
		Country    string   `json:"country"`
	} `json:"address"`
	Telecom []struct {
		System string `json:"system"`
		Value  string `json:"value"`
		Use    string `json:"use"`
	} `json:"telecom"`
	Communication []struct {
		Language  *codeableConcept `json:"language"`
		Preferred bool             `json:"preferred"`
	} `json:"communication"`
	DeceasedBoolean  *bool  `json:"deceasedBoolean"`
	DeceasedDateTime string `json:"deceasedDateTime"`
}

// normalizePatient maps a Patient. Missing lists "name", "birthDate",
// "gender" and "mrn". The MRN is taken only from an identifier typed v2-0203
// MR; no other identifier is guessed to be one.
func normalizePatient(ref Ref, raw []byte) (Resource, error) {
	var in patientJSON
	if err := decode(&ref, raw, &in, &in); err != nil {
		return nil, err
	}
	out := &Patient{
		Common:       Common{Source: ref, PatientID: in.ID},
		BirthDate:    in.BirthDate,
		Gender:       in.Gender,
		DeceasedDate: in.DeceasedDateTime,
		Deceased:     in.DeceasedDateTime != "" || (in.DeceasedBoolean != nil && *in.DeceasedBoolean),
	}

	// Name: official, else usual, else the first that is not old, else the first.
	best := -1
	for i, n := range in.Name {
		if n.Use == "official" {
			best = i
			break
		}
		if n.Use == "usual" && best < 0 {
			best = i
		}
	}
	for i := 0; best < 0 && i < len(in.Name); i++ {
		if in.Name[i].Use != "old" {
			best = i
		}
	}
	if best < 0 && len(in.Name) > 0 {
		best = 0
	}
	if best >= 0 {
		n := in.Name[best]
		out.Family, out.Given = n.Family, n.Given
		out.Name = joinNonEmpty(" ", strings.Join(n.Given, " "), n.Family)
		if out.Name == "" {
			out.Name = n.Text
		}
	}

	for _, id := range in.Identifier {
		typ := id.Type.code(fhir.SystemV2_0203)
		if typ == "MR" && out.MRN == "" && id.Value != "" && hasCoding(id.Type, fhir.SystemV2_0203, "MR") {
			out.MRN = id.Value
		}
		if id.Value != "" {
			out.Identifiers = append(out.Identifiers, Identifier{System: id.System, Value: id.Value, Type: typ})
		}
	}

	for _, a := range in.Address {
		if a.Use == "old" {
			continue
		}
		out.Address = a.Text
		if out.Address == "" {
			out.Address = joinNonEmpty(", ", strings.Join(a.Line, ", "), a.City,
				joinNonEmpty(" ", a.State, a.PostalCode), a.Country)
		}
		break
	}

	for _, t := range in.Telecom {
		switch {
		case t.System == "phone" && out.Phone == "" && t.Use != "old":
			out.Phone = t.Value
		case t.System == "email" && out.Email == "" && t.Use != "old":
			out.Email = t.Value
		}
	}

	for i, c := range in.Communication {
		if c.Preferred || i == 0 {
			out.Language = firstNonEmpty(c.Language.code("urn:ietf:bcp:47"), c.Language.label())
			if c.Preferred {
				break
			}
		}
	}

	exts := decodeExtensions(in.Extension)
	for i := range exts {
		e := &exts[i]
		switch e.URL {
		case fhir.ExtUSCoreRace:
			out.Race = usCoreCategory(e)
		case fhir.ExtUSCoreEthnicity:
			out.Ethnicity = usCoreCategory(e)
		case fhir.ExtUSCoreBirthSex:
			out.BirthSex = e.ValueCode
		case ExtUSCoreGenderIdentity:
			out.GenderIdentity, _ = e.text()
		case ExtUSCoreSex:
			out.Sex, _ = e.text()
		case ExtUSCoreInterpreterNeeded:
			out.InterpreterNeeded, _ = e.text()
		case ExtUSCoreTribalAffiliation:
			if t := tribalAffiliation(e); t != "" {
				out.TribalAffiliation = append(out.TribalAffiliation, t)
			}
		}
	}
	unwrapExtensions(&out.Common, exts, usCorePatientExtensions)

	var m missing
	m.check(out.Name == "", "name")
	m.check(in.BirthDate == "", "birthDate")
	m.check(in.Gender == "", "gender")
	m.check(out.MRN == "", "mrn")
	out.Missing = m
	return out, nil
}

func hasCoding(c *codeableConcept, system, code string) bool {
	if c == nil {
		return false
	}
	for _, cd := range c.Coding {
		if cd.System == system && cd.Code == code {
			return true
		}
	}
	return false
}

// usCoreCategory reads a US Core race or ethnicity extension: its "text"
// sub-extension, else the ombCategory displays joined with ", ".
func usCoreCategory(e *extension) string {
	var omb []string
	for _, sub := range e.Extension {
		switch sub.URL {
		case "text":
			if sub.ValueString != "" {
				return sub.ValueString
			}
		case "ombCategory":
			if sub.ValueCoding != nil {
				omb = append(omb, firstNonEmpty(sub.ValueCoding.Display, sub.ValueCoding.Code))
			}
		}
	}
	return strings.Join(omb, ", ")
}

// tribalAffiliation reads a US Core tribal affiliation extension: the
// tribalAffiliation sub-extension's label, with " (enrolled)" when the
// isEnrolled sub-extension is true.
func tribalAffiliation(e *extension) string {
	var tribe string
	enrolled := false
	for i := range e.Extension {
		sub := &e.Extension[i]
		switch sub.URL {
		case "tribalAffiliation":
			tribe, _ = sub.text()
		case "isEnrolled":
			enrolled = sub.ValueBoolean != nil && *sub.ValueBoolean
		}
	}
	if tribe != "" && enrolled {
		tribe += " (enrolled)"
	}
	return tribe
}
