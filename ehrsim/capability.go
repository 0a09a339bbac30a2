package ehrsim

import (
	"encoding/json"

	"ehrgate/fhir/backport"
	"net/http"
	"slices"
	"strings"
)

// The CapabilityStatement subset the simulator publishes
// (http://hl7.org/fhir/R4/capabilitystatement.html).
type (
	capabilityStatement struct {
		ResourceType   string            `json:"resourceType"`
		Status         string            `json:"status"`
		Date           string            `json:"date"`
		Publisher      string            `json:"publisher"`
		Kind           string            `json:"kind"`
		Software       capSoftware       `json:"software"`
		Implementation capImplementation `json:"implementation"`
		FHIRVersion    string            `json:"fhirVersion"`
		Format         []string          `json:"format"`
		Rest           []capRest         `json:"rest"`
	}
	capSoftware struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	capImplementation struct {
		Description string `json:"description"`
		URL         string `json:"url"`
	}
	capRest struct {
		Mode      string         `json:"mode"`
		Security  *capSecurity   `json:"security,omitempty"`
		Resource  []capResource  `json:"resource"`
		Operation []capOperation `json:"operation,omitempty"`
	}
	capSecurity struct {
		Extension []capExtension `json:"extension"`
		Service   []capConcept   `json:"service"`
	}
	capExtension struct {
		URL            string         `json:"url"`
		ValueURI       string         `json:"valueUri,omitempty"`
		ValueCanonical string         `json:"valueCanonical,omitempty"`
		Extension      []capExtension `json:"extension,omitempty"`
	}
	capConcept struct {
		Coding []capCoding `json:"coding"`
		Text   string      `json:"text,omitempty"`
	}
	capCoding struct {
		System string `json:"system"`
		Code   string `json:"code"`
	}
	capOperation struct {
		Name       string `json:"name"`
		Definition string `json:"definition"`
	}
	capResource struct {
		Extension         []capExtension   `json:"extension,omitempty"`
		Type              string           `json:"type"`
		Interaction       []capInteraction `json:"interaction"`
		Versioning        string           `json:"versioning,omitempty"`
		ConditionalCreate bool             `json:"conditionalCreate,omitempty"`
		SearchInclude     []string         `json:"searchInclude,omitempty"`
		SearchParam       []capSearchParam `json:"searchParam"`
		Operation         []capOperation   `json:"operation,omitempty"`
	}
	capInteraction struct {
		Code string `json:"code"`
	}
	capSearchParam struct {
		Name          string `json:"name"`
		Type          string `json:"type"`
		Documentation string `json:"documentation,omitempty"`
	}
)

// SoftwareName is the software name in the CapabilityStatement.
const SoftwareName = "ehrgate-sim"

// capability builds the CapabilityStatement for a FHIR base URL.
func (s *Server) capability(base string) capabilityStatement {
	cs := capabilityStatement{
		ResourceType: "CapabilityStatement",
		Status:       "active",
		Date:         formatInstant(s.opts.Clock()),
		Publisher:    "ehrgate",
		Kind:         "instance",
		Software:     capSoftware{Name: SoftwareName, Version: SoftwareVersion},
		Implementation: capImplementation{
			Description: "ehrgate simulated EHR",
			URL:         base,
		},
		FHIRVersion: "4.0.1",
		Format:      []string{"json", "application/fhir+json"},
	}
	rest := capRest{Mode: "server"}
	types := s.types()
	for _, typ := range s.writeTypes() {
		if !slices.Contains(types, typ) {
			types = append(types, typ)
		}
	}
	slices.Sort(types)
	for _, typ := range types {
		ps := paramsFor(typ)
		res := capResource{
			Type:        typ,
			Interaction: []capInteraction{{Code: "read"}, {Code: "search-type"}},
		}
		if s.writable(typ) {
			res.Interaction = append(res.Interaction, capInteraction{Code: "create"}, capInteraction{Code: "update"})
			res.Versioning, res.ConditionalCreate = "versioned-update", true
		}
		for _, name := range ps.sortedNames() {
			d := ps[name]
			res.SearchParam = append(res.SearchParam, capSearchParam{Name: name, Type: string(d.typ), Documentation: d.doc})
			if d.typ == paramReference {
				res.SearchInclude = append(res.SearchInclude, typ+":"+name)
			}
		}
		if s.opts.BulkExport {
			switch typ {
			case "Patient":
				res.Operation = []capOperation{{Name: "patient-export", Definition: bulkOperation + "patient-export"}}
			}
		}
		rest.Resource = append(rest.Resource, res)
	}
	if s.opts.BulkExport {
		// Group export works on the simulator's groups, which have no
		// REST interactions of their own.
		rest.Resource = append(rest.Resource, capResource{Type: "Group", Interaction: []capInteraction{},
			SearchParam: []capSearchParam{}, Operation: []capOperation{{Name: "group-export", Definition: bulkOperation + "group-export"}}})
		rest.Operation = []capOperation{{Name: "export", Definition: bulkOperation + "export"}}
	}
	if s.opts.Subscriptions.Enabled && s.opts.Subscriptions.Criteria {
		// Classic R4 Subscriptions: the resource, no topics, no operations.
		rest.Resource = append(rest.Resource, capResource{Type: "Subscription",
			Interaction: []capInteraction{{Code: "create"}, {Code: "read"}, {Code: "delete"}}, SearchParam: []capSearchParam{}})
	} else if s.opts.Subscriptions.Enabled {
		// The backport IG's topic list on the Subscription resource
		// (capabilitystatement-subscriptiontopic-canonical).
		ops := []capOperation{{Name: "status", Definition: "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status"}}
		if !s.opts.Subscriptions.NoEvents {
			ops = append(ops, capOperation{Name: "events", Definition: "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-events"})
		}
		rest.Resource = append(rest.Resource, capResource{Type: "Subscription",
			Extension:   []capExtension{{URL: backport.ExtTopicCanonical, ValueCanonical: TopicChartChange}},
			Interaction: []capInteraction{{Code: "create"}, {Code: "read"}, {Code: "delete"}},
			SearchParam: []capSearchParam{}, Operation: ops})
	}
	if o := s.opts.OAuth; o != nil {
		rest.Security = s.security(base, o)
	}
	cs.Rest = []capRest{rest}
	return cs
}

// bulkOperation is the prefix of the Bulk Data IG's OperationDefinitions.
const bulkOperation = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/"

// security is the CapabilityStatement's rest.security: SMART on FHIR with
// the oauth-uris extension
// (http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris).
func (s *Server) security(base string, o *OAuthURIs) *capSecurity {
	origin := strings.TrimSuffix(base, "/fhir")
	var uris []capExtension
	for _, e := range []struct{ name, path string }{
		{"authorize", o.Authorize}, {"token", o.Token}, {"introspect", o.Introspect}, {"revoke", o.Revoke},
	} {
		if e.path != "" {
			uris = append(uris, capExtension{URL: e.name, ValueURI: origin + e.path})
		}
	}
	return &capSecurity{
		Extension: []capExtension{{URL: "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris", Extension: uris}},
		Service: []capConcept{{Coding: []capCoding{{System: "http://terminology.hl7.org/CodeSystem/restful-security-service", Code: "SMART-on-FHIR"}},
			Text: "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)"}},
	}
}

// serveMetadata answers GET /fhir/metadata.
func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	b, err := json.Marshal(s.capability(baseURL(r)))
	if err != nil {
		s.log.Error("ehrsim: encoding CapabilityStatement", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	_, _ = w.Write(b)
}
