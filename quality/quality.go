// Package quality finds data-quality problems in what ehrgate holds: codes
// the terminology chain could not map, observations without LOINC and
// medications without RxNorm, "active" medication orders gone stale, and
// raw resources that miss US Core R4 (6.1.0) required or Must Support
// elements or required value-set bindings.
//
// Findings are never rejections: a resource that fails a check is stored
// and shown like any other. They are computed on demand (Check on one
// resource, Build over a store) rather than stored, so they always reflect
// the current mapping tables; nothing here writes.
//
// Findings carry identifiers, element paths, rule ids and codes, never
// patient values; an unmapped code keeps its source display text (the words
// a person needs to map it), which callers must not log.
package quality

import (
	"encoding/json"
	"errors"
	"fmt"

	"ehrgate/normalize"
	"ehrgate/terminology"
)

// Severities of findings.
const (
	SeverityError   = "error"   // a required element, binding or standard code is absent
	SeverityWarning = "warning" // usable, but an application will miss something (unmapped code, stale order)
	SeverityInfo    = "info"    // a Must Support element is absent
)

// Kinds of findings.
const (
	KindUnmapped      = "unmapped-code"    // the terminology chain found no standard code
	KindMissingLOINC  = "missing-loinc"    // an Observation without a LOINC code
	KindMissingRxNorm = "missing-rxnorm"   // a MedicationRequest without an RxNorm code
	KindStale         = "stale-medication" // an active order with no activity in the quiet period
	KindProfile       = "profile"          // a US Core rule failed
	// KindUnknownExtension is an extension nobody understands: not US Core,
	// not documented by a vendor profile (its value stays in the raw
	// resource but reaches no application).
	KindUnknownExtension = "unknown-extension"
)

// Finding is one data-quality problem with one resource.
type Finding struct {
	Connection string `json:"connection"`
	Type       string `json:"type"`
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	Severity   string `json:"severity"`
	Element    string `json:"element,omitempty"` // JSON element of the normalized model or FHIR path
	Message    string `json:"message"`           // value-free
	// Rule and Profile identify a failed US Core rule (Kind profile).
	Rule    string `json:"rule,omitempty"`
	Profile string `json:"profile,omitempty"`
	// Code is the unmapped coding (Kind unmapped-code): system, code and
	// the source's display or text.
	Code *normalize.Coding `json:"code,omitempty"`
	// Extension is the URL of an extension nobody understands (Kind
	// unknown-extension).
	Extension string `json:"extension,omitempty"`
}

// ErrMalformed marks a raw resource that is not a JSON object.
var ErrMalformed = errors.New("quality: malformed resource")

// CheckProfile checks a raw resource of type typ against the US Core rules.
// Types without rules give no findings.
func CheckProfile(ref normalize.Ref, raw []byte) ([]Finding, error) {
	rules := Rules(ref.Type)
	if len(rules) == 0 {
		return nil, nil
	}
	var root map[string]any
	if err := json.Unmarshal(raw, &root); err != nil {
		return nil, fmt.Errorf("checking %s profile: %w", ref.Type, ErrMalformed)
	}
	var out []Finding
	for _, r := range rules {
		sev, msg := r.check(root)
		if msg == "" {
			continue
		}
		out = append(out, Finding{Connection: ref.Connection, Type: ref.Type, ID: ref.ID, Kind: KindProfile,
			Severity: sev, Element: r.Path, Message: msg, Rule: r.ID, Profile: r.Profile})
	}
	return out, nil
}

// CheckNormalized reports terminology and currency findings of a normalized
// resource: unmapped codes, missing LOINC or RxNorm, stale medications.
func CheckNormalized(res normalize.Resource) []Finding {
	b := res.Base()
	f := func(kind, sev, element, msg string) Finding {
		return Finding{Connection: b.Source.Connection, Type: b.Source.Type, ID: b.Source.ID, Kind: kind, Severity: sev, Element: element, Message: msg}
	}
	var out []Finding
	unmapped := func(element string, c *normalize.Concept) {
		if c.Mapping != normalize.MappingUnmapped {
			return
		}
		fd := f(KindUnmapped, SeverityWarning, element, "no standard code: the original code and text are kept; add it to the connection's local-code map")
		fd.Code = &normalize.Coding{System: c.System, Code: c.Code, Display: c.Label()}
		if c.Code == "" && len(c.Original) > 0 {
			fd.Code.System, fd.Code.Code = c.Original[0].System, c.Original[0].Code
		}
		out = append(out, fd)
	}
	for _, u := range b.UnknownExtensions {
		fd := f(KindUnknownExtension, SeverityInfo, "extension", "extension not understood: kept in the raw resource only; a vendor profile can document it")
		fd.Extension = u
		out = append(out, fd)
	}
	switch r := res.(type) {
	case *normalize.Observation:
		unmapped("code", &r.Code)
		if r.Code.System != terminology.SystemLOINC && (r.Code.Code != "" || r.Code.Text != "") {
			out = append(out, f(KindMissingLOINC, SeverityError, "code", "observation has no LOINC code"))
		}
	case *normalize.MedicationRequest:
		unmapped("medication", &r.Medication)
		if r.Medication.System != terminology.SystemRxNorm && (r.Medication.Code != "" || r.Medication.Text != "") {
			out = append(out, f(KindMissingRxNorm, SeverityError, "medication", "medication has no RxNorm code"))
		}
		if r.Stale {
			out = append(out, f(KindStale, SeverityWarning, "status", r.StaleReason))
		}
	case *normalize.Condition:
		unmapped("code", &r.Code)
	case *normalize.Immunization:
		unmapped("vaccine", &r.Vaccine)
	case *normalize.AllergyIntolerance:
		unmapped("substance", &r.Substance)
	case *normalize.Procedure:
		unmapped("code", &r.Code)
	case *normalize.DiagnosticReport:
		unmapped("code", &r.Code)
	}
	return out
}

// Check normalizes raw with n and returns every finding for it: profile
// findings on the raw resource and terminology findings on the normalized
// one. A resource that cannot be normalized gives the error (it belongs in
// quarantine, not in a quality report).
func Check(n *normalize.Normalizer, ref normalize.Ref, raw []byte) ([]Finding, normalize.Resource, error) {
	res, err := n.Normalize(ref, raw)
	if err != nil {
		return nil, nil, err
	}
	src := res.Base().Source
	prof, err := CheckProfile(normalize.Ref{Connection: src.Connection, Type: src.Type, ID: src.ID}, raw)
	if err != nil {
		return nil, res, err
	}
	return append(prof, CheckNormalized(res)...), res, nil
}
