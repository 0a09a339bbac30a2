package fhirapi

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"ehrgate/audit"
	"ehrgate/fhir"
	"ehrgate/smart"
	"ehrgate/store"
)

// Bulk Data export (FHIR Bulk Data Access 2.0) over everything the API
// serves: system ($export), all patients (Patient/$export) and a
// connection's patients (Group/PREFIX/$export: each connection is a
// Group of its patients).
//
// An export is a record in the store (store.Documents, kind DocExport),
// so any replica answers its status and serves its files. Nothing is
// written out: each output file (one per type) streams from the store
// when it is downloaded, page by page, without holding it in memory, so
// the manifest is ready at once. transactionTime is the kick-off: a
// resource stored after it may appear in the files (the specification's
// SHOULD NOT), and appears again in the next export _since that time.
// _since selects what ehrgate stored after the instant (a source's
// lastUpdated says when the source changed it, not when ehrgate has it).
// The whole export is one access in the audit trail, recorded at
// kick-off; downloads need the same client and a token still holding the
// scopes, which are applied again to every resource as it streams.

// DocExport is the store.Documents kind of export records.
const DocExport = "api-export"

// exportTTL is how long an export's files stay downloadable.
const exportTTL = 24 * time.Hour

// exportJob is an export's record.
type exportJob struct {
	ID           string              `json:"id"`
	Owner        string              `json:"owner"` // client_id and sub of the token that kicked it off
	Level        string              `json:"level"` // system, patient, group
	Group        string              `json:"group,omitempty"`
	Patients     []string            `json:"patients,omitempty"`     // served ids (the patient parameter)
	PatientsOnly bool                `json:"patientsOnly,omitempty"` // the patient parameter was given: Patients only, maybe none
	Types        []string            `json:"types"`
	Since        time.Time           `json:"since,omitzero"`
	TypeFilters  map[string][]string `json:"typeFilters,omitempty"`
	Elements     []string            `json:"elements,omitempty"`
	// Warnings are what Prefer: handling=lenient let through (ignored),
	// served as the manifest's error file, one OperationOutcome each.
	Warnings        []string  `json:"warnings,omitempty"`
	Clean           bool      `json:"clean,omitempty"`
	Request         string    `json:"request"`
	TransactionTime time.Time `json:"transactionTime"`
	Expires         time.Time `json:"expires"`
}

func (c *call) owner() string { return c.who.ClientID + "\x1f" + c.who.Subject }

