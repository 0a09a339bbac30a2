// Package cdshooks is ehrgate's CDS Hooks 2.0 service
// (https://cds-hooks.hl7.org/2.0/): an EHR calls it when a clinician
// selects or signs a medication order or opens a chart, and it answers
// with cards: drug-allergy checking, and duplicate therapy.
//
// # Services
//
// Discovery at GET /cds-services lists six services, each with the
// prefetch templates Patient/{{context.patientId}} and the one list its
// check needs (AllergyIntolerance?patient={{context.patientId}}, or
// MedicationRequest?patient={{context.patientId}}&status=active):
//
//	drug-allergy-select       order-select: the newly selected orders (context.selections)
//	drug-allergy-sign         order-sign (and the legacy medication-prescribe): every draft order
//	drug-allergy-prescribe    medication-prescribe (CDS Hooks 1.0 name; orders in context.medications)
//	allergy-review            patient-view: allergies orders cannot be checked against, or no list
//	duplicate-therapy-select  order-select: a selected order's ingredient already in an active order
//	duplicate-therapy-sign    order-sign (and medication-prescribe): the same for every draft
//
// A call is POST /cds-services/{id}; feedback on its cards is POST
// /cds-services/{id}/feedback, kept in the store (DocFeedback) and read
// with ReadFeedback.
//
// # What a call does, in order
//
//  1. Authenticate the CDS client (CDS Hooks "Trusting CDS Clients"): a
//     bearer JWT signed with an asymmetric algorithm by a key of the
//     client's JWKS, registered with `ehrgate clients add NAME --cds-client
//     --iss ISS --jwks FILE|--jwks-url URL` (or at a jku that is the
//     registered URL or on Options.JKUAllowList); iss a registered CDS
//     client, aud the service's URL (Options.BaseURL + /cds-services/id),
//     sub, exp (at most 5 minutes ahead), iat, and a jti not seen before
//     (kept in the store, DocJTI, so a replay to another replica is
//     refused). Anything else is 401.
//  2. Parse the request (ParseRequest, CheckContext): 400 on errors that
//     name fields, never values or tokens.
//  3. Find the list the check needs (allergies here; the duplicate-therapy
//     services the same way with the active medication orders): the prefetch; else ehrgate's own
//     copy when fhirServer is a configured connection (only if ehrgate
//     fetched this patient's allergies; a source that does not provide
//     them gives a card saying so); else a search of fhirServer with
//     fhirAuthorization, within its SMART scopes (AllergyIntolerance
//     read+search; a patient/ token only for its patient) and before it
//     expires. None of these: 412 with what was tried.
//  4. Check every draft MedicationRequest (RxNorm, or NDC mapped to RxNorm
//     by the terminology chain) against the active, not refuted, not
//     entered-in-error allergies: ingredient, class, cross-sensitivity
//     (Knowledge, from the cited table data/drug_allergy.csv). A draft
//     that cannot be resolved to ingredients, and drug allergies that
//     cannot be resolved, each give a card saying the check was not done.
//  5. Record one AuditEvent (the CDS client and the user, the patient, the
//     resources read from the store, the outcome); if it cannot be
//     recorded the call gets 503 and no cards (fail closed).
//  6. Answer the cards (never null, empty strings or empty arrays).
//
// Logs carry service ids, client ids, statuses and request ids: never
// tokens or patient data. Metrics (NewMetrics): ehrgate_cds_calls_total,
// ehrgate_cds_cards_total, ehrgate_cds_call_duration_seconds,
// ehrgate_cds_feedback_total, ehrgate_cds_auth_failures_total.
//
// # Mounting
//
// With a gateway, g.MountCDS(cdshooks.Options{BaseURL: ...}) (gateway/cds.go)
// fills in its store, audit trail, metrics, logger and connections.
// Otherwise:
//
//	svc, err := cdshooks.New(cdshooks.Options{BaseURL: "https://ehrgate.example.org",
//		Store: st, Audit: rec, Registerer: reg,
//		Connections: []cdshooks.Connection{{Name: c.Name, BaseURL: c.BaseURL}}})
//	routes := svc.Routes() // []server.Route for server.Options.Routes or gateway.Mount
package cdshooks
