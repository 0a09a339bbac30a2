package ehr

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// SiteProfile is one health system's configuration layered over its
// vendor's adapter. Load it with LoadSiteProfile or ParseSiteProfile.
//
//	name: st-example
//	vendor: epic
//	disabled_types:
//	  Immunization: "Immunizations are kept in the state registry."
//	disabled_params:
//	  Observation: [code]
//	local_code_systems:
//	  - system: urn:oid:1.2.840.114350.1.13.999.2.7.2.768282
//	    types: [Observation]
//	    description: local lab codes
//	page_size: 50
type SiteProfile struct {
	// Name identifies the site in warnings and fetch-state reasons.
	Name string `yaml:"name"`
	// Vendor, when set, must match the adapter the site is layered on (by
	// name or alias: "cerner" matches oracle).
	Vendor string `yaml:"vendor"`
	// DisabledTypes maps a resource type the site switches off to the
	// user-safe reason ("" gets a generic one).
	DisabledTypes map[string]string `yaml:"disabled_types"`
	// DisabledParams lists per type the search parameters the site refuses.
	DisabledParams map[string][]string `yaml:"disabled_params"`
	// LocalCodeSystems are code systems the site uses beside the standard
	// ones.
	LocalCodeSystems []LocalCodeSystem `yaml:"local_code_systems"`
	// PageSize caps _count below the vendor's own cap (0 = no cap).
	PageSize int `yaml:"page_size"`
}

// LocalCodeSystem is a site-local code system.
type LocalCodeSystem struct {
	System      string   `yaml:"system"` // absolute URI (URL, urn:oid: or urn:uuid:)
	Types       []string `yaml:"types"`  // resource types that carry it
	Description string   `yaml:"description"`
}

// LoadSiteProfile reads and validates a site profile YAML file.
func LoadSiteProfile(path string) (*SiteProfile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading site profile: %w", err)
	}
	s, err := ParseSiteProfile(b)
	if err != nil {
		return nil, fmt.Errorf("site profile %s: %w", path, err)
	}
	return s, nil
}

// ParseSiteProfile decodes and validates a site profile. Unknown keys are
// errors; Validate's problems are all reported at once.
func ParseSiteProfile(data []byte) (*SiteProfile, error) {
	var s SiteProfile
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decoding site profile: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

var (
	typeName  = regexp.MustCompile(`^[A-Z][A-Za-z]+$`)
	paramName = regexp.MustCompile(`^_?[a-z][a-z0-9-]*(:[a-z-]+)?$`)
)

// Validate reports every problem with the site profile at once.
func (s *SiteProfile) Validate() error {
	var errs []error
	if s.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if _, ok := Canonical(s.Vendor); !ok {
		errs = append(errs, fmt.Errorf("vendor %q is not one of %s", s.Vendor, AcceptedNames()))
	}
	for typ := range s.DisabledTypes {
		if !typeName.MatchString(typ) {
			errs = append(errs, fmt.Errorf("disabled_types: %q is not a FHIR resource type name", typ))
		}
	}
	for typ, ps := range s.DisabledParams {
		if !typeName.MatchString(typ) {
			errs = append(errs, fmt.Errorf("disabled_params: %q is not a FHIR resource type name", typ))
		}
		if len(ps) == 0 {
			errs = append(errs, fmt.Errorf("disabled_params.%s: list at least one parameter", typ))
		}
		for _, p := range ps {
			if !paramName.MatchString(p) {
				errs = append(errs, fmt.Errorf("disabled_params.%s: %q is not a search parameter name", typ, p))
			}
		}
	}
	for i, c := range s.LocalCodeSystems {
		u, err := url.Parse(c.System)
		if c.System == "" || err != nil || u.Scheme == "" {
			errs = append(errs, fmt.Errorf("local_code_systems[%d]: system %q is not an absolute URI", i, c.System))
		}
		for _, typ := range c.Types {
			if !typeName.MatchString(typ) {
				errs = append(errs, fmt.Errorf("local_code_systems[%d]: %q is not a FHIR resource type name", i, typ))
			}
		}
	}
	if s.PageSize < 0 {
		errs = append(errs, fmt.Errorf("page_size %d must not be negative", s.PageSize))
	}
	return errors.Join(errs...)
}

// TypeDisabled reports whether the site switches typ off. A nil site
// disables nothing.
func (s *SiteProfile) TypeDisabled(typ string) bool {
	if s == nil {
		return false
	}
	_, ok := s.DisabledTypes[typ]
	return ok
}

// ParamDisabled reports whether the site refuses the search parameter on
// typ. Modifiers are ignored ("code:text" is "code").
func (s *SiteProfile) ParamDisabled(typ, param string) bool {
	if s == nil {
		return false
	}
	param, _, _ = strings.Cut(param, ":")
	return slices.Contains(s.DisabledParams[typ], param)
}

func (s *SiteProfile) typeReason(typ string) string {
	if r := s.DisabledTypes[typ]; r != "" {
		return r
	}
	return "not offered by this health system."
}
