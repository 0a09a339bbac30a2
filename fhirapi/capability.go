package fhirapi

import (
	"encoding/json"
	"net/http"
	"time"

	"ehrgate/fhir/backport"
)

// metadata serves the CapabilityStatement: what this API truly serves
// (types, interactions, search parameters, operations) and how to get a
// token (the SMART security section).
func (a *API) metadata(w http.ResponseWriter, r *http.Request) {
	type sp struct {
		Name          string `json:"name"`
		Type          string `json:"type"`
		Documentation string `json:"documentation,omitempty"`
	}
	type interaction struct {
		Code string `json:"code"`
	}
	type op struct {
		Name       string `json:"name"`
		Definition string `json:"definition"`
	}
	type resource struct {
		Type          string        `json:"type"`
		Interaction   []interaction `json:"interaction"`
		Versioning    string        `json:"versioning"`
		ReadHistory   bool          `json:"readHistory"`
		SearchInclude []string      `json:"searchInclude,omitempty"`
		SearchRevInc  []string      `json:"searchRevInclude,omitempty"`
		SearchParam   []sp          `json:"searchParam"`
		Operation     []op          `json:"operation,omitempty"`
	}
	var resources []resource
	for _, typ := range ServedTypes {
		res := resource{Type: typ, Versioning: "versioned", ReadHistory: true,
			Interaction: []interaction{{"read"}, {"vread"}, {"search-type"}}}
		for _, p := range append(append([]param(nil), commonParams...), searchParams[typ]...) {
			res.SearchParam = append(res.SearchParam, sp{p.name, p.kind.String(), p.doc})
			if p.kind == referenceParam {
				res.SearchInclude = append(res.SearchInclude, typ+":"+p.name)
			}
		}
		if typ == "Patient" {
			for _, t := range ServedTypes[1:] {
				res.SearchRevInc = append(res.SearchRevInc, t+":patient")
			}
			res.Operation = []op{{"everything", "http://hl7.org/fhir/OperationDefinition/Patient-everything"},
				{"match", "http://hl7.org/fhir/OperationDefinition/Patient-match"},
				{"summary", "http://hl7.org/fhir/uv/ips/OperationDefinition/summary"},
				{"patient-export", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"}}
		}
		resources = append(resources, res)
	}
	// Each connection is a Group of its patients (Group/PREFIX/$export);
	// Groups are not otherwise served. The Bulk Data IG's CapabilityStatement
	// (and clients reading it, such as the SMART Bulk Data test kit) look
	// for patient-export on Patient and group-export on Group.
	resources = append(resources, resource{Type: "Group", Interaction: []interaction{}, Versioning: "no-version", SearchParam: []sp{},
		Operation: []op{{"group-export", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"}}})
	var subscription []any
	if a.o.Events != nil && a.o.Docs != nil {
		// The backport IG's CapabilityStatement: the topics on the
		// Subscription resource (capabilitystatement-subscriptiontopic-canonical)
		// and its $status and $events operations.
		subscription = append(subscription, map[string]any{"type": "Subscription",
			"extension":   []any{map[string]any{"url": backport.ExtTopicCanonical, "valueCanonical": TopicPatientChart}},
			"interaction": []any{map[string]any{"code": "create"}, map[string]any{"code": "read"}, map[string]any{"code": "delete"}},
			"operation": []any{
				map[string]any{"name": "status", "definition": "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status"},
				map[string]any{"name": "events", "definition": "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-events"}},
			"documentation": "Topic " + TopicPatientChart + ": a patient's chart changed; filter patient=Patient/ID; rest-hook, payload empty, id-only or full-resource."})
	}
	security := map[string]any{
		"cors": false,
		"service": []any{map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}}}},
		"description": "Bearer access tokens (SMART App Launch 2); scopes are enforced per type, interaction and patient compartment.",
	}
	if s := a.o.SMART; s != nil {
		var ext []any
		for _, e := range []struct{ name, url string }{{"authorize", s.Authorize}, {"token", s.Token}, {"introspect", s.Introspect}, {"revoke", s.Revoke}} {
			if e.url != "" {
				ext = append(ext, map[string]any{"url": e.name, "valueUri": e.url})
			}
		}
		security["extension"] = []any{map[string]any{
			"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris", "extension": ext}}
	}
	cs := map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         a.o.Now().UTC().Format(time.DateOnly),
		"kind":         "instance",
		"software":     map[string]any{"name": "ehrgate"},
		"implementation": map[string]any{
			"description": "ehrgate: every connected EHR in one namespace (ids are CONNECTION.ID; meta.tag " + ConnectionTagSystem + " names the source)",
			"url":         a.base(r)},
		"fhirVersion": "4.0.1",
		"format":      []string{"json"},
		"rest": []any{map[string]any{
			"mode":     "server",
			"security": security,
			"resource": append(anySlice(resources), subscription...),
			"operation": []any{
				map[string]any{"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"},
			},
		}},
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	_ = json.NewEncoder(w).Encode(cs)
}

func anySlice[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}
