package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"ehrgate/store"
)

// Source is the system that observed and recorded the events: this ehrgate.
type Source struct {
	// InstanceID identifies the ehrgate process or replica (its host name,
	// a configured name).
	InstanceID string
	// Site is the deployment's name (AuditEvent.source.site), if any.
	Site string
}

// BALP profiles an event conforms to (meta.profile), by shape.
const balp = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."

// Identifier systems for ehrgate's own ids.
const (
	systemUser       = "urn:ehrgate:user"
	systemClient     = "urn:ehrgate:client"
	systemInstance   = "urn:ehrgate:instance"
	detailConnection = "connection" // entity.detail.type naming the connection
)

// profile returns the BALP profile e follows, or "" when none fits:
//
//   - IHE.BasicAudit.PatientRead / Read: rest read or vread, action R.
//   - IHE.BasicAudit.PatientQuery / Query: rest search, action E, the query
//     base64-encoded in a query entity (role 24).
//   - IHE.BasicAudit.PatientCreate / Create, PatientUpdate / Update,
//     PatientDelete / Delete: rest with action C, U, D.
//
// The Patient* profiles when e names a patient.
func (e Event) profile() string {
	if e.Type != TypeRest {
		return ""
	}
	var name string
	switch e.Action {
	case ActionRead:
		name = "Read"
	case ActionExecute:
		if e.Query == "" {
			return ""
		}
		name = "Query"
	case ActionCreate:
		name = "Create"
	case ActionUpdate:
		name = "Update"
	case ActionDelete:
		name = "Delete"
	default:
		return ""
	}
	if e.Patient.ID != "" {
		name = "Patient" + name
	}
	return balp + name
}

// The FHIR R4 AuditEvent, with only the elements ehrgate fills. Field order
// is the encoding's order: the bytes are canonical for one Event and Source.
type (
	auditEvent struct {
		ResourceType   string    `json:"resourceType"`
		ID             string    `json:"id,omitempty"`
		Meta           *meta     `json:"meta,omitempty"`
		Type           Coding    `json:"type"`
		Subtype        []Coding  `json:"subtype,omitempty"`
		Action         string    `json:"action"`
		Recorded       string    `json:"recorded"`
		Outcome        string    `json:"outcome"`
		OutcomeDesc    string    `json:"outcomeDesc,omitempty"`
		PurposeOfEvent []concept `json:"purposeOfEvent,omitempty"`
		Agent          []agent   `json:"agent"`
		Source         source    `json:"source"`
		Entity         []entity  `json:"entity,omitempty"`
	}
	meta struct {
		Profile []string `json:"profile,omitempty"`
	}
	concept struct {
		Coding []Coding `json:"coding,omitempty"`
		Text   string   `json:"text,omitempty"`
	}
	identifier struct {
		System string `json:"system,omitempty"`
		Value  string `json:"value"`
	}
	reference struct {
		Reference  string      `json:"reference,omitempty"`
		Identifier *identifier `json:"identifier,omitempty"`
		Display    string      `json:"display,omitempty"`
	}
	network struct {
		Address string `json:"address"`
		Type    string `json:"type"`
	}
	agent struct {
		Type      *concept  `json:"type,omitempty"`
		Who       reference `json:"who"`
		Requestor bool      `json:"requestor"`
		Network   *network  `json:"network,omitempty"`
	}
	source struct {
		Site     string    `json:"site,omitempty"`
		Observer reference `json:"observer"`
		Type     []Coding  `json:"type,omitempty"`
	}
	detail struct {
		Type        string `json:"type"`
		ValueString string `json:"valueString"`
	}
	entity struct {
		What   *reference `json:"what,omitempty"`
		Type   *Coding    `json:"type,omitempty"`
		Role   *Coding    `json:"role,omitempty"`
		Query  string     `json:"query,omitempty"`
		Detail []detail   `json:"detail,omitempty"`
	}
)

// Codes of agents, sources and entities (BALP's choices).
var (
	roleSource      = Coding{SystemDICOM, "110153", "Source Role ID"}
	roleDestination = Coding{SystemDICOM, "110152", "Destination Role ID"}
	roleRecipient   = Coding{"http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP", "information recipient"}
	sourceAppServer = Coding{"http://terminology.hl7.org/CodeSystem/security-source-type", "4", "Application Server"}
	entityPerson    = Coding{"http://terminology.hl7.org/CodeSystem/audit-entity-type", "1", "Person"}
	entityObject    = Coding{"http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object"}
	objectPatient   = Coding{"http://terminology.hl7.org/CodeSystem/object-role", "1", "Patient"}
	objectResource  = Coding{"http://terminology.hl7.org/CodeSystem/object-role", "4", "Domain Resource"}
	objectQuery     = Coding{"http://terminology.hl7.org/CodeSystem/object-role", "24", "Query"}
	entityRequestID = Coding{"https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType", "XrequestId", "X-Request-Id"}
)

func connectionDetail(conn string) []detail {
	if conn == "" {
		return nil
	}
	return []detail{{Type: detailConnection, ValueString: conn}}
}

