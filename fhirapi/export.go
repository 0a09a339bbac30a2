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
//
// includeAssociatedData (LatestProvenanceResources or
// RelevantProvenanceResources) adds to the Provenance file the Provenance
// whose target is an exported resource (the latest one of each, or all),
// found through the store's index by target (store.ProvenanceFinder), each
// once, and only for a token that may read Provenance (otherwise the
// manifest's error file says none was added).

// DocExport is the store.Documents kind of export records.
const DocExport = "api-export"

// The includeAssociatedData values served.
const (
	latestProvenance   = "LatestProvenanceResources"
	relevantProvenance = "RelevantProvenanceResources"
)

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
	// Associated is the includeAssociatedData value served (the
	// Provenance file then holds the exported resources' Provenance).
	Associated string `json:"associated,omitempty"`
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
			// The IG's two values add the Provenance of the exported
			// resources (Provenance.target) to the Provenance file:
			// https://hl7.org/fhir/uv/bulkdata/STU2/export.html#query-parameters
			for _, v := range vs {
				for _, x := range strings.Split(v, ",") {
					switch x = strings.TrimSpace(x); {
					case x == latestProvenance:
						if job.Associated == "" {
							job.Associated = x
						}
					case x == relevantProvenance:
						job.Associated = x // every Provenance: a superset of the latest
					case lenient:
						job.Warnings = append(job.Warnings, fmt.Sprintf("includeAssociatedData: %s is not supported; ignored (handling=lenient)", x))
					default:
						refuse(http.StatusBadRequest, "not-supported", fmt.Sprintf("includeAssociatedData: %s is not supported (%s, %s)", x, latestProvenance, relevantProvenance))
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
	if job.Associated != "" {
		// What the token may not read, it does not get: the manifest's
		// error file says so.
		if _, ok := a.o.Store.(store.ProvenanceFinder); !ok {
			job.Warnings = append(job.Warnings, fmt.Sprintf("includeAssociatedData: %s is not supported by this store: no Provenance was added for the exported resources", job.Associated))
			job.Associated = ""
		} else if _, err := a.grantsFor(c, "Provenance", smart.PermRead|smart.PermSearch); err != nil {
			job.Warnings = append(job.Warnings, fmt.Sprintf("includeAssociatedData: %s: the token's scopes do not allow reading Provenance, so no Provenance was added for the exported resources", job.Associated))
			job.Associated = ""
		}
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
	if job.Associated != "" && !slices.Contains(job.Types, "Provenance") {
		m.Output = append(m.Output, out{"Provenance", a.base(r) + "/$export-file/" + job.ID + "/Provenance.ndjson"})
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

// exportFile streams one file of an export as NDJSON from the store: a
// type's resources, and in the Provenance file (with
// includeAssociatedData) the Provenance of every exported resource.
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
	own := slices.Contains(job.Types, typ)
	associated := typ == "Provenance" && job.Associated != ""
	if !own && !associated {
		fhir.WriteOutcome(w, http.StatusNotFound, "error", "not-found", "This export has no such file.")
		return
	}
	g, err := a.grantsFor(c, typ, smart.PermRead|smart.PermSearch)
	if err != nil {
		fhir.WriteOutcome(w, http.StatusForbidden, "error", "forbidden", err.Error()+".")
		return
	}
	filters, err := a.exportFilters(job, typ)
	if err != nil {
		fhir.WriteOutcome(w, http.StatusInternalServerError, "error", "exception", "The export's filter no longer parses.")
		return
	}
	w.Header().Set("Content-Type", "application/fhir+ndjson")
	bw := bufio.NewWriterSize(w, 256<<10)
	ctx := r.Context()
	elements := elementsFor(job.Elements, typ)
	write := func(rec *store.Record) error {
		// Rendered straight into the writer's free buffer: no copy
		// unless the resource does not fit.
		body, err := a.appendRendered(bw.AvailableBuffer(), rec, elements, job.Clean)
		if err != nil {
			// A stored resource that cannot be served: end the file
			// unfinished rather than hand over a file that looks whole
			// without it.
			a.o.Logger.ErrorContext(ctx, "export: a stored resource could not be served; the file is cut off", "type", rec.Type, "error", err)
			panic(http.ErrAbortHandler)
		}
		_, err = bw.Write(append(body, '\n'))
		return err
	}
	// The Provenance already written, when associated ones follow (a
	// Provenance of several exported resources is written once).
	var seen map[ref]bool
	if associated && !ownCoversAll(job) {
		seen = map[ref]bool{}
	}
	if own {
		err = a.eachExported(ctx, job, typ, g, filters, func(rec *store.Record) error {
			if seen != nil {
				seen[ref{rec.Connection, rec.Type, rec.ID}] = true
			}
			return write(rec)
		})
	}
	if err == nil && seen != nil {
		err = a.associatedProvenance(ctx, c, job, g, seen, write)
	}
	var se storeError
	if errors.As(err, &se) {
		a.o.Logger.ErrorContext(ctx, "export: reading the store", "type", typ, "error", err)
		panic(http.ErrAbortHandler) // abort: the client must not take a partial file for a whole one
	}
	if err == nil {
		bw.Flush()
	}
}

// storeError is a failed read of the store while streaming a file (the
// file is then cut off), as opposed to a failed write to the client.
type storeError struct{ err error }

func (e storeError) Error() string { return e.err.Error() }
func (e storeError) Unwrap() error { return e.err }

// ownCoversAll reports whether an export's own Provenance file holds every
// Provenance the token may read (a system export of the type, unfiltered),
// so that associated ones add nothing.
func ownCoversAll(job exportJob) bool {
	return slices.Contains(job.Types, "Provenance") && job.Level == "system" && job.Since.IsZero() &&
		len(job.TypeFilters["Provenance"]) == 0 && len(job.Patients) == 0 && !job.PatientsOnly
}

// exportFilters parses the _typeFilter queries of typ.
func (a *API) exportFilters(job exportJob, typ string) ([]filter, error) {
	var filters []filter
	for _, q := range job.TypeFilters[typ] {
		fs, err := a.restriction(typ, q)
		if err != nil {
			return nil, err
		}
		filters = append(filters, fs...)
	}
	return filters, nil
}

// eachExported calls fn with each resource of typ the export holds for the
// caller (g are its grants on typ): the patients' (Patient and Group
// exports with patients, patient tokens) or a scan of the type, then
// _since, the served connections, the grants and the type's filters.
// A failed read of the store is a storeError; fn's errors end the walk
// and are returned as they are.
func (a *API) eachExported(ctx context.Context, job exportJob, typ string, g grants, filters []filter, fn func(*store.Record) error) error {
	now := a.o.Now()
	// What holds for the whole file is decided once: a grant without a
	// compartment or restriction allows every resource, so then (and
	// without _typeFilter) no resource is read for its elements.
	checkEach := len(filters) > 0 || !g.unrestricted()
	lastConn, served := "", false
	emit := func(rec *store.Record) error {
		if !job.Since.IsZero() && !rec.FetchedAt.After(job.Since) {
			return nil
		}
		if rec.Connection != lastConn {
			_, served = a.o.Connections[rec.Connection]
			lastConn = rec.Connection
		}
		if !served {
			return nil
		}
		if checkEach {
			s, err := decode(rec)
			if err != nil || !g.allows(s, now) {
				return nil
			}
			for _, f := range filters {
				if !f.matches(s, now) {
					return nil
				}
			}
		}
		return fn(rec)
	}
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
					return storeError{fmt.Errorf("reading a patient: %w", err)}
				}
			} else {
				var err error
				if recs, err = a.listByPatient(ctx, p.connection, p.id, typ, job.Clean); err != nil {
					return storeError{fmt.Errorf("listing a patient's resources: %w", err)}
				}
			}
			for i := range recs {
				if err := emit(&recs[i]); err != nil {
					return err
				}
			}
		}
		return nil
	}
	// Page by page in one goroutine: reading the next page while this one
	// is written was measured slower on a shared machine (the two
	// goroutines waited for each other), and held more memory.
	after := store.Key{}
	for {
		recs, err := a.o.Store.ScanCurrentPage(ctx, store.ScanQuery{Connection: job.Group, Type: typ, After: after, Limit: 1000, RawOnly: !job.Clean})
		if err != nil {
			return storeError{fmt.Errorf("scanning: %w", err)}
		}
		if len(recs) == 0 {
			return nil
		}
		for i := range recs {
			after = recs[i].Key
			if typ != "Patient" && recs[i].PatientID == "" && job.Level != "system" {
				continue // Patient and Group exports hold the patients' compartments
			}
			if err := emit(&recs[i]); err != nil {
				return err
			}
		}
	}
}

