// Package terminology knows the code systems ehrgate meets in clinical data:
// which URIs name the same system, which systems count as standard, which
// coding to prefer for a concept in a given context, and which codes and
// words mark a telehealth encounter. It also holds the pieces of the
// terminology chain that package normalize runs: per-connection local-code
// maps (LocalMap, reloadable), NDC to RxNorm (DrugTable, NDCLookup), a text
// matcher from test names to LOINC (TextMatcher), condition groups and
// SNOMED CT <-> ICD-10-CM equivalences (ConditionTable), unit conversions
// (UnitTable), and loaders for the official LOINC, RxNorm, ICD-10-CM, CVX
// and LIVD files a user downloads under their own licence. See README.md.
//
// Everything here is data: the tables live in data/*.json and data/*.csv,
// are embedded in the binary and parsed once on first use. Lookups are
// read-only and safe for concurrent use.
package terminology

import (
	"embed"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
)

//go:embed data/*.json data/*.csv
var dataFS embed.FS

// Context names a place a coded concept occurs, as "ResourceType.element",
// for example "Observation.code". Preferences are looked up by context.
type Context string

// Contexts with bundled preferences.
const (
	ConditionCode         Context = "Condition.code"
	ObservationCode       Context = "Observation.code"
	ObservationValue      Context = "Observation.value"
	MedicationCode        Context = "MedicationRequest.medication"
	ImmunizationVaccine   Context = "Immunization.vaccineCode"
	AllergySubstance      Context = "AllergyIntolerance.code"
	ProcedureCode         Context = "Procedure.code"
	DiagnosticReportCode  Context = "DiagnosticReport.code"
	DocumentReferenceType Context = "DocumentReference.type"
	EncounterType         Context = "Encounter.type"
)

// System describes one code system.
type System struct {
	Name     string   `json:"name"`
	URI      string   `json:"uri"`      // canonical FHIR R4 system URI
	Standard bool     `json:"standard"` // a standard terminology (LOINC, SNOMED CT, ...)
	Aliases  []string `json:"aliases"`  // other spellings of URI
}

type tables struct {
	systems     map[string]*System // canonical URI and every alias -> system
	preferences map[Context][]string
	teleCodes   map[codeKey]bool
	teleWords   map[string]bool
}

type codeKey struct{ system, code string }

var load = sync.OnceValue(func() *tables {
	t, err := parse()
	if err != nil {
		// The tables are embedded and covered by tests; failing here is a
		// build defect, not a runtime condition.
		panic(err)
	}
	return t
})

func parse() (*tables, error) {
	t := &tables{
		systems:     map[string]*System{},
		preferences: map[Context][]string{},
		teleCodes:   map[codeKey]bool{},
		teleWords:   map[string]bool{},
	}
	var sys struct {
		Systems []*System `json:"systems"`
	}
	if err := readJSON("data/systems.json", &sys); err != nil {
		return nil, err
	}
	for _, s := range sys.Systems {
		for _, k := range append([]string{s.URI}, s.Aliases...) {
			if _, dup := t.systems[k]; dup {
				return nil, fmt.Errorf("reading systems: %q listed twice", k)
			}
			t.systems[k] = s
		}
	}
	var pref struct {
		Contexts map[Context][]string `json:"contexts"`
	}
	if err := readJSON("data/preferences.json", &pref); err != nil {
		return nil, err
	}
	for ctx, list := range pref.Contexts {
		for i, uri := range list {
			list[i] = canonical(t, uri)
		}
		t.preferences[ctx] = list
	}
	var tele struct {
		Codes []struct {
			System string `json:"system"`
			Code   string `json:"code"`
		} `json:"codes"`
		Words []string `json:"words"`
	}
	if err := readJSON("data/telehealth.json", &tele); err != nil {
		return nil, err
	}
	for _, c := range tele.Codes {
		t.teleCodes[codeKey{canonical(t, c.System), c.Code}] = true
	}
	for _, w := range tele.Words {
		t.teleWords[strings.ToLower(w)] = true
	}
	return t, nil
}

func readJSON(name string, v any) error {
	b, err := dataFS.ReadFile(name)
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding %s: %w", name, err)
	}
	return nil
}

func canonical(t *tables, uri string) string {
	if s, ok := t.systems[uri]; ok {
		return s.URI
	}
	return uri
}

// Canonical returns the canonical URI of a code system given any of its known
// spellings (an OID, a trailing slash, https), or uri unchanged when unknown.
func Canonical(uri string) string { return canonical(load(), uri) }

// Lookup returns the known system a URI (or alias) names.
func Lookup(uri string) (System, bool) {
	s, ok := load().systems[uri]
	if !ok {
		return System{}, false
	}
	return *s, true
}

// IsStandard reports whether uri (or an alias of it) names a standard
// terminology: LOINC, SNOMED CT, ICD-10-CM, RxNorm, CVX, UCUM or CPT.
func IsStandard(uri string) bool {
	s, ok := load().systems[uri]
	return ok && s.Standard
}

// Preferred returns the canonical system URIs to choose a coding from in ctx,
// most preferred first, or nil when the context has no preference. The slice
// is shared; callers must not modify it.
func Preferred(ctx Context) []string { return load().preferences[ctx] }

// TelehealthCode reports whether a coding marks a remote encounter, such as
// v3 ActCode VR or SNOMED CT 448337001.
func TelehealthCode(system, code string) bool {
	return load().teleCodes[codeKey{Canonical(system), code}]
}

// TelehealthText reports whether free text (a concept's text or a coding's
// display) contains a whole word that marks a remote encounter, such as
// "virtual" or "video", case-insensitively.
func TelehealthText(s string) bool {
	words := load().teleWords
	start := -1
	for i := 0; i <= len(s); i++ {
		letter := i < len(s) && isLetter(s[i])
		switch {
		case letter && start < 0:
			start = i
		case !letter && start >= 0:
			if words[strings.ToLower(s[start:i])] {
				return true
			}
			start = -1
		}
	}
	return false
}

func isLetter(b byte) bool { return b|0x20 >= 'a' && b|0x20 <= 'z' }
