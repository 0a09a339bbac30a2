// Package fhirapi is ehrgate's FHIR R4 API for the apps it feeds: read,
// vread and search over everything the store holds, from every connection
// in one namespace (see ServedID), each resource tagged with its source,
// behind SMART bearer tokens whose scopes are enforced on every request,
// and every access written to the audit trail before the response is sent.
package fhirapi
