// Package personality makes the simulated EHR behave like a particular
// vendor's FHIR API. Wrap puts middleware around the core ehrsim handler
// that, over the same synthetic patients, reproduces the vendor's
// CapabilityStatement (software, publisher, the subset of types and search
// parameters it offers), its error style for a missing required parameter
// or an unsupported type or parameter, its paging (page-size caps, "prev"
// versus "previous", a last page whose next link repeats self), vendor
// extensions on resources, rate limits, and a site profile on top (types
// switched off, parameters refused, local codes).
//
// A personality is data (a Spec); the middleware branches on Spec fields,
// never on vendor names. The simulator's behaviour is written here
// independently of the ehr adapters' handling of it, except for the list of
// search parameters each vendor offers, which both read from the vendor's
// ehr.Profile so that they cannot drift apart. Each Spec field cites where
// the behaviour comes from; "simulated" marks a choice made for testing
// that is not a claim about the vendor.
package personality

import (
	"net/http"
	"sort"

	"ehrgate/ehr"
)

// Spec is one vendor personality.
type Spec struct {
	Vendor string

	// CapabilityStatement fields, shaped like the vendor's.
	SoftwareName, SoftwareVersion, SoftwareReleaseDate string
	Name, Publisher, Copyright, Description            string
	URL                                                string // CapabilityStatement.url

	// Required maps a type to a search parameter it refuses to search
	// without; MissingRequired writes the refusal.
	Required map[string]string
	// MissingRequired is the vendor's answer to a search lacking a required
	// parameter.
	MissingRequired ErrorStyle
	// UnsupportedType is the answer for a type the vendor or site does not
	// serve.
	UnsupportedType ErrorStyle
	// UnsupportedParam is the answer for a parameter the vendor does not
	// accept; Lenient drops such parameters silently instead.
	UnsupportedParam ErrorStyle
	Lenient          bool
	// WriteRefused is the answer to a create or update of a type the
	// vendor's ehr.Profile.Write does not accept (zero: 405 not-supported).
	WriteRefused ErrorStyle

	// MaxPageSize silently caps _count (0 = the core's cap).
	MaxPageSize int
	// PrevRelation, when set, adds a backward link with this relation on
	// every page after the first ("prev" or "previous").
	PrevRelation string
	// NextEqualsSelfOnLast makes the last page carry a next link equal to
	// its self link.
	NextEqualsSelfOnLast bool

	// Extensions are added to every resource of their types, shaped like
	// the vendor's.
	Extensions []Extension

	// AuthorizePath and TokenPath are the SMART endpoints' paths, shaped like
	// the vendor's, published at [base]/.well-known/smart-configuration on
	// the simulator's host ("" = no smart-configuration, 404).
	AuthorizePath, TokenPath string

	// RateLimit is the requests per second served before answering 429
	// (0 = unlimited); Burst is the bucket size.
	RateLimit float64
	Burst     int
}

// Extension is a vendor extension the personality adds to resources.
type Extension struct {
	URL   string
	Types []string
	// String, when set, is sent as valueString.
	String string
	// GenderSystem, when set, sends the resource's gender as a
	// valueCodeableConcept coded in this system (a vendor's sex extensions).
	GenderSystem string
}

// epicSexSystem is the code system of Epic's sex extensions as seen in Epic
// sandbox responses (unverified).
const epicSexSystem = "urn:oid:1.2.840.114350.1.13.0.1.7.10.698084.130.657370.19999000"

// ErrorStyle is how a vendor writes one kind of error.
type ErrorStyle struct {
	Status   int    // HTTP status
	Severity string // OperationOutcome issue severity
	Code     string // OperationOutcome issue code
}

var (
	styleNotSupported400 = ErrorStyle{Status: http.StatusBadRequest, Severity: "error", Code: "not-supported"}
	styleNotSupported404 = ErrorStyle{Status: http.StatusNotFound, Severity: "error", Code: "not-supported"}
	styleInvalid400      = ErrorStyle{Status: http.StatusBadRequest, Severity: "error", Code: "invalid"}
)

