package fhirapi

import (
	"errors"
	"net/http"
	"slices"
	"strconv"

	"ehrgate/identity"

	"ehrgate/audit"
	"ehrgate/smart"
	"ehrgate/store"
	"ehrgate/summary"
)

// summaryTypes are the types a clinical summary reads.
var summaryTypes = []string{"Condition", "MedicationRequest", "AllergyIntolerance", "Observation", "Encounter"}

// maxContextTokens caps $context's max-tokens.
const maxContextTokens = 1 << 20

// patientContext serves GET /fhir/Patient/{id}/$context: the patient's
// clinical summary for language models (package summary), as Markdown
// (text/markdown, the default) or JSON (format=json, or an Accept of
// application/json), within max-tokens tokens when given (bytes/4; the
// least important statements are left out and the output says how many).
// It needs Patient read (Patient.r) and the patient in the token's
// compartment; each section's type needs its own read scope, else the
// section says it was withheld. With merged=person the summary covers
// every record of the patient's person (identity, 'ehrgate match run')
// on a served connection whose Patient the token may read, the same fact
// from two sources shown once citing both. One audit event per call,
// naming every Patient summarized.
func (a *API) patientContext(w http.ResponseWriter, r *http.Request) {
	c, ok := a.begin(w, r)
	if !ok {
		return
	}
	ev := audit.Read(c.agent, audit.PatientRef{}, audit.ResourceRef{Type: "Patient", ID: r.PathValue("id")})
	ev.Subtype = []audit.Coding{audit.Interaction("operation")}
	q := r.URL.Query()
	asJSON := q.Get("format") == "json" || (q.Get("format") == "" && r.Header.Get("Accept") == "application/json")
	if f := q.Get("format"); f != "" && f != "json" && f != "markdown" {
		a.fail(c, ev, http.StatusBadRequest, "invalid", "format is markdown or json.")
		return
	}
	budget := 0
	if v := q.Get("max-tokens"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxContextTokens {
			a.fail(c, ev, http.StatusBadRequest, "invalid", "max-tokens must be a positive integer.")
			return
		}
		budget = n
	}
	s, ok := a.summaryOf(c, &ev)
	if !ok {
		return
	}
	render, ctype := summary.Markdown, "text/markdown; charset=utf-8"
	if asJSON {
		render, ctype = summary.JSON, "application/json"
	}
	_, body := summary.Fit(s, budget, render)
	c.w.Header().Set("Content-Type", ctype)
	a.succeed(c, ev, http.StatusOK, body)
}

// patientSummary serves GET /fhir/Patient/{id}/$summary: the patient's
// International Patient Summary, a document Bundle (summary.IPS), under
// the same access rules (and merged=person) as $context.
func (a *API) patientSummary(w http.ResponseWriter, r *http.Request) {
	c, ok := a.begin(w, r)
	if !ok {
		return
	}
	ev := audit.Read(c.agent, audit.PatientRef{}, audit.ResourceRef{Type: "Patient", ID: r.PathValue("id")})
	ev.Subtype = []audit.Coding{audit.Interaction("operation")}
	s, ok := a.summaryOf(c, &ev)
	if !ok {
		return
	}
	conn, pid := ev.Patient.Connection, ev.Patient.ID
	pat, err := a.o.Store.Get(c.r.Context(), conn, "Patient", pid)
	var patient []byte
	if err == nil {
		patient, err = a.render(&pat, nil, c.clean)
	}
	if err != nil {
		a.fail(c, ev, http.StatusInternalServerError, "exception", "The patient could not be read.")
		return
	}
	body, err := summary.IPS(s, summary.IPSOptions{PatientURL: a.base(c.r) + "/Patient/" + ServedID(conn, pid), Patient: patient, Now: a.o.Now()})
	if err != nil {
		a.fail(c, ev, http.StatusInternalServerError, "exception", "The summary could not be built.")
		return
	}
	a.succeed(c, ev, http.StatusOK, body)
}

// summaryOf checks the caller may read the patient named by the path and
// builds its summary, leaving out the types and resources the token does
// not grant; it answers and returns false when it cannot.
func (a *API) summaryOf(c *call, ev *audit.Event) (*summary.Summary, bool) {
	id := c.r.PathValue("id")
	notFound := "Patient/" + id + " is not known."
	conn, pid, ok := a.ns.Parse(id)
	if !ok {
		a.fail(c, *ev, http.StatusNotFound, "not-found", notFound)
		return nil, false
	}
	ev.Patient = audit.PatientRef{Connection: conn, ID: pid}
	ev.Resources = []audit.ResourceRef{{Connection: conn, Type: "Patient", ID: pid}}
	g, err := a.grantsFor(c, "Patient", smart.PermRead)
	if err != nil {
		a.fail(c, *ev, http.StatusForbidden, "forbidden", err.Error()+".")
		return nil, false
	}
	ctx := c.r.Context()
	now := a.o.Now()
	pat, err := a.o.Store.Get(ctx, conn, "Patient", pid)
	if err == nil {
		if s, _ := decode(&pat); !g.allows(s, now) {
			err = store.ErrNotFound // outside what the token may see: not disclosed
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		a.fail(c, *ev, http.StatusNotFound, "not-found", notFound)
		return nil, false
	}
	if err != nil {
		a.fail(c, *ev, http.StatusInternalServerError, "exception", "The patient could not be read.")
		return nil, false
	}
	withheld := map[string]bool{}
	byType := map[string]grants{}
	for _, typ := range summaryTypes {
		tg, err := a.grantsFor(c, typ, smart.PermRead)
		if err != nil {
			withheld[typ] = true
			continue
		}
		byType[typ] = tg
	}
	members := []summary.Member{{Connection: conn, PatientID: pid}}
	person := ""
	if c.r.URL.Query().Get("merged") == "person" {
		if a.o.Docs == nil {
			a.fail(c, *ev, http.StatusBadRequest, "not-supported", "merged=person needs the identity service, which this server does not have.")
			return nil, false
		}
		persons, err := (&identity.Service{Docs: a.o.Docs}).Persons(ctx)
		if err != nil {
			a.fail(c, *ev, http.StatusInternalServerError, "exception", "The persons could not be read.")
			return nil, false
		}
		for _, p := range persons {
			if !slices.Contains(p.Members, identity.Key{Source: conn, ID: pid}) {
				continue
			}
			person = p.ID
			for _, k := range p.Members {
				if k.Source == conn && k.ID == pid {
					continue
				}
				if _, served := a.o.Connections[k.Source]; !served {
					continue
				}
				// Each other record of the person only when the token may
				// read that Patient (patient/ scopes: never).
				other, err := a.o.Store.Get(ctx, k.Source, "Patient", k.ID)
				if err != nil {
					continue
				}
				if s, _ := decode(&other); !g.allows(s, now) {
					continue
				}
				members = append(members, summary.Member{Connection: k.Source, PatientID: k.ID})
				ev.Resources = append(ev.Resources, audit.ResourceRef{Connection: k.Source, Type: "Patient", ID: k.ID})
			}
		}
	}
	s, err := summary.Build(ctx, a.o.Store, members, summary.Options{
		Now: a.o.Now, Withheld: withheld, Person: person,
		Keep: func(rec *store.Record) bool {
			tg, ok := byType[rec.Type]
			s, _ := decode(rec)
			return ok && tg.allows(s, now)
		},
	})
	if err != nil {
		a.o.Logger.ErrorContext(ctx, "API summary failed", "connection", conn, "error", err)
		a.fail(c, *ev, http.StatusInternalServerError, "exception", "The summary could not be built.")
		return nil, false
	}
	return s, true
}