// exportKickoff starts an export (GET with a query, or POST with a
// Parameters body).
func (a *API) exportKickoff(w http.ResponseWriter, r *http.Request) {
	c, ok := a.begin(w, r)
	if !ok {
		return
	}
	level, group := "system", ""
	switch {
	case strings.HasPrefix(r.URL.Path, "/fhir/Patient/"):
		level = "patient"
	case strings.HasPrefix(r.URL.Path, "/fhir/Group/"):
		level, group = "group", r.PathValue("id")
	}
	ev := audit.Export(c.agent, audit.PatientRef{})
	ev.Query = r.URL.RawQuery
	refuse := func(status int, code, msg string) { a.fail(c, ev, status, code, msg) }
	if a.o.Docs == nil {
		refuse(http.StatusNotFound, "not-supported", "This server does not serve Bulk Data exports.")
		return
	}
	if !strings.Contains(r.Header.Get("Prefer"), "respond-async") {
		refuse(http.StatusBadRequest, "invalid", "A Bulk Data kick-off needs the header Prefer: respond-async.")
		return
	}
	if acc := r.Header.Get("Accept"); acc != "" && !strings.Contains(acc, "application/fhir+json") && !strings.Contains(acc, "*/*") {
		refuse(http.StatusBadRequest, "invalid", "A Bulk Data kick-off needs Accept: application/fhir+json.")
		return
	} else if acc == "" {
		refuse(http.StatusBadRequest, "invalid", "A Bulk Data kick-off needs Accept: application/fhir+json.")
		return
	}
	params, err := exportParams(r)
	if err != nil {
		refuse(http.StatusBadRequest, "invalid", err.Error())
		return
	}
	lenient := strings.Contains(r.Header.Get("Prefer"), "handling=lenient")
	now := a.o.Now()
	job := exportJob{Owner: c.owner(), Level: level, Clean: c.clean, Request: a.base(r) + strings.TrimPrefix(r.URL.Path, "/fhir") + "?" + r.URL.RawQuery,
		TransactionTime: now.UTC(), Expires: now.Add(exportTTL).UTC()}
	if group != "" {
		conn, ok := a.ns.byPrefix[group]
		if !ok {
			refuse(http.StatusNotFound, "not-found", fmt.Sprintf("Group/%s is not known: each connection is a Group, by its id prefix.", group))
			return
		}
		job.Group = conn
	}
	types := ServedTypes
	if level != "system" {
		types = ServedTypes // Patient and its compartment types: everything served
	}
	for k, vs := range params {
		v := strings.Join(vs, ",")
		switch k {
		case "_outputFormat":
			switch v {
			case "application/fhir+ndjson", "application/ndjson", "ndjson":
			default:
				refuse(http.StatusBadRequest, "invalid", fmt.Sprintf("_outputFormat %q is not supported (application/fhir+ndjson)", v))
				return
			}
		case "_type":
			var want []string
			for _, t := range strings.Split(v, ",") {
				t = strings.TrimSpace(t)
				if !isServed(t) {
					if lenient {
						job.Warnings = append(job.Warnings, fmt.Sprintf("_type: %s is not a type this server exports; ignored (handling=lenient)", t))
						continue
					}
					refuse(http.StatusBadRequest, "invalid", fmt.Sprintf("_type: %s is not a type this server exports", t))
					return
				}
				if !slices.Contains(want, t) {
					want = append(want, t)
				}
			}
			types = want
		case "_since":
			sp, err := parseSpan(v)
			if err != nil {
				refuse(http.StatusBadRequest, "invalid", "_since must be an instant")
				return
			}
			if sp.lo.After(now) {
				refuse(http.StatusBadRequest, "invalid", "_since is in the future")
				return
			}
			job.Since = sp.lo
		case "_typeFilter":
			job.TypeFilters = map[string][]string{}
			for _, f := range vs {
				typ, q, ok := strings.Cut(f, "?")
				msg := ""
				if !ok || !isServed(typ) {
					msg = fmt.Sprintf("_typeFilter %q is not TYPE?QUERY for an exported type", f)
				} else if _, err := a.restriction(typ, q); err != nil {
					msg = fmt.Sprintf("_typeFilter %q: %v", f, err)
				}
				if msg != "" && lenient {
					// Ignored whole: the type is exported without this
					// query, a superset of what was asked, never less.
					job.Warnings = append(job.Warnings, msg+"; ignored (handling=lenient), so more resources may be exported than asked")
					continue
				}
				if msg != "" {
					refuse(http.StatusBadRequest, "invalid", msg)
					return
				}
				job.TypeFilters[typ] = append(job.TypeFilters[typ], q)
			}
		case "_elements":
			job.Elements = strings.Split(v, ",")
		case "patient":
			if level == "system" {
				refuse(http.StatusBadRequest, "invalid", "patient applies to Patient and Group exports")
				return
			}
			// Only the listed patients are exported; ids this server
			// does not serve match nothing (noted in the error file).
			job.PatientsOnly = true
			for _, p := range vs {
				id := p[strings.LastIndex(p, "/")+1:]
				if _, _, ok := a.ns.Parse(id); !ok {
					job.Warnings = append(job.Warnings, fmt.Sprintf("patient %q is not a Patient this server serves; nothing exported for it", p))
					continue
				}
				job.Patients = append(job.Patients, id)
			}
		case "includeAssociatedData":
			// The IG's two values ask for the Provenance of the exported
			// resources. HL7 v2 feeds do store a Provenance per message,
			// but finding the latest (or every) Provenance of each exported
			// resource needs a lookup by target that the store does not
			// have, so the export includes none. The values are accepted
			// (the IG's test kit requires it) and the manifest's error file
			// says, as a warning, that nothing was added.
			// https://hl7.org/fhir/uv/bulkdata/STU2/export.html#query-parameters
			for _, v := range vs {
				for _, x := range strings.Split(v, ",") {
					switch x = strings.TrimSpace(x); {
					case x == "LatestProvenanceResources", x == "RelevantProvenanceResources":
						job.Warnings = append(job.Warnings, fmt.Sprintf("includeAssociatedData: %s is not supported yet: no Provenance was added for the exported resources (_type=Provenance exports every Provenance)", x))
					case lenient:
						job.Warnings = append(job.Warnings, fmt.Sprintf("includeAssociatedData: %s is not supported; ignored (handling=lenient)", x))
					default:
						refuse(http.StatusBadRequest, "not-supported", fmt.Sprintf("includeAssociatedData: %s is not supported (LatestProvenanceResources, RelevantProvenanceResources)", x))
						return
					}
				}
			}
		default:
			if !lenient {
				refuse(http.StatusBadRequest, "invalid", fmt.Sprintf("%s is not a Bulk Data export parameter", k))
				return
			}
			job.Warnings = append(job.Warnings, fmt.Sprintf("%s is not a Bulk Data export parameter; ignored (handling=lenient)", k))
		}
	}
	// What the token may export: each type needs read (search) access.
	for _, t := range types {
		if _, err := a.grantsFor(c, t, smart.PermRead|smart.PermSearch); err == nil {
			job.Types = append(job.Types, t)
		}
	}
	if len(job.Types) == 0 {
		refuse(http.StatusForbidden, "forbidden", "The token's scopes allow exporting none of the requested types.")
		return
	}
	if c.who.Patient != "" && allPatientScopes(c, job.Types) {
		if level == "system" {
			refuse(http.StatusForbidden, "forbidden", "A patient-scoped token exports its patient only: use Patient/$export.")
			return
		}
	}
	var id [16]byte
	rand.Read(id[:])
	job.ID = hex.EncodeToString(id[:])
	body, _ := json.Marshal(job)
	if err := a.o.Docs.UpdateDocument(r.Context(), DocExport, job.ID, func([]byte) ([]byte, error) { return body, nil }); err != nil {
		a.o.Logger.ErrorContext(r.Context(), "could not record an export", "error", err)
		refuse(http.StatusInternalServerError, "exception", "The export could not be started.")
		return
	}
	ev.Outcome = audit.OutcomeSuccess
	ev.RequestID = a.o.RequestID(r.Context())
	if len(job.Patients) == 1 {
		conn, pid, _ := a.ns.Parse(job.Patients[0])
		ev.Patient = audit.PatientRef{Connection: conn, ID: pid}
	} else if p := c.who.Patient; p != "" {
		if conn, pid, ok := a.ns.Parse(p); ok && allPatientScopes(c, job.Types) {
			ev.Patient = audit.PatientRef{Connection: conn, ID: pid}
		}
	}
	if err := a.o.Audit.Record(r.Context(), ev); err != nil {
		a.o.Docs.DeleteDocument(context.WithoutCancel(r.Context()), DocExport, job.ID)
		fhir.WriteOutcome(w, http.StatusServiceUnavailable, "error", "transient", "The export could not be recorded in the audit trail, so it was refused; try again.")
		return
	}
	w.Header().Set("Content-Location", a.base(r)+"/$export-status/"+job.ID)
	fhir.WriteOutcome(w, http.StatusAccepted, "information", "informational", "Export accepted; poll the Content-Location URL.")
}