// resource builds the AuditEvent of e as observed by src.
func (e Event) resource(src Source) auditEvent {
	ae := auditEvent{
		ResourceType: "AuditEvent",
		Type:         e.Type,
		Subtype:      e.Subtype,
		Action:       string(e.Action),
		Recorded:     e.Recorded.UTC().Format(time.RFC3339Nano),
		Outcome:      string(e.Outcome),
		OutcomeDesc:  e.OutcomeDesc,
	}
	if p := e.profile(); p != "" {
		ae.Meta = &meta{Profile: []string{p}}
	}
	for _, c := range e.Purpose {
		ae.PurposeOfEvent = append(ae.PurposeOfEvent, concept{Coding: []Coding{c}})
	}
	var net *network
	if e.Agent.Address != "" {
		net = &network{Address: e.Agent.Address, Type: networkType(e.Agent.Address)}
	}
	// The client (BALP: the Source Role ID agent), the server (Destination
	// Role ID) and the person (information recipient, the requestor when
	// there is one).
	if e.Agent.ClientID != "" {
		ae.Agent = append(ae.Agent, agent{
			Type:      &concept{Coding: []Coding{roleSource}},
			Who:       reference{Identifier: &identifier{System: systemClient, Value: e.Agent.ClientID}},
			Requestor: e.Agent.UserID == "",
			Network:   net,
		})
		if e.Agent.UserID != "" {
			net = nil
		}
	}
	ae.Agent = append(ae.Agent, agent{
		Type: &concept{Coding: []Coding{roleDestination}},
		Who:  reference{Identifier: &identifier{System: systemInstance, Value: src.InstanceID}, Display: "ehrgate"},
	})
	if e.Agent.UserID != "" {
		ae.Agent = append(ae.Agent, agent{
			Type:      &concept{Coding: []Coding{roleRecipient}},
			Who:       reference{Identifier: &identifier{System: systemUser, Value: e.Agent.UserID}, Display: e.Agent.Name},
			Requestor: true,
			Network:   net,
		})
	}
	ae.Source = source{
		Site:     src.Site,
		Observer: reference{Identifier: &identifier{System: systemInstance, Value: src.InstanceID}, Display: "ehrgate"},
		Type:     []Coding{sourceAppServer},
	}
	if e.Patient.ID != "" {
		ae.Entity = append(ae.Entity, entity{
			What:   &reference{Reference: "Patient/" + e.Patient.ID},
			Type:   &entityPerson,
			Role:   &objectPatient,
			Detail: connectionDetail(e.Patient.Connection),
		})
	}
	for _, r := range e.Resources {
		ae.Entity = append(ae.Entity, entity{
			What:   &reference{Reference: r.Reference()},
			Type:   &entityObject,
			Role:   &objectResource,
			Detail: connectionDetail(r.Connection),
		})
	}
	if q := e.encodedQuery(); q != "" {
		ae.Entity = append(ae.Entity, entity{Type: &entityObject, Role: &objectQuery, Query: q})
	}
	if e.RequestID != "" {
		ae.Entity = append(ae.Entity, entity{What: &reference{Identifier: &identifier{Value: e.RequestID}}, Type: &entityRequestID})
	}
	return ae
}

// AuditEvent returns e as the JSON of a FHIR R4 AuditEvent observed by src,
// without an id: the canonical event bytes the trail stores. e must be valid
// (Validate).
func (e Event) AuditEvent(src Source) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	if e.Recorded.IsZero() {
		return nil, fmt.Errorf("%w: no recorded time", ErrInvalid)
	}
	e.Recorded = e.Recorded.UTC().Truncate(time.Microsecond)
	b, err := json.Marshal(e.resource(src))
	if err != nil {
		return nil, fmt.Errorf("encoding AuditEvent: %w", err)
	}
	return b, nil
}

// Entry returns e as the trail stores it: the AuditEvent bytes and the
// indexed fields (Seq and hashes are the store's to set).
func (e Event) Entry(src Source) (store.AuditEntry, error) {
	b, err := e.AuditEvent(src)
	if err != nil {
		return store.AuditEntry{}, err
	}
	ent := store.AuditEntry{
		Recorded:   e.Recorded.UTC().Truncate(time.Microsecond),
		Type:       e.Type.Code,
		Action:     string(e.Action),
		Outcome:    string(e.Outcome),
		Agent:      e.Agent.ID(),
		Connection: e.Patient.Connection,
		Patient:    e.Patient.ID,
		Event:      b,
	}
	if len(e.Subtype) > 0 {
		ent.Subtype = e.Subtype[0].Code
	}
	return ent, nil
}

// Resource returns a stored entry as the AuditEvent a reader gets: the
// stored event, byte for byte, with its sequence number as id.
func Resource(ent store.AuditEntry) (json.RawMessage, error) {
	const head = `{"resourceType":"AuditEvent"`
	if !bytes.HasPrefix(ent.Event, []byte(head)) || len(ent.Event) == len(head) {
		return nil, fmt.Errorf("audit event %d is not an AuditEvent", ent.Seq)
	}
	b := make([]byte, 0, len(ent.Event)+24)
	b = append(b, head...)
	b = append(b, `,"id":"`...)
	b = strconv.AppendInt(b, ent.Seq, 10)
	b = append(b, '"')
	return append(b, ent.Event[len(head):]...), nil
}
