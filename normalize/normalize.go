package normalize

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"

	jsonv1 "github.com/go-json-experiment/json/v1"
)

// Resource is implemented by every normalized type (via the embedded Common).
type Resource interface{ Base() *Common }

// Base returns the fields every normalized resource shares.
func (c *Common) Base() *Common { return c }

// Other is the normalized form of a resource type outside the ten normalize
// models: only Common, with PatientID set when the resource references a
// Patient through an element that puts it in that Patient's compartment
// (subject, patient, Coverage.beneficiary, Appointment.participant.actor,
// Provenance.target, ...; see otherJSON).
type Other struct {
	Common
}

// ErrMalformed marks input that cannot be normalized (invalid JSON, wrong JSON
// types, missing resourceType or id). Callers quarantine it.
var ErrMalformed = errors.New("normalize: malformed resource")

// MalformedError says why a resource is malformed. Its message names the
// resource type and the offending field but never contains a value from the
// resource, so it is safe to log and to show. It matches ErrMalformed with
// errors.Is.
type MalformedError struct {
	Type   string // resource type being normalized
	Field  string // dotted JSON path of the offending field, if known
	Reason string // what is wrong, without values
}

// Error implements error.
func (e *MalformedError) Error() string {
	var b strings.Builder
	b.WriteString("normalizing ")
	if e.Type != "" {
		b.WriteString(e.Type)
	} else {
		b.WriteString("resource")
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString("field ")
		b.WriteString(strconv.Quote(e.Field))
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	b.WriteString(": ")
	b.WriteString(ErrMalformed.Error())
	return b.String()
}

// Unwrap returns ErrMalformed.
func (e *MalformedError) Unwrap() error { return ErrMalformed }

// Normalize decodes raw as a resource of type ref.Type and returns its
// normalized form: a pointer to one of the model types (*Patient,
// *Observation, ...), or an *Other for resource types outside the ten. When
// ref.Type is empty the resource's own resourceType is used. Empty ref.ID and
// ref.VersionID are filled from the resource.
//
// Decoding is strict about JSON types: a field of the wrong JSON type is an
// error wrapping ErrMalformed (a *MalformedError naming the field, never its
// value). Unknown fields are ignored. Normalize is safe for concurrent use.
//
// Normalize uses the package's default Normalizer (Default): the terminology
// chain with the bundled tables and no local-code map, unless the
// application installed another with SetDefault.
func Normalize(ref Ref, raw []byte) (Resource, error) {
	return Default().Normalize(ref, raw)
}

// decodeAs routes raw to the decoder of ref.Type; see Normalize.
func decodeAs(ref Ref, raw []byte) (Resource, error) {
	if ref.Type == "" {
		var h header
		if err := decode(&ref, raw, &h, &h); err != nil {
			return nil, err
		}
	}
	switch ref.Type {
	case "Patient":
		return normalizePatient(ref, raw)
	case "Encounter":
		return normalizeEncounter(ref, raw)
	case "Condition":
		return normalizeCondition(ref, raw)
	case "Observation":
		return normalizeObservation(ref, raw)
	case "MedicationRequest":
		return normalizeMedicationRequest(ref, raw)
	case "AllergyIntolerance":
		return normalizeAllergy(ref, raw)
	case "Immunization":
		return normalizeImmunization(ref, raw)
	case "Procedure":
		return normalizeProcedure(ref, raw)
	case "DiagnosticReport":
		return normalizeDiagnosticReport(ref, raw)
	case "DocumentReference":
		return normalizeDocumentReference(ref, raw)
	default:
		return normalizeOther(ref, raw)
	}
}

// header is the envelope every decoded resource embeds.
type header struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Meta         *struct {
		VersionID string `json:"versionId"`
	} `json:"meta"`
	// Extension is the top-level extension array, kept raw and read
	// loosely by unwrapExtensions: an odd extension never makes a resource
	// malformed.
	Extension json.RawMessage `json:"extension"`
}

func (h *header) env() *header { return h }

type enveloped interface{ env() *header }

// decode unmarshals raw into v (a pointer to a zero struct), translating
// JSON errors into value-free *MalformedError values, checks the envelope
// against ref and completes ref.
//
// It decodes with go-json-experiment's encoding/json v1 emulation, about
// twice as fast on these structs (go test -bench DecodeStructs ./normalize),
// and, when that fails, again with encoding/json, whose error is reported:
// the outcome of malformed input and the error text stay exactly those of
// encoding/json. FuzzDecodeAgrees checks that on any input the faster
// decoder either fails or yields what encoding/json yields.
func decode(ref *Ref, raw []byte, v any, e enveloped) error {
	if err := jsonv1.Unmarshal(raw, v); err != nil {
		reflect.ValueOf(v).Elem().SetZero()
		if err := json.Unmarshal(raw, v); err != nil {
			return malformed(ref.Type, err)
		}
	}
	return checkHeader(ref, e.env())
}