// associatedBatch is how many exported resources one lookup of their
// Provenance names.
const associatedBatch = 1000

// associatedProvenance writes the Provenance of every resource the export
// holds for the caller (includeAssociatedData), each once (seen holds
// those written, and grows): for each exported type, the resources are
// walked as their file streams them and their Provenance looked up by
// target, page by page. g are the caller's grants on Provenance, applied
// to each; _since and _typeFilter select the exported resources, not
// their Provenance. With LatestProvenanceResources a resource's latest
// Provenance is chosen among all it has, so a latest one the caller may
// not read leaves that resource without any (never an older one).
func (a *API) associatedProvenance(ctx context.Context, c *call, job exportJob, g grants, seen map[ref]bool, write func(*store.Record) error) error {
	finder, ok := a.o.Store.(store.ProvenanceFinder)
	if !ok {
		return nil // kick-off warned and dropped includeAssociatedData
	}
	now := a.o.Now()
	for _, typ := range job.Types {
		if typ == "Provenance" {
			continue
		}
		tg, err := a.grantsFor(c, typ, smart.PermRead|smart.PermSearch)
		if err != nil {
			continue // not exported to this token
		}
		filters, err := a.exportFilters(job, typ)
		if err != nil {
			continue // its own file refuses to stream
		}
		var conn string
		var ids []string
		flush := func() error {
			if len(ids) == 0 {
				return nil
			}
			provs, err := finder.ProvenanceFor(ctx, store.ProvenanceQuery{Connection: conn, Type: typ, IDs: ids,
				Latest: job.Associated == latestProvenance, RawOnly: !job.Clean})
			ids = ids[:0]
			if err != nil {
				return storeError{err}
			}
			for i := range provs {
				p := &provs[i]
				k := ref{p.Connection, p.Type, p.ID}
				if seen[k] {
					continue
				}
				s, err := decode(p)
				if err != nil || !g.allows(s, now) {
					continue
				}
				seen[k] = true
				if err := write(p); err != nil {
					return err
				}
			}
			return nil
		}
		err = a.eachExported(ctx, job, typ, tg, filters, func(rec *store.Record) error {
			if rec.Connection != conn || len(ids) >= associatedBatch {
				if err := flush(); err != nil {
					return err
				}
				conn = rec.Connection
			}
			ids = append(ids, rec.ID)
			return nil
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			return err
		}
	}
	return nil
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
