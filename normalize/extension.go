package normalize

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"

	"ehrgate/fhir"
)

// Extension is the meaning of one extension the normalizer understood, on
// any resource: a US Core extension without a dedicated model field, or a
// vendor extension a vendor profile documents (see RegisterExtensions).
// The US Core Patient extensions fill Patient fields instead (Race,
// Ethnicity, BirthSex, GenderIdentity, Sex, TribalAffiliation,
// InterpreterNeeded).
type Extension struct {
	Name  string  `json:"name"`           // model name from the definition, e.g. "legalSex"
	Label string  `json:"label"`          // human label, e.g. "Legal sex"
	URL   string  `json:"url"`            // the extension's URL as received
	Value string  `json:"value"`          // the value as text: a coding's display, a string, a date...
	Code  *Coding `json:"code,omitempty"` // the coding, when the value was coded
	// Source names who defines the extension ("US Core", "Epic", ...).
	Source string `json:"source,omitempty"`
}

// ExtensionDef is an extension the normalizer knows how to read: its URL, the
// resource types it is read on (empty: any) and how it is named in the model.
type ExtensionDef struct {
	URL    string
	Types  []string
	Name   string // model name (lowerCamelCase)
	Label  string // human label
	Source string // who defines it ("US Core", "Epic", "Oracle Health", ...)
}

var (
	extMu   sync.RWMutex
	extDefs = map[string]ExtensionDef{}
)

// RegisterExtensions makes every Normalizer understand defs: their values
// land in Common.Extensions instead of Common.UnknownExtensions. Vendor
// profiles register the extensions their vendor documents (package ehr does
// so for every embedded profile); a URL registered twice keeps the first
// definition. It is safe for concurrent use.
func RegisterExtensions(defs ...ExtensionDef) {
	extMu.Lock()
	defer extMu.Unlock()
	for _, d := range defs {
		if d.URL == "" {
			continue
		}
		if _, dup := extDefs[d.URL]; !dup {
			extDefs[d.URL] = d
		}
	}
}

// KnownExtensions returns every understood extension definition (the US Core
// ones read into Patient fields included), sorted by URL.
func KnownExtensions() []ExtensionDef {
	extMu.RLock()
	out := make([]ExtensionDef, 0, len(extDefs)+len(usCorePatientExtensions))
	for _, d := range extDefs {
		out = append(out, d)
	}
	extMu.RUnlock()
	for u, name := range usCorePatientExtensions {
		out = append(out, ExtensionDef{URL: u, Types: []string{"Patient"}, Name: name, Source: "US Core"})
	}
	slices.SortFunc(out, func(a, b ExtensionDef) int { return strings.Compare(a.URL, b.URL) })
	return out
}

// US Core extension URLs beyond race, ethnicity and birth sex (package fhir).
// Each is defined by the US Core Implementation Guide:
//   - us-core-genderIdentity (6.1.0, Patient; valueCodeableConcept):
//     https://hl7.org/fhir/us/core/STU6.1/StructureDefinition-us-core-genderIdentity.html
//   - us-core-sex (6.1.0 and 7.0.0, Patient; a code or Coding for the
//     patient's sex, read either way):
//     https://hl7.org/fhir/us/core/STU6.1/StructureDefinition-us-core-sex.html
//   - us-core-tribal-affiliation (6.1.0, Patient; complex: tribalAffiliation
//     valueCodeableConcept, isEnrolled valueBoolean):
//     https://hl7.org/fhir/us/core/STU6.1/StructureDefinition-us-core-tribal-affiliation.html
//   - us-core-interpreter-needed (7.0.0, Patient and Encounter; valueCoding):
//     https://hl7.org/fhir/us/core/STU7/StructureDefinition-us-core-interpreter-needed.html
//   - us-core-medication-adherence (7.0.0, MedicationRequest; complex: medicationAdherence valueCodeableConcept,
//     dateAsserted valueDateTime, informationSource valueCodeableConcept):
//     https://hl7.org/fhir/us/core/STU7/StructureDefinition-us-core-medication-adherence.html
//
// The US Core Patient profile lists the Patient ones:
// https://hl7.org/fhir/us/core/STU7/StructureDefinition-us-core-patient.html
const (
	ExtUSCoreGenderIdentity      = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-genderIdentity"
	ExtUSCoreSex                 = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-sex"
	ExtUSCoreTribalAffiliation   = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-tribal-affiliation"
	ExtUSCoreInterpreterNeeded   = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-interpreter-needed"
	ExtUSCoreMedicationAdherence = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-medication-adherence"
)

// usCorePatientExtensions are the US Core extensions read into Patient
// fields, by URL, with the field's JSON name.
var usCorePatientExtensions = map[string]string{
	fhir.ExtUSCoreRace:         "race",
	fhir.ExtUSCoreEthnicity:    "ethnicity",
	fhir.ExtUSCoreBirthSex:     "birthSex",
	ExtUSCoreGenderIdentity:    "genderIdentity",
	ExtUSCoreSex:               "sex",
	ExtUSCoreTribalAffiliation: "tribalAffiliation",
	ExtUSCoreInterpreterNeeded: "interpreterNeeded",
}

