// Package fhir holds the FHIR R4 essentials ehrgate needs everywhere: the
// common data types, resource envelopes, Bundles, OperationOutcome errors and
// a REST client with search, paging and retries.
//
// ehrgate deliberately does not model every FHIR resource as a Go struct.
// Raw resources are kept byte for byte (json.RawMessage) and only the parts a
// consumer needs are decoded, by the normalize package. The types here are the
// shared vocabulary for that decoding.
package fhir

import (
	"encoding/json"
	"fmt"
	"time"
)

// Version is the FHIR version ehrgate speaks on the wire.
const Version = "4.0.1"

// Meta is the metadata every resource may carry.
type Meta struct {
	VersionID   string   `json:"versionId,omitempty"`
	LastUpdated string   `json:"lastUpdated,omitempty"`
	Source      string   `json:"source,omitempty"`
	Profile     []string `json:"profile,omitempty"`
	Security    []Coding `json:"security,omitempty"`
	Tag         []Coding `json:"tag,omitempty"`
}

// Header is the envelope shared by every resource: enough to route, key and
// version a resource without decoding the rest of it.
type Header struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id,omitempty"`
	Meta         *Meta  `json:"meta,omitempty"`
}

// VersionID returns meta.versionId or "" when absent.
func (h Header) VersionID() string {
	if h.Meta == nil {
		return ""
	}
	return h.Meta.VersionID
}

// LastUpdated returns meta.lastUpdated parsed, or the zero time when absent
// or unparseable.
func (h Header) LastUpdated() time.Time {
	if h.Meta == nil || h.Meta.LastUpdated == "" {
		return time.Time{}
	}
	t, err := ParseDateTime(h.Meta.LastUpdated)
	if err != nil {
		return time.Time{}
	}
	return t
}

// ParseHeader decodes the envelope of a raw resource and checks that it names
// a resource type.
func ParseHeader(raw []byte) (Header, error) {
	h, err := parseHeaderFast(raw)
	if err != nil {
		h = Header{}
		if err := json.Unmarshal(raw, &h); err != nil {
			return Header{}, fmt.Errorf("decoding resource envelope: %w", err)
		}
	}
	if h.ResourceType == "" {
		return Header{}, fmt.Errorf("resource has no resourceType")
	}
	return h, nil
}

// Coding is a code from a code system.
type Coding struct {
	System  string `json:"system,omitempty"`
	Version string `json:"version,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

// CodeableConcept is a concept given by codings and/or text.
type CodeableConcept struct {
	Coding []Coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

// HasSystem returns the first coding in the given system.
func (c CodeableConcept) HasSystem(system string) (Coding, bool) {
	for _, cd := range c.Coding {
		if cd.System == system {
			return cd, true
		}
	}
	return Coding{}, false
}

// Label is the best human label for the concept: text, else the first
// display, else the first code.
func (c CodeableConcept) Label() string {
	if c.Text != "" {
		return c.Text
	}
	for _, cd := range c.Coding {
		if cd.Display != "" {
			return cd.Display
		}
	}
	for _, cd := range c.Coding {
		if cd.Code != "" {
			return cd.Code
		}
	}
	return ""
}

// IsZero reports whether the concept carries no coding and no text.
func (c CodeableConcept) IsZero() bool { return len(c.Coding) == 0 && c.Text == "" }

// Reference points at another resource.
type Reference struct {
	Reference  string      `json:"reference,omitempty"`
	Type       string      `json:"type,omitempty"`
	Identifier *Identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
}

// Quantity is a measured amount.
type Quantity struct {
	Value      *json.Number `json:"value,omitempty"`
	Comparator string       `json:"comparator,omitempty"`
	Unit       string       `json:"unit,omitempty"`
	System     string       `json:"system,omitempty"`
	Code       string       `json:"code,omitempty"`
}

// Float returns the quantity's value as a float64 and whether it had one.
func (q Quantity) Float() (float64, bool) {
	if q.Value == nil {
		return 0, false
	}
	f, err := q.Value.Float64()
	if err != nil {
		return 0, false
	}
	return f, true
}

// Range is a low/high pair of quantities.
type Range struct {
	Low  *Quantity `json:"low,omitempty"`
	High *Quantity `json:"high,omitempty"`
}

// Period is a start/end time pair.
type Period struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

// Identifier is a business identifier such as an MRN.
type Identifier struct {
	Use    string           `json:"use,omitempty"`
	Type   *CodeableConcept `json:"type,omitempty"`
	System string           `json:"system,omitempty"`
	Value  string           `json:"value,omitempty"`
}

// HumanName is a person's name.
type HumanName struct {
	Use    string   `json:"use,omitempty"`
	Text   string   `json:"text,omitempty"`
	Family string   `json:"family,omitempty"`
	Given  []string `json:"given,omitempty"`
	Prefix []string `json:"prefix,omitempty"`
	Suffix []string `json:"suffix,omitempty"`
}

// Address is a postal address.
type Address struct {
	Use        string   `json:"use,omitempty"`
	Type       string   `json:"type,omitempty"`
	Text       string   `json:"text,omitempty"`
	Line       []string `json:"line,omitempty"`
	City       string   `json:"city,omitempty"`
	District   string   `json:"district,omitempty"`
	State      string   `json:"state,omitempty"`
	PostalCode string   `json:"postalCode,omitempty"`
	Country    string   `json:"country,omitempty"`
	Period     *Period  `json:"period,omitempty"`
}

// ContactPoint is a phone number, email address or similar.
type ContactPoint struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value,omitempty"`
	Use    string `json:"use,omitempty"`
	Rank   int    `json:"rank,omitempty"`
}