// checkHeader checks a decoded envelope against ref and completes ref.
func checkHeader(ref *Ref, h *header) error {
	switch {
	case h.ResourceType == "":
		return &MalformedError{Type: ref.Type, Field: "resourceType", Reason: "missing"}
	case ref.Type == "":
		ref.Type = h.ResourceType
	case h.ResourceType != ref.Type:
		// Both names are FHIR resource type names, not patient data, but
		// the resource's could be anything: show it only if it is a word.
		reason := "resource is of another type"
		if isTypeName(h.ResourceType) {
			reason = "resource is a " + h.ResourceType
		}
		return &MalformedError{Type: ref.Type, Field: "resourceType", Reason: reason}
	}
	if h.ID == "" {
		return &MalformedError{Type: ref.Type, Field: "id", Reason: "missing"}
	}
	if ref.ID == "" {
		ref.ID = h.ID
	}
	if ref.VersionID == "" && h.Meta != nil {
		ref.VersionID = h.Meta.VersionID
	}
	return nil
}

func isTypeName(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLetter(s[i]) {
			return false
		}
	}
	return true
}

func isLetter(b byte) bool { return b|0x20 >= 'a' && b|0x20 <= 'z' }

// malformed turns an encoding/json error into a *MalformedError. The JSON
// error itself is dropped: its text can quote values from the input.
func malformed(typ string, err error) error {
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &ute):
		got, _, _ := strings.Cut(ute.Value, " ") // "number 1.5" -> "number"
		return &MalformedError{Type: typ, Field: jsonPath(ute.Field), Reason: "got " + jsonKind(got) + ", want " + wantKind(ute.Type)}
	case errors.As(err, &se):
		return &MalformedError{Type: typ, Reason: "invalid JSON at byte offset " + strconv.FormatInt(se.Offset, 10)}
	default:
		return &MalformedError{Type: typ, Reason: "invalid JSON"}
	}
}

// embeddedNames are Go struct names encoding/json puts in field paths for
// embedded structs; they are not JSON names.
var embeddedNames = []string{"header.", "valueX."}

// jsonPath removes Go embedded struct names from an encoding/json field path.
func jsonPath(field string) string {
	for _, e := range embeddedNames {
		field = strings.ReplaceAll(field, e, "")
	}
	return field
}

func jsonKind(v string) string {
	switch v {
	case "number", "string", "array", "object", "bool":
		if v == "bool" {
			return "boolean"
		}
		return v
	}
	return "a value of another type"
}

var decimalType = reflect.TypeFor[decimal]()

func wantKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == decimalType {
		return "number"
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	}
	return "another type"
}

// decimal is a FHIR decimal kept as its JSON text, so that renderings keep
// the source's precision ("3.50" stays "3.50"). Unlike json.Number it rejects
// JSON strings.
type decimal string

// UnmarshalJSON implements json.Unmarshaler.
func (d *decimal) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	if c := b[0]; c != '-' && (c < '0' || c > '9') {
		kind := "string"
		switch c {
		case '{':
			kind = "object"
		case '[':
			kind = "array"
		case 't', 'f':
			kind = "bool"
		}
		return &json.UnmarshalTypeError{Value: kind, Type: decimalType}
	}
	*d = decimal(bytes.TrimSpace(b))
	return nil
}

// float returns the decimal as a float64, or nil when absent.
func (d decimal) float() *float64 {
	if d == "" {
		return nil
	}
	f, err := strconv.ParseFloat(string(d), 64)
	if err != nil {
		return nil
	}
	return &f
}

// Patient references look like "Patient/123", "https://host/fhir/Patient/123",
// "Patient/123/_history/2" or "urn:uuid:...".

// ReferencePatientID returns the patient id a reference string points at:
// "Patient/123", an absolute ".../Patient/123" URL (optionally with
// "/_history/n") and "urn:uuid:<id>" (as Bulk Data and Synthea bundles use)
// are understood. It reports false for references to other resource types,
// contained ("#x") references and anything else.
func ReferencePatientID(reference string) (string, bool) {
	if reference == "" || reference[0] == '#' {
		return "", false
	}
	if rest, ok := strings.CutPrefix(reference, "urn:uuid:"); ok {
		return rest, rest != ""
	}
	if i := strings.Index(reference, "/_history/"); i >= 0 {
		reference = reference[:i]
	}
	i := strings.LastIndexByte(reference, '/')
	if i < 0 {
		return "", false
	}
	id, typ := reference[i+1:], reference[:i]
	if j := strings.LastIndexByte(typ, '/'); j >= 0 {
		typ = typ[j+1:]
	}
	if typ != "Patient" || id == "" {
		return "", false
	}
	return id, true
}