func init() {
	// US Core extensions on other resources than Patient: their values go
	// to Common.Extensions.
	RegisterExtensions(
		// US Core 6.1 Condition Problems and Health Concerns profile,
		// extension:assertedDate (a FHIR core extension), Must Support:
		// https://hl7.org/fhir/us/core/STU6.1/StructureDefinition-us-core-condition-problems-health-concerns.html
		ExtensionDef{URL: "http://hl7.org/fhir/StructureDefinition/condition-assertedDate", Types: []string{"Condition"}, Name: "assertedDate", Label: "Asserted", Source: "US Core"},
		// US Core 6.1 QuestionnaireResponse profile, extension:questionnaireDisplay
		// (us-core-extension-questionnaire-uri):
		// https://hl7.org/fhir/us/core/STU6.1/StructureDefinition-us-core-extension-questionnaire-uri.html
		ExtensionDef{URL: "http://hl7.org/fhir/us/core/StructureDefinition/us-core-extension-questionnaire-uri", Types: []string{"QuestionnaireResponse"}, Name: "questionnaireUri", Label: "Questionnaire", Source: "US Core"},
		ExtensionDef{URL: ExtUSCoreInterpreterNeeded, Types: []string{"Encounter"}, Name: "interpreterNeeded", Label: "Interpreter needed", Source: "US Core"},
		ExtensionDef{URL: ExtUSCoreMedicationAdherence, Types: []string{"MedicationRequest"}, Name: "medicationAdherence", Label: "Medication adherence", Source: "US Core"},
	)
}

// extension is the wire form of a FHIR Extension, with the value types the
// extensions read here use.
type extension struct {
	URL                  string           `json:"url"`
	Extension            []extension      `json:"extension"`
	ValueString          string           `json:"valueString"`
	ValueCode            string           `json:"valueCode"`
	ValueCoding          *coding          `json:"valueCoding"`
	ValueCodeableConcept *codeableConcept `json:"valueCodeableConcept"`
	ValueBoolean         *bool            `json:"valueBoolean"`
	ValueDateTime        string           `json:"valueDateTime"`
	ValueDate            string           `json:"valueDate"`
	ValueURI             string           `json:"valueUri"`
	ValueInteger         *decimal         `json:"valueInteger"`
	ValueDecimal         *decimal         `json:"valueDecimal"`
}

// text renders a simple extension's value; complex extensions render their
// sub-extensions as "name: value" joined with "; ".
func (e *extension) text() (string, *Coding) {
	switch {
	case e.ValueCodeableConcept != nil:
		var c *Coding
		for _, cd := range e.ValueCodeableConcept.Coding {
			if cd.Code != "" {
				c = &Coding{System: cd.System, Code: cd.Code, Display: cd.Display}
				break
			}
		}
		return e.ValueCodeableConcept.label(), c
	case e.ValueCoding != nil:
		cd := e.ValueCoding
		return firstNonEmpty(cd.Display, cd.Code), &Coding{System: cd.System, Code: cd.Code, Display: cd.Display}
	case e.ValueBoolean != nil:
		if *e.ValueBoolean {
			return "yes", nil
		}
		return "no", nil
	case e.ValueInteger != nil:
		return string(*e.ValueInteger), nil
	case e.ValueDecimal != nil:
		return string(*e.ValueDecimal), nil
	}
	if v := firstNonEmpty(e.ValueString, e.ValueCode, e.ValueDateTime, e.ValueDate, e.ValueURI); v != "" {
		return v, nil
	}
	var parts []string
	for i := range e.Extension {
		if v, _ := e.Extension[i].text(); v != "" {
			parts = append(parts, joinNonEmpty(": ", e.Extension[i].URL, v))
		}
	}
	return strings.Join(parts, "; "), nil
}

// decodeExtensions reads a resource's top-level extension array loosely:
// an extension of an unexpected shape is skipped (it stays in the raw
// resource), never a reason to refuse the resource.
func decodeExtensions(raw json.RawMessage) []extension {
	var out []extension
	for _, r := range looseArray(raw) {
		var e extension
		if len(r) > 0 && r[0] == '{' && json.Unmarshal(r, &e) == nil && e.URL != "" {
			out = append(out, e)
		}
	}
	return out
}

// unwrapExtensions fills c.Extensions with the registered extensions among
// exts and c.UnknownExtensions with the URLs nobody understands (each once).
// URLs in handled were read into model fields by the caller.
func unwrapExtensions(c *Common, exts []extension, handled map[string]string) {
	extMu.RLock()
	defer extMu.RUnlock()
	for i := range exts {
		e := &exts[i]
		if _, ok := handled[e.URL]; ok {
			continue
		}
		d, ok := extDefs[e.URL]
		if ok && len(d.Types) > 0 && !slices.Contains(d.Types, c.Source.Type) {
			ok = false
		}
		if !ok {
			if !slices.Contains(c.UnknownExtensions, e.URL) {
				c.UnknownExtensions = append(c.UnknownExtensions, e.URL)
			}
			continue
		}
		v, code := e.text()
		if v == "" {
			continue
		}
		c.Extensions = append(c.Extensions, Extension{Name: d.Name, Label: d.Label, URL: e.URL, Value: v, Code: code, Source: d.Source})
	}
}

// extensionsOf unwraps the extensions of a decoded header into c.
func extensionsOf(c *Common, h *header) {
	if len(h.Extension) > 0 {
		unwrapExtensions(c, decodeExtensions(h.Extension), nil)
	}
}