// Extension is a FHIR extension; only the value types ehrgate reads are
// decoded, the rest stays in the raw resource.
type Extension struct {
	URL                  string           `json:"url"`
	Extension            []Extension      `json:"extension,omitempty"`
	ValueString          *string          `json:"valueString,omitempty"`
	ValueCode            *string          `json:"valueCode,omitempty"`
	ValueBoolean         *bool            `json:"valueBoolean,omitempty"`
	ValueCoding          *Coding          `json:"valueCoding,omitempty"`
	ValueCodeableConcept *CodeableConcept `json:"valueCodeableConcept,omitempty"`
	ValueReference       *Reference       `json:"valueReference,omitempty"`
	ValueDateTime        *string          `json:"valueDateTime,omitempty"`
	ValueURI             *string          `json:"valueUri,omitempty"`
}

// Annotation is a text note.
type Annotation struct {
	Text string `json:"text,omitempty"`
	Time string `json:"time,omitempty"`
}

// Attachment is content in some format, inline or by URL.
type Attachment struct {
	ContentType string `json:"contentType,omitempty"`
	Language    string `json:"language,omitempty"`
	Data        string `json:"data,omitempty"`
	URL         string `json:"url,omitempty"`
	Size        int64  `json:"size,omitempty"`
	Title       string `json:"title,omitempty"`
	Creation    string `json:"creation,omitempty"`
}

// Narrative is a resource's human-readable XHTML summary.
type Narrative struct {
	Status string `json:"status,omitempty"`
	Div    string `json:"div,omitempty"`
}

// Code systems ehrgate recognises as standard terminologies.
const (
	SystemLOINC    = "http://loinc.org"
	SystemSNOMED   = "http://snomed.info/sct"
	SystemICD10CM  = "http://hl7.org/fhir/sid/icd-10-cm"
	SystemRxNorm   = "http://www.nlm.nih.gov/research/umls/rxnorm"
	SystemNDC      = "http://hl7.org/fhir/sid/ndc"
	SystemCVX      = "http://hl7.org/fhir/sid/cvx"
	SystemUCUM     = "http://unitsofmeasure.org"
	SystemCPT      = "http://www.ama-assn.org/go/cpt"
	SystemRace     = "urn:oid:2.16.840.1.113883.6.238"
	SystemV2_0203  = "http://terminology.hl7.org/CodeSystem/v2-0203"
	SystemActCode  = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	SystemObsCat   = "http://terminology.hl7.org/CodeSystem/observation-category"
	SystemCondCat  = "http://terminology.hl7.org/CodeSystem/condition-category"
	SystemCondClin = "http://terminology.hl7.org/CodeSystem/condition-clinical"
	SystemCondVer  = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
	SystemAllergyC = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
	SystemDataAbs  = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
	SystemInterp   = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
)

// US Core extension URLs (http://hl7.org/fhir/us/core/StructureDefinition-us-core-race.html).
const (
	ExtUSCoreRace      = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
	ExtUSCoreEthnicity = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
	ExtUSCoreBirthSex  = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"
)

// ParseDateTime parses a FHIR date, dateTime or instant with any of the
// precisions FHIR allows (year, year-month, date, date-time with zone).
// Partial dates resolve to their first instant in UTC.
func ParseDateTime(s string) (time.Time, error) {
	layouts := []string{
		time.RFC3339Nano,
		"2006-01-02T15:04:05",
		"2006-01-02",
		"2006-01",
		"2006",
	}
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a FHIR date or dateTime: %q", s)
}
