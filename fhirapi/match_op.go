package fhirapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"ehrgate/audit"
	"ehrgate/identity"
	"ehrgate/normalize"
	"ehrgate/smart"
	"ehrgate/store"
)

// matchLimit caps the candidates Patient/$match returns (its count).
const matchLimit = 100

// patientMatch serves POST /fhir/Patient/$match (FHIR R4 Patient-match,
// http://hl7.org/fhir/R4/patient-operation-match.html): the Parameters body
// carries a Patient ("resource"), optionally "count" and
// "onlyCertainMatches"; the answer is a searchset Bundle of the stored
// Patients the identity matcher scores as link or review, best first, each
// entry with search.score (the match probability) and the match-grade
// extension (certain, probable, possible). The caller needs Patient search
// (Patient.s); with patient/ scopes only its own patient can be returned.
// The matcher is fitted over every served connection's Patients for each
// call, which suits stores of up to some tens of thousands of patients.
func (a *API) patientMatch(w http.ResponseWriter, r *http.Request) {
	c, ok := a.begin(w, r)
	if !ok {
		return
	}
	ev := audit.Search(c.agent, audit.PatientRef{}, "")
	ev.Subtype = []audit.Coding{audit.Interaction("operation")}
	g, err := a.grantsFor(c, "Patient", smart.PermSearch)
	if err != nil {
		a.fail(c, ev, http.StatusForbidden, "forbidden", err.Error()+".")
		return
	}
	in, count, certain, msg := parseMatchParameters(r.Body)
	if msg != "" {
		a.fail(c, ev, http.StatusBadRequest, "invalid", msg)
		return
	}
	ctx := r.Context()
	recs, err := identity.LoadPatients(ctx, a.o.Store)
	if err != nil {
		a.fail(c, ev, http.StatusInternalServerError, "exception", "The stored patients could not be read.")
		return
	}
	served := recs[:0]
	for _, rec := range recs {
		if _, ok := a.o.Connections[rec.Key.Source]; ok {
			served = append(served, rec)
		}
	}
	m := identity.New(served, identity.Options{})
	if _, err := m.Run(ctx); err != nil {
		a.fail(c, ev, http.StatusServiceUnavailable, "transient", "The match could not be computed.")
		return
	}
	base := a.base(r)
	var buf bytes.Buffer
	buf.WriteString(`{"resourceType":"Bundle","type":"searchset","entry":[`)
	var got []*store.Record
	for _, s := range m.Query(in, 0) {
		if len(got) == count {
			break
		}
		grade := m.MatchGrade(s)
		if certain && grade != "certain" {
			continue
		}
		rec, err := a.o.Store.Get(ctx, s.B.Source, "Patient", s.B.ID)
		if err != nil {
			continue // gone since the scan
		}
		if subj, err := decode(&rec); err != nil || !g.allows(subj, a.o.Now()) {
			continue
		}
		body, err := a.render(&rec, nil, c.clean)
		if err != nil {
			continue
		}
		if len(got) > 0 {
			buf.WriteByte(',')
		}
		fullURL, _ := json.Marshal(base + "/Patient/" + ServedID(rec.Connection, rec.ID))
		buf.WriteString(`{"fullUrl":`)
		buf.Write(fullURL)
		buf.WriteString(`,"resource":`)
		buf.Write(body)
		buf.WriteString(`,"search":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/match-grade","valueCode":"`)
		buf.WriteString(grade)
		buf.WriteString(`"}],"mode":"match","score":`)
		buf.WriteString(strconv.FormatFloat(s.Probability, 'f', 6, 64))
		buf.WriteString(`}}`)
		got = append(got, &rec)
	}
	buf.WriteString(`],"total":`)
	buf.WriteString(strconv.Itoa(len(got)))
	buf.WriteString("}\n")
	if len(got) == 1 {
		ev.Patient = patientOf(got[0])
	}
	a.succeed(c, ev, http.StatusOK, buf.Bytes())
}

// parseMatchParameters reads the $match Parameters; msg is a user-safe
// problem ("" when none).
func parseMatchParameters(body io.Reader) (in identity.Record, count int, certain bool, msg string) {
	var p struct {
		ResourceType string `json:"resourceType"`
		Parameter    []struct {
			Name         string          `json:"name"`
			Resource     json.RawMessage `json:"resource"`
			ValueInteger *int            `json:"valueInteger"`
			ValueBoolean *bool           `json:"valueBoolean"`
		} `json:"parameter"`
	}
	if err := json.NewDecoder(io.LimitReader(body, 1<<20)).Decode(&p); err != nil || p.ResourceType != "Parameters" {
		return in, 0, false, "The body must be a Parameters resource."
	}
	count = matchLimit
	var raw json.RawMessage
	for _, x := range p.Parameter {
		switch x.Name {
		case "resource":
			raw = x.Resource
		case "count":
			if x.ValueInteger == nil || *x.ValueInteger < 1 {
				return in, 0, false, "count must be a positive integer."
			}
			count = min(*x.ValueInteger, matchLimit)
		case "onlyCertainMatches":
			certain = x.ValueBoolean != nil && *x.ValueBoolean
		}
	}
	if raw == nil {
		return in, 0, false, "The resource parameter (a Patient) is required."
	}
	res, err := normalize.Normalize(normalize.Ref{Type: "Patient", ID: "match-input"}, raw)
	pat, ok := res.(*normalize.Patient)
	if err != nil || !ok {
		return in, 0, false, "The resource parameter must be a Patient."
	}
	in = identity.FromPatient("$match", *pat)
	identity.ExtraNames(&in, raw)
	return in, count, certain, ""
}