// patientRef returns the patient id of a decoded reference, or "".
func patientRef(r *reference) string {
	if r == nil {
		return ""
	}
	if r.Type != "" && r.Type != "Patient" {
		return ""
	}
	if id, ok := ReferencePatientID(r.Reference); ok {
		return id
	}
	// "reference": "123" with "type": "Patient" is allowed by R4.
	if r.Type == "Patient" && r.Reference != "" && !strings.ContainsAny(r.Reference, "/:#") {
		return r.Reference
	}
	return ""
}

// PatientID extracts the id of the patient raw belongs to: a Patient's own
// id, or the Patient it references (see patientLinks). It returns ""
// with a nil error when the resource names no patient, and an error wrapping
// ErrMalformed when raw is not a resource.
func PatientID(raw []byte) (string, error) {
	var in otherJSON
	var ref Ref
	if err := decode(&ref, raw, &in, &in); err != nil {
		return "", err
	}
	if in.ResourceType == "Patient" {
		return in.ID, nil
	}
	return in.patient(), nil
}

// otherJSON holds the elements through which a resource outside the ten
// models names its patient, following the FHIR R4 Patient compartment
// definition (http://hl7.org/fhir/R4/compartmentdefinition-patient.html):
// subject and patient for most types; Coverage.beneficiary (the person
// covered; the compartment also lists subscriber, policy-holder and payor,
// which may be someone else, so they are not read); Appointment and
// AppointmentResponse participant.actor / actor; Provenance.target (a
// Provenance is in the compartment of the Patient it targets).
type otherJSON struct {
	header
	Subject     json.RawMessage `json:"subject"`
	Patient     json.RawMessage `json:"patient"`
	Beneficiary json.RawMessage `json:"beneficiary"`
	Actor       json.RawMessage `json:"actor"`
	Participant json.RawMessage `json:"participant"`
	Target      json.RawMessage `json:"target"`
}

// patient returns the patient id of the first element that references one,
// in the order subject, patient, beneficiary, actor, participant.actor,
// target.
func (in *otherJSON) patient() string {
	if id := looseRefPatient(in.Subject, in.Patient, in.Beneficiary, in.Actor); id != "" {
		return id
	}
	for _, p := range looseArray(in.Participant) {
		var part struct {
			Actor json.RawMessage `json:"actor"`
		}
		if len(p) > 0 && p[0] == '{' && json.Unmarshal(p, &part) == nil {
			if id := looseRefPatient(part.Actor); id != "" {
				return id
			}
		}
	}
	return looseRefPatient(looseArray(in.Target)...)
}

// looseArray returns the elements of a JSON array, nil for anything else
// (these elements are read loosely: a resource of an unexpected shape is
// still stored, without a patient, rather than refused).
func looseArray(raw json.RawMessage) []json.RawMessage {
	if len(raw) == 0 || raw[0] != '[' {
		return nil
	}
	var out []json.RawMessage
	if json.Unmarshal(raw, &out) != nil {
		return nil
	}
	return out
}

// looseRefPatient reads patient references from elements whose JSON type
// varies across resource types (Contract.subject is an array): anything that
// is not a Reference object is ignored.
func looseRefPatient(raws ...json.RawMessage) string {
	for _, raw := range raws {
		if len(raw) == 0 || raw[0] != '{' {
			continue
		}
		var r reference
		if json.Unmarshal(raw, &r) != nil {
			continue
		}
		if id := patientRef(&r); id != "" {
			return id
		}
	}
	return ""
}

func normalizeOther(ref Ref, raw []byte) (Resource, error) {
	var in otherJSON
	if err := decode(&ref, raw, &in, &in); err != nil {
		return nil, err
	}
	out := &Other{Common{Source: ref, PatientID: in.patient()}}
	extensionsOf(&out.Common, &in.header)
	return out, nil
}

// Interface guards.
var (
	_ Resource = (*Patient)(nil)
	_ Resource = (*Encounter)(nil)
	_ Resource = (*Condition)(nil)
	_ Resource = (*Observation)(nil)
	_ Resource = (*MedicationRequest)(nil)
	_ Resource = (*AllergyIntolerance)(nil)
	_ Resource = (*Immunization)(nil)
	_ Resource = (*Procedure)(nil)
	_ Resource = (*DiagnosticReport)(nil)
	_ Resource = (*DocumentReference)(nil)
	_ Resource = (*Other)(nil)
	_ error    = (*MalformedError)(nil)
)