// writeOutcomeAs answers with an OperationOutcome as application/json when
// the client asked for that and not application/fhir+json (a status
// client may; FHIR allows both), else as application/fhir+json.
func writeOutcomeAs(w http.ResponseWriter, r *http.Request, status int, severity, code, diagnostics string) {
	if a := r.Header.Get("Accept"); !strings.Contains(a, "application/json") || strings.Contains(a, "fhir+json") {
		fhir.WriteOutcome(w, status, severity, code, diagnostics)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(fhir.NewOutcome(severity, code, diagnostics))
}

// allPatientScopes reports whether every type's grants are patient/ ones.
func allPatientScopes(c *call, types []string) bool {
	for _, s := range c.who.Scopes {
		if s.IsResource() && s.Context != smart.ContextPatient && (s.Type == "*" || slices.Contains(types, s.Type)) {
			return false
		}
	}
	return true
}

// exportParams reads the kick-off parameters: the query string, or a
// Parameters resource in a POST body.
func exportParams(r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost {
		return r.URL.Query(), nil
	}
	var p struct {
		ResourceType string `json:"resourceType"`
		Parameter    []struct {
			Name           string                      `json:"name"`
			ValueString    *string                     `json:"valueString"`
			ValueInstant   *string                     `json:"valueInstant"`
			ValueDateTime  *string                     `json:"valueDateTime"`
			ValueReference *struct{ Reference string } `json:"valueReference"`
		} `json:"parameter"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&p); err != nil || p.ResourceType != "Parameters" {
		return nil, errors.New("a POST kick-off takes a Parameters resource")
	}
	vals := url.Values{}
	for k, v := range r.URL.Query() {
		vals[k] = v
	}
	for _, x := range p.Parameter {
		switch {
		case x.ValueString != nil:
			vals.Add(x.Name, *x.ValueString)
		case x.ValueInstant != nil:
			vals.Add(x.Name, *x.ValueInstant)
		case x.ValueDateTime != nil:
			vals.Add(x.Name, *x.ValueDateTime)
		case x.ValueReference != nil:
			vals.Add(x.Name, x.ValueReference.Reference)
		default:
			return nil, fmt.Errorf("parameter %s has no value this server reads", x.Name)
		}
	}
	return vals, nil
}

// loadExport reads an export the caller owns; it answers and returns
// false otherwise.
func (a *API) loadExport(c *call, id string) (exportJob, bool) {
	var job exportJob
	if a.o.Docs == nil {
		fhir.WriteOutcome(c.w, http.StatusNotFound, "error", "not-supported", "This server does not serve Bulk Data exports.")
		return job, false
	}
	doc, err := a.o.Docs.GetDocument(c.r.Context(), DocExport, id)
	if err == nil {
		err = json.Unmarshal(doc.Body, &job)
	}
	if err != nil || job.Owner != c.owner() || a.o.Now().After(job.Expires) {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			a.o.Logger.ErrorContext(c.r.Context(), "reading an export", "error", err)
		}
		writeOutcomeAs(c.w, c.r, http.StatusNotFound, "error", "not-found", "No such export (or it expired, or another client started it).")
		return job, false
	}
	return job, true
}

// exportStatus serves the status URL: the manifest, or the cancellation.
func (a *API) exportStatus(w http.ResponseWriter, r *http.Request) {
	c, ok := a.begin(w, r)
	if !ok {
		return
	}
	job, ok := a.loadExport(c, r.PathValue("job"))
	if !ok {
		return
	}
	if r.Method == http.MethodDelete {
		if _, err := a.o.Docs.DeleteDocument(r.Context(), DocExport, job.ID); err != nil {
			fhir.WriteOutcome(w, http.StatusInternalServerError, "error", "exception", "The export could not be cancelled.")
			return
		}
		fhir.WriteOutcome(w, http.StatusAccepted, "information", "informational", "Export cancelled.")
		return
	}
	type out struct {
		Type string `json:"type"`
		URL  string `json:"url"`
	}
	m := struct {
		TransactionTime     string `json:"transactionTime"`
		Request             string `json:"request"`
		RequiresAccessToken bool   `json:"requiresAccessToken"`
		Output              []out  `json:"output"`
		Error               []out  `json:"error"`
	}{TransactionTime: job.TransactionTime.Format(time.RFC3339Nano), Request: job.Request, RequiresAccessToken: true, Error: []out{}}
	for _, t := range job.Types {
		m.Output = append(m.Output, out{t, a.base(r) + "/$export-file/" + job.ID + "/" + t + ".ndjson"})
	}
	if len(job.Warnings) > 0 {
		m.Error = append(m.Error, out{"OperationOutcome", a.base(r) + "/$export-file/" + job.ID + "/" + warningsFile})
	}
	w.Header().Set("Expires", job.Expires.Format(http.TimeFormat))
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(m)
}

// warningsFile is the name of an export's error file (not a type name:
// types are capitalized).
const warningsFile = "warnings.ndjson"

// exportFile streams one type of an export as NDJSON from the store.
func (a *API) exportFile(w http.ResponseWriter, r *http.Request) {
	c, ok := a.begin(w, r)
	if !ok {
		return
	}
	job, ok := a.loadExport(c, r.PathValue("job"))
	if !ok {
		return
	}
	if r.PathValue("file") == warningsFile && len(job.Warnings) > 0 {
		w.Header().Set("Content-Type", "application/fhir+ndjson")
		for _, msg := range job.Warnings {
			line, _ := json.Marshal(fhir.NewOutcome("warning", "not-supported", msg))
			w.Write(append(line, '\n'))
		}
		return
	}
	typ := strings.TrimSuffix(r.PathValue("file"), ".ndjson")
	if !slices.Contains(job.Types, typ) {
		fhir.WriteOutcome(w, http.StatusNotFound, "error", "not-found", "This export has no such file.")
		return
	}
	g, err := a.grantsFor(c, typ, smart.PermRead|smart.PermSearch)
	if err != nil {
		fhir.WriteOutcome(w, http.StatusForbidden, "error", "forbidden", err.Error()+".")
		return
	}
	var filters []filter
	for _, q := range job.TypeFilters[typ] {
		fs, err := a.restriction(typ, q)
		if err != nil {
			fhir.WriteOutcome(w, http.StatusInternalServerError, "error", "exception", "The export's filter no longer parses.")
			return
		}
		filters = append(filters, fs...)
	}
	w.Header().Set("Content-Type", "application/fhir+ndjson")
	bw := bufio.NewWriterSize(w, 256<<10)
	now := a.o.Now()
	emit := func(rec store.Record) error {
		if !job.Since.IsZero() && !rec.FetchedAt.After(job.Since) {
			return nil
		}
		if _, ok := a.o.Connections[rec.Connection]; !ok {
			return nil
		}
		s, err := decode(&rec)
		if err != nil || !g.allows(s, now) {
			return nil
		}
		for _, f := range filters {
			if !f.matches(s, now) {
				return nil
			}
		}
		body, err := a.render(&rec, elementsFor(job.Elements, typ), job.Clean)
		if err != nil {
			// A stored resource that cannot be served: end the file
			// unfinished rather than hand over a file that looks whole
			// without it.
			a.o.Logger.ErrorContext(r.Context(), "export: a stored resource could not be served; the file is cut off", "type", typ, "error", err)
			panic(http.ErrAbortHandler)
		}
		bw.Write(body)
		return bw.WriteByte('\n')
	}
	ctx := r.Context()
	var patients []ref
	for _, p := range job.Patients {
		conn, id, _ := a.ns.Parse(p)
		patients = append(patients, ref{conn, "Patient", id})
	}
	if g.patientOnly() {
		patients = []ref{g.patient}
	}
	if len(patients) > 0 || job.PatientsOnly {
		for _, p := range patients {
			if job.Group != "" && p.connection != job.Group {
				continue
			}
			var recs []store.Record
			if typ == "Patient" {
				rec, err := a.o.Store.Get(ctx, p.connection, "Patient", p.id)
				switch {
				case err == nil:
					recs = []store.Record{rec}
				case !errors.Is(err, store.ErrNotFound):
					a.o.Logger.ErrorContext(ctx, "export: reading a patient", "error", err)
					panic(http.ErrAbortHandler)
				}
			} else {
				recs, err = a.listByPatient(ctx, p.connection, p.id, typ, job.Clean)
				if err != nil {
					a.o.Logger.ErrorContext(ctx, "export: listing a patient's resources", "error", err)
					panic(http.ErrAbortHandler) // abort: the client must not take a partial file for a whole one
				}
			}
			for _, rec := range recs {
				if emit(rec) != nil {
					return
				}
			}
		}
		bw.Flush()
		return
	}
	after := store.Key{}
	for {
		recs, err := a.o.Store.ScanCurrentPage(ctx, store.ScanQuery{Connection: job.Group, Type: typ, After: after, Limit: 1000, RawOnly: !job.Clean})
		if err != nil {
			a.o.Logger.ErrorContext(ctx, "export: scanning", "type", typ, "error", err)
			panic(http.ErrAbortHandler) // abort: the client must not take a partial file for a whole one
		}
		if len(recs) == 0 {
			break
		}
		for _, rec := range recs {
			after = rec.Key
			if typ != "Patient" && rec.PatientID == "" && job.Level != "system" {
				continue // Patient and Group exports hold the patients' compartments
			}
			if emit(rec) != nil {
				return
			}
		}
	}
	bw.Flush()
}

// elementsFor picks the _elements that apply to typ ("Type.element" or
// "element").
func elementsFor(elements []string, typ string) []string {
	var out []string
	for _, e := range elements {
		if t, el, ok := strings.Cut(e, "."); ok {
			if t == typ {
				out = append(out, el)
			}
			continue
		}
		out = append(out, e)
	}
	return out
}