// specs are the personalities. Where a recorded capture exists in the
// shared fixtures (smart-config/capability/*), CapabilityStatement fields
// copy its shape and vendor markers.
var specs = map[string]Spec{
	"generic": {
		AuthorizePath: "/auth/authorize", TokenPath: "/auth/token",
		Vendor:       "generic",
		SoftwareName: "HAPI FHIR Server", SoftwareVersion: "6.4.0", // simulated: a common open-source server
		Publisher: "Not provided", Description: "HAPI FHIR",
		UnsupportedType:  styleNotSupported404, // HAPI's answer (ehrsim/README.md)
		UnsupportedParam: styleNotSupported400,
		MissingRequired:  styleInvalid400,
		PrevRelation:     "prev", // HAPI names it "prev"; fhir.Bundle.LinkURL accepts both
		// A last page whose next repeats self: a known server quirk
		// (fhir/client.go SearchAll doc); simulated here.
		NextEqualsSelfOnLast: true,
	},
	"epic": {
		// https://fhir.epic.com/interconnect-fhir-oauth/oauth2/authorize and
		// .../oauth2/token are Epic's sandbox endpoints (fhir.epic.com docs).
		AuthorizePath: "/interconnect-fhir-oauth/oauth2/authorize", TokenPath: "/interconnect-fhir-oauth/oauth2/token",
		Vendor: "epic",
		// fixtures smart-config/capability/epic-dstu2.Conformance.json:
		// software.name is the release, version the build, with releaseDate;
		// copyright names Epic; url under /api/FHIR/; no name or publisher.
		SoftwareName: "November 2025", SoftwareVersion: "11.2.0", SoftwareReleaseDate: "2025-11-14T00:00:00Z",
		Copyright: "Copyright Epic 1979-2026",
		URL:       "https://fhir.epic.example/interconnect-fhir-oauth/api/FHIR/R4/metadata",
		// Observation without category → HTTP 400, severity fatal, code
		// required (https://github.com/jwilleke/yourphr/issues/754).
		Required:        map[string]string{"Observation": "category", "CarePlan": "category"},
		MissingRequired: ErrorStyle{Status: http.StatusBadRequest, Severity: "fatal", Code: "required"},
		// simulated: a refused write answered like Epic's other refusals
		// (HTTP 400, severity fatal), code not-supported.
		WriteRefused:     ErrorStyle{Status: http.StatusBadRequest, Severity: "fatal", Code: "not-supported"},
		UnsupportedType:  styleNotSupported400, // simulated
		UnsupportedParam: styleNotSupported400, // simulated
		PrevRelation:     "previous",
		MaxPageSize:      1000,
		// Epic Patient.Read (R4) extensions, valueCodeableConcept with
		// Epic's sex code system as in Epic sandbox responses (see
		// ehr/profiles/epic.yaml; unverified against a live tenant).
		Extensions: []Extension{
			{URL: "http://open.epic.com/FHIR/StructureDefinition/extension/legal-sex", Types: []string{"Patient"}, GenderSystem: epicSexSystem},
			{URL: "http://open.epic.com/FHIR/StructureDefinition/extension/sex-for-clinical-use", Types: []string{"Patient"}, GenderSystem: epicSexSystem},
		},
	},
	"oracle": {
		// fixtures smart-config/well-known/cerner-r4-tenant-ec2458f2.smart-configuration.json
		AuthorizePath: "/tenants/ec2458f2-1e24-41c8-b71b-0e701af7583d/protocols/oauth2/profiles/smart-v1/personas/provider/authorize",
		TokenPath:     "/tenants/ec2458f2-1e24-41c8-b71b-0e701af7583d/protocols/oauth2/profiles/smart-v1/token",
		Vendor:        "oracle",
		// fixtures smart-config/capability/cerner-dstu2.Conformance.json:
		// name "Cerner Conformance Statement", publisher "Cerner", no software.
		Name: "Cerner Conformance Statement", Publisher: "Cerner",
		Description:      "Describes capabilities of this server",
		URL:              "https://fhir-ehr.cerner.com/r4/ec2458f2-1e24-41c8-b71b-0e701af7583d/metadata",
		UnsupportedType:  styleNotSupported404, // simulated
		UnsupportedParam: styleNotSupported400, // simulated
		MissingRequired:  styleInvalid400,
		WriteRefused:     ErrorStyle{Status: http.StatusForbidden, Severity: "error", Code: "forbidden"}, // simulated
		MaxPageSize:      100,                                                                            // see ehr/profiles/oracle.yaml (unverified)
		PrevRelation:     "previous",
		Extensions: []Extension{
			// simulated shape of a Millennium extension no profile documents
			// (the quality page lists it as not understood)
			{URL: "https://fhir-ehr.cerner.com/r4/StructureDefinition/custom-attribute", Types: []string{"Encounter"}, String: "simulated"},
		},
	},
	"athena": {
		AuthorizePath: "/oauth2/v1/authorize", TokenPath: "/oauth2/v1/token", // simulated
		Vendor:       "athena",
		SoftwareName: "athenaOne", SoftwareVersion: "26.1", // simulated
		Publisher: "athenahealth", Name: "athenahealth FHIR R4 Capability Statement",
		// MedicationRequest without intent is refused (ehr/profiles/athena.yaml).
		Required:         map[string]string{"MedicationRequest": "intent"},
		MissingRequired:  styleInvalid400,
		UnsupportedType:  styleNotSupported404,
		UnsupportedParam: styleNotSupported400,
		PrevRelation:     "previous",
		// Rate limit a little above the adapter's client-side cap (15/s,
		// burst 5) so that an adapter-paced client is never refused.
		RateLimit: 20, Burst: 10,
	},
	"ecw": {
		AuthorizePath: "/fhir/r4/oauth/authorize", TokenPath: "/fhir/r4/oauth/token", // simulated
		Vendor:       "ecw",
		SoftwareName: "eClinicalWorks FHIR Server", SoftwareVersion: "12.0", // simulated
		Publisher:        "eClinicalWorks",
		UnsupportedType:  styleNotSupported404,
		UnsupportedParam: styleNotSupported400,
		MissingRequired:  styleInvalid400,
		MaxPageSize:      50,
		PrevRelation:     "previous",
	},
	"meditech": {
		// fixtures smart-config/capability/meditech-dstu2.Conformance.json oauth-uris
		AuthorizePath: "/oauth/authorize", TokenPath: "/oauth/token",
		Vendor: "meditech",
		// fixtures smart-config/capability/meditech-dstu2.Conformance.json:
		// name "argonaut", publisher and copyright name Medical Information
		// Technology, version "1.0.0", no software element.
		Name: "argonaut", Publisher: "Medical Information Technology, Inc",
		Copyright:        "Copyright © 2026 Medical Information Technology, Inc.",
		Description:      "This profile defines the capabilities expressed by the Argonaut specification.",
		URL:              "https://expanse.meditech.example/v1/argonaut/v1/metadata",
		UnsupportedType:  styleNotSupported404,
		UnsupportedParam: styleNotSupported400,
		MissingRequired:  styleInvalid400,
		PrevRelation:     "previous",
	},
	"veradigm": {
		// fixtures smart-config/capability/allscripts-dstu2.Conformance.json oauth-uris
		AuthorizePath: "/fhirroute/authorization/10028551/connect/authorize", TokenPath: "/fhirroute/authorization/10028551/connect/token",
		Vendor: "veradigm",
		// fixtures smart-config/capability/allscripts-dstu2.Conformance.json:
		// name, publisher "Allscripts", software {name "Allscripts FHIR",
		// version, releaseDate}, implementation.description.
		SoftwareName: "Allscripts FHIR", SoftwareVersion: "23.1.100.0", SoftwareReleaseDate: "2025-06-01",
		Name: "Allscripts FHIR Server Implementation", Publisher: "Allscripts",
		Copyright:        "Copyright 2026 Allscripts Healthcare Solutions, Inc.. All rights reserved",
		Description:      "Local Client Implementation",
		URL:              "https://fhir.fhirpoint.open.allscripts.example/fhirroute/fhir/10028551",
		UnsupportedType:  styleNotSupported404,
		UnsupportedParam: styleNotSupported400,
		Lenient:          true, // simulated: unknown parameters ignored, as FHIR's default handling allows
		MissingRequired:  styleInvalid400,
		PrevRelation:     "previous",
	},
	"nextgen": {
		AuthorizePath: "/nge/prod/nge-oauth/authorize", TokenPath: "/nge/prod/nge-oauth/token", // simulated
		Vendor:       "nextgen",
		SoftwareName: "NextGen Enterprise FHIR", SoftwareVersion: "8.4", // simulated
		Publisher:        "NextGen Healthcare",
		UnsupportedType:  styleNotSupported404,
		UnsupportedParam: styleNotSupported400,
		MissingRequired:  styleInvalid400,
		MaxPageSize:      50,
		PrevRelation:     "prev", // simulated
	},
}

// Lookup returns the personality for a vendor name or one of its aliases
// (ehr.Canonical: "cerner" is "oracle").
func Lookup(vendor string) (Spec, bool) {
	v, ok := ehr.Canonical(vendor)
	if !ok {
		return Spec{}, false
	}
	s, ok := specs[v]
	return s, ok
}

// Vendors returns the vendors with a personality, sorted.
func Vendors() []string {
	out := make([]string, 0, len(specs))
	for v := range specs {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}
