package ehrsim

import (
	"encoding/json"
	"net/http"
	"slices"
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
		Mode     string        `json:"mode"`
		Resource []capResource `json:"resource"`
	}
	capResource struct {
		Type              string           `json:"type"`
		Interaction       []capInteraction `json:"interaction"`
		Versioning        string           `json:"versioning,omitempty"`
		ConditionalCreate bool             `json:"conditionalCreate,omitempty"`
		SearchInclude     []string         `json:"searchInclude,omitempty"`
		SearchParam       []capSearchParam `json:"searchParam"`
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
		rest.Resource = append(rest.Resource, res)
	}
	cs.Rest = []capRest{rest}
	return cs
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
