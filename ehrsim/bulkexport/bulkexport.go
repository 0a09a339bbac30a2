// Package bulkexport is the simulated EHR's FHIR Bulk Data Access server:
// system, Patient and Group $export over a population generated on the fly
// (10,000+ patients in constant memory), with the fault knobs real servers
// show: slow status, 429 on polls, a transient 5xx on a file, a truncated
// transfer, an access token expiring between kick-off and download, and a
// cap on concurrent downloads.
//
// Lifecycle of a job: kick-off (202, Content-Location = status URL) starts a
// planning pass that generates every patient once to count what each output
// file will hold; status polls answer 202 with X-Progress and Retry-After
// until planning is done and Options.Polls polls have been answered, then
// 200 with the manifest; each file regenerates its patients and streams
// NDJSON; DELETE on the status URL cancels or deletes the job (its files are
// gone: 404). Nothing is kept but the per-file plan.
//
// Kick-off (GET with a query, or POST with a FHIR Parameters body; Accept:
// application/fhir+json and Prefer: respond-async required) parameters:
// _type (FHIR R4 resource types), _since (not in the future), _outputFormat,
// _typeFilter (a subset of search parameters, see typefilter.go), _elements
// (top-level elements; resources served SUBSETTED, see elements.go),
// includeAssociatedData (the IG's two Provenance values; the population has
// no Provenance, so nothing is added) and, in POST Patient and Group
// kick-offs, patient. Anything invalid or unsupported is refused with 400
// unless the client sent Prefer: handling=lenient: then it is ignored and
// reported as a warning OperationOutcome in the manifest's error list.
//
// Mount it beside the FHIR server with Register (patterns under
// Options.Prefix, default "/fhir"):
//
//	mux := http.NewServeMux()
//	mux.Handle("/", sim.Handler())
//	bulk.Register(mux)
package bulkexport

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ehrgate/fhir"
	"ehrgate/fhir/bulk"
	"ehrgate/synth"
)

// Source is the population served. *synth.Generator satisfies it.
// Resources must be deterministic: a file is generated again on every
// download.
type Source interface {
	Patients() int
	Resources(i int) []synth.Resource
}

// Faults are misbehaviours to inject. The zero value injects none.
type Faults struct {
	SlowStatus     time.Duration // every status poll waits this long before answering
	StatusThrottle int           // the first N status polls of each job answer 429 with Retry-After
	// FileError is the 1-based index (in the manifest's output) of a file
	// whose first download answers 503.
	FileError int
	// TruncateFile is the 1-based index of a file whose first download is
	// cut off in the middle of a line (the connection is dropped).
	TruncateFile int
	// ExpireToken makes the first file download of each job answer 401, as
	// when the access token expired after kick-off; the client must get a
	// fresh one.
	ExpireToken bool
	// MaxConcurrentDownloads answers 429 to downloads beyond this many at
	// a time (0 = no cap).
	MaxConcurrentDownloads int
	// ThrottleRetryAfter is the Retry-After sent with 429s (default 1s;
	// negative = no header).
	ThrottleRetryAfter time.Duration
	// FailJobs makes the first N jobs kicked off fail: their status polls
	// answer 500 with an error OperationOutcome (code "exception"), as a
	// server whose export broke.
	FailJobs int
	// UngeneratedFile is the 1-based index (in the planned output) of a
	// file the server fails to generate in the first UngeneratedJobs jobs
	// (default 1): the manifest leaves it out of output and lists instead,
	// in error, a file holding one OperationOutcome (severity error, code
	// exception) whose diagnostics name the file and its type ("Failed to
	// export 2.Observation.ndjson"), as the SMART reference server's
	// some_file_generation_failed does.
	UngeneratedFile int
	UngeneratedJobs int
	// ExpireFile is the 1-based index of a file that answers 410 Gone in
	// the first ExpireJobs jobs (default 1), as when a server's output
	// expired before the client downloaded it; from then on that job's
	// status URL answers 410 too.
	ExpireFile int
	ExpireJobs int
}

// Options configure a Server.
type Options struct {
	Source   Source
	Prefix   string // path prefix of the FHIR base (default "/fhir")
	FileSize int    // resources per output file (default 5,000; small values emulate thousands of tiny files)
	// Groups maps Group ids to patient indices. Nil serves one group "all"
	// with every patient.
	Groups map[string][]int
	// Updated marks patients whose resources were changed: they are served
	// with meta.versionId "2" and meta.lastUpdated = UpdatedAt.
	Updated   func(i int) bool
	UpdatedAt time.Time
	// Deleted lists "Type/id" references reported in the deleted output of
	// exports that give _since.
	Deleted []string
	// Authorize, when set, checks kick-off, status and file requests (nil
	// error = allowed) and makes manifests say requiresAccessToken.
	Authorize func(r *http.Request) error
	// MayRead, when set, checks a file download's authorization against
	// the file's resource type (nil error = allowed; else 403), so that a
	// token granted fewer types than the export's cannot download the
	// others.
	MayRead func(r *http.Request, typ string) error
	Clock   func() time.Time // transactionTime; default time.Now
	// Polls is the number of status polls answered 202 before the
	// manifest (default 1; planning may add more).
	Polls      int
	RetryAfter time.Duration // Retry-After on 202 (default 1s; negative = no header)
	Gzip       bool          // gzip files for clients that accept it
	Faults     Faults
	Logger     *slog.Logger // identifiers and statuses only
}

// Stats counts what the server did.
type Stats struct {
	Kickoffs, Polls, Downloads, Throttled, Deletes, Faults int64
	MaxActiveDownloads                                     int64
}

// Server serves Bulk Data. Create it with New; it is safe for concurrent use.
type Server struct {
	opts Options
	log  *slog.Logger

	mu   sync.Mutex
	jobs map[string]*job
	seq  int

	kickoffs, polls, downloads, throttled, deletes, faults atomic.Int64
	active, maxActive                                      atomic.Int64
}

type file struct {
	typ          string
	firstPatient int // index into the job's patient list
	skip         int // resources of typ to skip in the first patient
	count        int
}

type job struct {
	id       string
	n        int // 1-based kick-off number
	since    time.Time
	types    map[string]bool
	filters  filters  // _typeFilter queries per type (nil = none)
	elements elements // _elements per type (nil = whole resources)
	warnings []string // lenient-mode issues, served as the manifest's error file
	patients []int    // nil = all
	// patientsOnly: patients was narrowed by the patient parameter (an
	// empty list then exports nothing).
	patientsOnly bool
	txTime       time.Time
	request      string
	cancel       context.CancelFunc

	mu        sync.Mutex
	planned   bool
	progress  int // patients planned
	files     []file
	polls     int
	throttled int
	attempts  map[int]int // downloads started per file
	expired   bool
	failed    bool // Faults.FailJobs: every status poll answers 500
	gone      bool // Faults.ExpireFile answered 410: so does the status URL
}

// New returns a server for opts.
func New(opts Options) *Server {
	if opts.Prefix == "" {
		opts.Prefix = "/fhir"
	}
	opts.Prefix = "/" + strings.Trim(opts.Prefix, "/")
	if opts.FileSize <= 0 {
		opts.FileSize = 5000
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Polls <= 0 {
		opts.Polls = 1
	}
	if opts.RetryAfter == 0 {
		opts.RetryAfter = time.Second
	}
	if opts.Faults.ThrottleRetryAfter == 0 {
		opts.Faults.ThrottleRetryAfter = time.Second
	}
	if opts.Faults.UngeneratedJobs <= 0 {
		opts.Faults.UngeneratedJobs = 1
	}
	if opts.Faults.ExpireJobs <= 0 {
		opts.Faults.ExpireJobs = 1
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{opts: opts, log: log, jobs: map[string]*job{}}
}

// Register adds the server's routes to mux under Options.Prefix:
// GET|POST {prefix}/$export, GET|POST {prefix}/Patient/$export,
// GET|POST {prefix}/Group/{id}/$export, GET|DELETE {prefix}/$bulk-status/{job}
// and GET {prefix}/$bulk-file/{job}/{file}. They are more specific than
// ehrsim's "/fhir/{type}/{id}" patterns, so both can share one mux.
func (s *Server) Register(mux *http.ServeMux) {
	p := s.opts.Prefix
	mux.HandleFunc("GET "+p+"/$export", s.kickoff)
	mux.HandleFunc("GET "+p+"/Patient/$export", s.kickoff)
	mux.HandleFunc("GET "+p+"/Group/{group}/$export", s.kickoff)
	mux.HandleFunc("POST "+p+"/$export", s.kickoff)
	mux.HandleFunc("POST "+p+"/Patient/$export", s.kickoff)
	mux.HandleFunc("POST "+p+"/Group/{group}/$export", s.kickoff)
	mux.HandleFunc("GET "+p+"/$bulk-status/{job}", s.status)
	mux.HandleFunc("DELETE "+p+"/$bulk-status/{job}", s.deleteJob)
	mux.HandleFunc("GET "+p+"/$bulk-file/{job}/{file}", s.file)
}

// Handler returns a handler serving only the Bulk Data routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.Register(mux)
	return mux
}

// Stats returns counters since New.
func (s *Server) Stats() Stats {
	return Stats{Kickoffs: s.kickoffs.Load(), Polls: s.polls.Load(), Downloads: s.downloads.Load(),
		Throttled: s.throttled.Load(), Deletes: s.deletes.Load(), Faults: s.faults.Load(),
		MaxActiveDownloads: s.maxActive.Load()}
}

var typeName = regexp.MustCompile(`^[A-Z][A-Za-z]{1,63}$`)

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	if s.opts.Authorize == nil {
		return true
	}
	if err := s.opts.Authorize(r); err != nil {
		writeOutcome(w, r, http.StatusUnauthorized, "error", "login", "authorization failed")
		return false
	}
	return true
}

func (s *Server) kickoff(w http.ResponseWriter, r *http.Request) {
	s.kickoffs.Add(1)
	if !s.authorize(w, r) {
		return
	}
	// The kick-off's Accept names the format of an OperationOutcome
	// answer; the IG allows only application/fhir+json. A request without
	// it, or asking for anything else (HTTP clients often default to
	// application/json), is refused.
	if !acceptsFHIRJSON(r.Header.Get("Accept")) {
		writeOutcome(w, r, http.StatusBadRequest, "error", "not-supported", "Accept: application/fhir+json is required")
		return
	}
	if !strings.Contains(r.Header.Get("Prefer"), "respond-async") {
		writeOutcome(w, r, http.StatusBadRequest, "error", "invalid", "Prefer: respond-async is required")
		return
	}
	lenient := strings.Contains(r.Header.Get("Prefer"), "handling=lenient")
	q, patients, err := kickoffParams(r)
	if err != nil {
		writeOutcome(w, r, http.StatusBadRequest, "error", "invalid", err.Error())
		return
	}
	j := &job{txTime: s.opts.Clock().UTC(), attempts: map[int]int{}, request: r.URL.String()}
	group := r.PathValue("group")
	if group != "" {
		members, ok := s.group(group)
		if !ok {
			writeOutcome(w, r, http.StatusNotFound, "error", "not-found", "unknown Group")
			return
		}
		j.patients = members
	}
	if len(patients) > 0 {
		if group == "" && !strings.HasSuffix(r.URL.Path, "/Patient/$export") {
			writeOutcome(w, r, http.StatusBadRequest, "error", "invalid", "the patient parameter applies to Patient and Group exports only")
			return
		}
		j.patients, j.warnings = s.selectPatients(j.patients, patients)
		j.patientsOnly = true
	}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		vs := q[k]
		v := vs[0]
		switch k {
		case "_outputFormat":
			switch v {
			case "application/fhir+ndjson", "application/ndjson", "ndjson":
			default:
				writeOutcome(w, r, http.StatusBadRequest, "error", "not-supported", "_outputFormat must be application/fhir+ndjson")
				return
			}
		case "_since":
			t, err := fhir.ParseDateTime(v)
			if err != nil {
				writeOutcome(w, r, http.StatusBadRequest, "error", "invalid", "_since is not a FHIR instant")
				return
			}
			if t.After(j.txTime) {
				if !lenient {
					writeOutcome(w, r, http.StatusBadRequest, "error", "invalid", "_since is in the future")
					return
				}
				j.warnings = append(j.warnings, "_since is in the future: nothing has changed since then")
			}
			j.since = t
		case "_typeFilter":
			f, warnings, err := parseFilters(vs, lenient)
			if err != nil {
				code := "invalid"
				if fe := (*filterError)(nil); errors.As(err, &fe) {
					code = fe.code
				}
				writeOutcome(w, r, http.StatusBadRequest, "error", code, err.Error())
				return
			}
			j.filters = f
			j.warnings = append(j.warnings, warnings...)
		case "_type":
			j.types = map[string]bool{}
			for _, t := range splitList(vs) {
				if !fhir.IsResourceType(t) {
					if !lenient {
						writeOutcome(w, r, http.StatusBadRequest, "error", "not-supported", "_type: "+t+" is not a FHIR R4 resource type")
						return
					}
					j.warnings = append(j.warnings, "_type: "+t+" is not a FHIR R4 resource type; ignored (handling=lenient)")
					continue
				}
				j.types[t] = true
			}
		case "_elements":
			el, warnings, err := parseElements(vs, lenient)
			if err != nil {
				writeOutcome(w, r, http.StatusBadRequest, "error", "invalid", err.Error())
				return
			}
			j.elements = el
			j.warnings = append(j.warnings, warnings...)
		case "includeAssociatedData":
			// The simulated population carries no Provenance, so the
			// associated data asked for is empty: the values the IG
			// defines are accepted, others refused (or, lenient, noted).
			for _, v := range splitList(vs) {
				switch {
				case v == "LatestProvenanceResources", v == "RelevantProvenanceResources":
				case !lenient:
					writeOutcome(w, r, http.StatusBadRequest, "error", "not-supported", "includeAssociatedData: "+v+" is not supported")
					return
				default:
					j.warnings = append(j.warnings, "includeAssociatedData: "+v+" is not supported; ignored (handling=lenient)")
				}
			}
		default:
			if !lenient {
				writeOutcome(w, r, http.StatusBadRequest, "error", "not-supported", "parameter "+k+" is not supported")
				return
			}
			j.warnings = append(j.warnings, "parameter "+k+" is not supported; ignored (handling=lenient)")
		}
	}
	if len(q["_type"]) > 0 && len(j.types) == 0 {
		writeOutcome(w, r, http.StatusBadRequest, "error", "not-supported", "_type names no resource type this server can export")
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	j.cancel = cancel
	s.mu.Lock()
	s.seq++
	j.id, j.n = "job"+strconv.Itoa(s.seq), s.seq
	j.failed = s.seq <= s.opts.Faults.FailJobs
	s.jobs[j.id] = j
	s.mu.Unlock()
	go s.plan(ctx, j)
	w.Header().Set("Content-Location", baseURL(r, s.opts.Prefix)+"/$bulk-status/"+j.id)
	w.WriteHeader(http.StatusAccepted)
	s.log.Debug("bulk export kicked off", "job", j.id)
}

// acceptsFHIRJSON reports whether a kick-off's Accept header lists
// application/fhir+json.
func acceptsFHIRJSON(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, _, _ := strings.Cut(part, ";")
		switch strings.ToLower(strings.TrimSpace(mt)) {
		case "application/fhir+json":
			return true
		}
	}
	return false
}

// writeOutcome answers with an OperationOutcome, as application/json when
// the client asked for that rather than application/fhir+json.
func writeOutcome(w http.ResponseWriter, r *http.Request, status int, severity, code, diagnostics string) {
	ct := "application/fhir+json"
	if a := r.Header.Get("Accept"); strings.Contains(a, "application/json") && !strings.Contains(a, "fhir+json") {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(fhir.NewOutcome(severity, code, diagnostics))
}

// splitList splits repeated, comma-separated parameter values.
func splitList(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, x := range strings.Split(v, ",") {
			if x = strings.TrimSpace(x); x != "" {
				out = append(out, x)
			}
		}
	}
	return out
}

// maxKickoffBody bounds a POST kick-off's Parameters resource.
const maxKickoffBody = 1 << 20

// kickoffParams returns a kick-off's parameters: the query of a GET, or
// the FHIR Parameters resource of a POST (valueString, valueInstant,
// valueReference; repeated names kept in order), plus the patient
// references' ids.
func kickoffParams(r *http.Request) (url.Values, []string, error) {
	if r.Method != http.MethodPost {
		q := r.URL.Query()
		if q.Has("patient") {
			return nil, nil, errors.New("the patient parameter is sent in a POST kick-off's Parameters body")
		}
		return q, nil, nil
	}
	if len(r.URL.Query()) > 0 {
		return nil, nil, errors.New("a POST kick-off takes its parameters in the body, not the URL")
	}
	var body struct {
		ResourceType string `json:"resourceType"`
		Parameter    []struct {
			Name           string          `json:"name"`
			ValueString    *string         `json:"valueString"`
			ValueInstant   *string         `json:"valueInstant"`
			ValueDateTime  *string         `json:"valueDateTime"`
			ValueCode      *string         `json:"valueCode"`
			ValueReference *fhirReference  `json:"valueReference"`
			Resource       json.RawMessage `json:"resource"`
		} `json:"parameter"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxKickoffBody))
	if err := dec.Decode(&body); err != nil || body.ResourceType != "Parameters" {
		return nil, nil, errors.New("a POST kick-off's body must be a FHIR Parameters resource")
	}
	q := url.Values{}
	var patients []string
	for _, p := range body.Parameter {
		var v *string
		for _, c := range []*string{p.ValueString, p.ValueInstant, p.ValueDateTime, p.ValueCode} {
			if c != nil {
				v = c
			}
		}
		switch {
		case p.Name == "patient":
			if p.ValueReference == nil {
				return nil, nil, errors.New("patient must be a valueReference")
			}
			id, ok := strings.CutPrefix(p.ValueReference.Reference, "Patient/")
			if !ok || id == "" || strings.Contains(id, "/") {
				return nil, nil, errors.New("patient must reference a Patient (Patient/id)")
			}
			patients = append(patients, id)
		case p.Name == "":
			return nil, nil, errors.New("a Parameters parameter has no name")
		case v == nil:
			return nil, nil, fmt.Errorf("parameter %s has no value this server reads (valueString, valueInstant, valueCode)", p.Name)
		default:
			q.Add(p.Name, *v)
		}
	}
	return q, patients, nil
}

type fhirReference struct {
	Reference string `json:"reference"`
}

// selectPatients narrows members (nil = every patient) to the patients
// with the given ids, in the order given; ids not among them are noted.
func (s *Server) selectPatients(members []int, ids []string) ([]int, []string) {
	index := map[string]int{}
	in := func(i int) bool { return members == nil || slices.Contains(members, i) }
	for i := 0; i < s.opts.Source.Patients(); i++ {
		if in(i) {
			index[s.patientID(i)] = i
		}
	}
	out := []int{}
	var notes []string
	for _, id := range ids {
		i, ok := index[id]
		switch {
		case !ok:
			notes = append(notes, "patient: Patient/"+id+" is not among the patients this export covers; ignored")
		case !slices.Contains(out, i):
			out = append(out, i)
		}
	}
	return out, notes
}

// patientID is the id of patient i's Patient resource.
func (s *Server) patientID(i int) string {
	if p, ok := s.opts.Source.(interface{ PatientID(int) string }); ok {
		return p.PatientID(i)
	}
	for _, res := range s.opts.Source.Resources(i) {
		if res.Type == "Patient" {
			var v struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(res.JSON, &v) == nil {
				return v.ID
			}
		}
	}
	return ""
}

func (s *Server) group(id string) ([]int, bool) {
	if s.opts.Groups == nil {
		if id != "all" {
			return nil, false
		}
		return nil, true
	}
	m, ok := s.opts.Groups[id]
	return m, ok
}

func baseURL(r *http.Request, prefix string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + prefix
}

func (j *job) patientCount(src Source) int {
	if j.patients != nil || j.patientsOnly {
		return len(j.patients)
	}
	return src.Patients()
}

func (j *job) patient(k int) int {
	if j.patients != nil {
		return j.patients[k]
	}
	return k
}

// resources returns patient k's resources as served to this job (after the
// Updated rewrite), filtered by type, _since and _typeFilter, grouped per
// type in order.
func (s *Server) resources(j *job, k int) map[string][][]byte {
	i := j.patient(k)
	out := map[string][][]byte{}
	updated := s.opts.Updated != nil && s.opts.Updated(i)
	for _, res := range s.opts.Source.Resources(i) {
		if j.types != nil && !j.types[res.Type] {
			continue
		}
		raw := []byte(res.JSON)
		if updated {
			raw = bump(raw, s.opts.UpdatedAt)
		}
		if !j.since.IsZero() {
			lu, ok := lastUpdated(raw)
			if !ok || !lu.After(j.since) {
				continue
			}
		}
		if j.filters != nil && !j.filters.match(res.Type, raw) {
			continue
		}
		if j.elements != nil {
			raw = j.elements.subset(res.Type, raw)
		}
		out[res.Type] = append(out[res.Type], raw)
	}
	return out
}

// plan counts, per type, what each output file will hold.
func (s *Server) plan(ctx context.Context, j *job) {
	n := j.patientCount(s.opts.Source)
	type open struct {
		f    file
		have bool
	}
	cur := map[string]*open{}
	var order []string
	var files []file
	for k := 0; k < n; k++ {
		if ctx.Err() != nil {
			return
		}
		byType := s.resources(j, k)
		// Types in a fixed order, so that file indices (which the fault
		// knobs name) are the same in every job.
		for _, typ := range slices.Sorted(maps.Keys(byType)) {
			list := byType[typ]
			o := cur[typ]
			if o == nil {
				o = &open{}
				cur[typ] = o
				order = append(order, typ)
			}
			for idx := range list {
				if !o.have {
					o.f = file{typ: typ, firstPatient: k, skip: idx}
					o.have = true
				}
				o.f.count++
				if o.f.count == s.opts.FileSize {
					files = append(files, o.f)
					o.have = false
				}
			}
		}
		if k%100 == 0 {
			j.mu.Lock()
			j.progress = k
			j.mu.Unlock()
		}
	}
	for _, typ := range order {
		if o := cur[typ]; o.have {
			files = append(files, o.f)
		}
	}
	// Group the files by type, in first-seen order, keeping their order.
	sorted := make([]file, 0, len(files))
	for _, t := range order {
		for _, f := range files {
			if f.typ == t {
				sorted = append(sorted, f)
			}
		}
	}
	j.mu.Lock()
	j.files, j.planned, j.progress = sorted, true, n
	j.mu.Unlock()
}

func (s *Server) lookup(w http.ResponseWriter, r *http.Request) *job {
	s.mu.Lock()
	j := s.jobs[r.PathValue("job")]
	s.mu.Unlock()
	if j == nil {
		writeOutcome(w, r, http.StatusNotFound, "error", "not-found", "no such export job")
	}
	return j
}

func setRetryAfter(w http.ResponseWriter, d time.Duration) {
	if d >= 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
	}
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	s.polls.Add(1)
	if d := s.opts.Faults.SlowStatus; d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	if !s.authorize(w, r) {
		return
	}
	j := s.lookup(w, r)
	if j == nil {
		return
	}
	if j.failed {
		s.faults.Add(1)
		writeOutcome(w, r, http.StatusInternalServerError, "error", "exception", "the export failed")
		return
	}
	j.mu.Lock()
	if j.gone {
		j.mu.Unlock()
		writeOutcome(w, r, http.StatusGone, "error", "not-found", "the export has expired")
		return
	}
	if j.throttled < s.opts.Faults.StatusThrottle {
		j.throttled++
		j.mu.Unlock()
		s.throttled.Add(1)
		s.faults.Add(1)
		setRetryAfter(w, s.opts.Faults.ThrottleRetryAfter)
		writeOutcome(w, r, http.StatusTooManyRequests, "error", "throttled", "polling too often")
		return
	}
	j.polls++
	if !j.planned || j.polls <= s.opts.Polls {
		pct := 100 * j.progress / max(j.patientCount(s.opts.Source), 1)
		j.mu.Unlock()
		w.Header().Set("X-Progress", fmt.Sprintf("planning %d%%", pct))
		setRetryAfter(w, s.opts.RetryAfter)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	files := j.files
	j.mu.Unlock()
	base := baseURL(r, s.opts.Prefix)
	m := bulk.Manifest{TransactionTime: j.txTime, Request: base + strings.TrimPrefix(j.request, s.opts.Prefix),
		RequiresAccessToken: s.opts.Authorize != nil, Output: []bulk.OutputFile{}, Error: []bulk.OutputFile{}}
	for i, f := range files {
		c := int64(f.count)
		if s.ungenerated(j, i+1) {
			s.faults.Add(1)
			one := int64(1)
			m.Error = append(m.Error, bulk.OutputFile{Type: "OperationOutcome",
				URL: fmt.Sprintf("%s/$bulk-file/%s/failed-%d.ndjson", base, j.id, i+1), Count: &one})
			continue
		}
		m.Output = append(m.Output, bulk.OutputFile{Type: f.typ, URL: fmt.Sprintf("%s/$bulk-file/%s/%d.ndjson", base, j.id, i+1), Count: &c})
	}
	if !j.since.IsZero() && len(s.opts.Deleted) > 0 {
		c := int64(len(s.opts.Deleted))
		m.Deleted = []bulk.OutputFile{{Type: "Bundle", URL: fmt.Sprintf("%s/$bulk-file/%s/deleted.ndjson", base, j.id), Count: &c}}
	}
	if len(j.warnings) > 0 {
		c := int64(len(j.warnings))
		m.Error = append(m.Error, bulk.OutputFile{Type: "OperationOutcome", URL: fmt.Sprintf("%s/$bulk-file/%s/errors.ndjson", base, j.id), Count: &c})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Expires", j.txTime.Add(time.Hour).Format(http.TimeFormat))
	_ = json.NewEncoder(w).Encode(m)
}

func (s *Server) deleteJob(w http.ResponseWriter, r *http.Request) {
	s.deletes.Add(1)
	if !s.authorize(w, r) {
		return
	}
	j := s.lookup(w, r)
	if j == nil {
		return
	}
	j.cancel()
	s.mu.Lock()
	delete(s.jobs, j.id)
	s.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) file(w http.ResponseWriter, r *http.Request) {
	s.downloads.Add(1)
	n := s.active.Add(1)
	defer s.active.Add(-1)
	for {
		m := s.maxActive.Load()
		if n <= m || s.maxActive.CompareAndSwap(m, n) {
			break
		}
	}
	if max := s.opts.Faults.MaxConcurrentDownloads; max > 0 && n > int64(max) {
		s.throttled.Add(1)
		s.faults.Add(1)
		setRetryAfter(w, s.opts.Faults.ThrottleRetryAfter)
		writeOutcome(w, r, http.StatusTooManyRequests, "error", "throttled", "too many concurrent downloads")
		return
	}
	j := s.lookup(w, r)
	if j == nil {
		return
	}
	j.mu.Lock()
	if s.opts.Faults.ExpireToken && !j.expired {
		j.expired = true
		j.mu.Unlock()
		s.faults.Add(1)
		writeOutcome(w, r, http.StatusUnauthorized, "error", "expired", "access token expired")
		return
	}
	j.mu.Unlock()
	if !s.authorize(w, r) {
		return
	}
	name := strings.TrimSuffix(r.PathValue("file"), ".ndjson")
	switch name {
	case "deleted":
		s.writeDeleted(w, r)
		return
	case "errors":
		writeWarnings(w, j.warnings)
		return
	}
	if n, ok := strings.CutPrefix(name, "failed-"); ok {
		idx, err := strconv.Atoi(n)
		j.mu.Lock()
		files := j.files
		j.mu.Unlock()
		if err != nil || idx < 1 || idx > len(files) || !s.ungenerated(j, idx) {
			writeOutcome(w, r, http.StatusNotFound, "error", "not-found", "no such file")
			return
		}
		w.Header().Set("Content-Type", "application/fhir+ndjson")
		line, _ := json.Marshal(fhir.NewOutcome("error", "exception", fmt.Sprintf("Failed to export %d.%s.ndjson", idx, files[idx-1].typ)))
		_, _ = w.Write(append(line, '\n'))
		return
	}
	idx, err := strconv.Atoi(name)
	j.mu.Lock()
	if err != nil || idx < 1 || idx > len(j.files) {
		j.mu.Unlock()
		writeOutcome(w, r, http.StatusNotFound, "error", "not-found", "no such file")
		return
	}
	f := j.files[idx-1]
	if s.opts.MayRead != nil {
		if err := s.opts.MayRead(r, f.typ); err != nil {
			j.mu.Unlock()
			writeOutcome(w, r, http.StatusForbidden, "error", "forbidden", "the access token may not read "+f.typ)
			return
		}
	}
	j.attempts[idx]++
	attempt := j.attempts[idx]
	expire := idx == s.opts.Faults.ExpireFile && j.n <= s.opts.Faults.ExpireJobs
	if expire {
		j.gone = true
	}
	j.mu.Unlock()
	if expire {
		s.faults.Add(1)
		writeOutcome(w, r, http.StatusGone, "error", "expired", "the file has expired")
		return
	}
	if idx == s.opts.Faults.FileError && attempt == 1 {
		s.faults.Add(1)
		writeOutcome(w, r, http.StatusServiceUnavailable, "error", "transient", "storage unavailable")
		return
	}
	truncate := idx == s.opts.Faults.TruncateFile && attempt == 1
	if truncate {
		s.faults.Add(1)
	}
	w.Header().Set("Content-Type", "application/fhir+ndjson")
	var out interface {
		Write([]byte) (int, error)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	out = bw
	var zw *gzip.Writer
	if s.opts.Gzip && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		zw = gzip.NewWriter(bw)
		out = zw
	}
	written := 0
	for k := f.firstPatient; written < f.count && k < j.patientCount(s.opts.Source); k++ {
		if r.Context().Err() != nil {
			return
		}
		list := s.resources(j, k)[f.typ]
		if k == f.firstPatient {
			list = list[min(f.skip, len(list)):]
		}
		for _, raw := range list {
			if written == f.count {
				break
			}
			if truncate && written == f.count/2 {
				_, _ = out.Write(raw[:len(raw)/2])
				if zw != nil {
					_ = zw.Flush()
				}
				_ = bw.Flush()
				panic(http.ErrAbortHandler) // drop the connection mid-line
			}
			_, _ = out.Write(raw)
			_, _ = out.Write([]byte{'\n'})
			written++
		}
	}
	if zw != nil {
		_ = zw.Close()
	}
	_ = bw.Flush()
}

// ungenerated reports whether Faults.UngeneratedFile hits file idx of j.
func (s *Server) ungenerated(j *job, idx int) bool {
	return idx == s.opts.Faults.UngeneratedFile && j.n <= s.opts.Faults.UngeneratedJobs
}

func (s *Server) writeDeleted(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/fhir+ndjson")
	base := baseURL(r, s.opts.Prefix)
	for _, ref := range s.opts.Deleted {
		b := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
			map[string]any{"fullUrl": base + "/" + ref, "request": map[string]string{"method": "DELETE", "url": ref}},
		}}
		line, _ := json.Marshal(b)
		_, _ = w.Write(append(line, '\n'))
	}
}

// writeWarnings serves the manifest's error file: one warning
// OperationOutcome per issue accepted under handling=lenient.
func writeWarnings(w http.ResponseWriter, warnings []string) {
	w.Header().Set("Content-Type", "application/fhir+ndjson")
	for _, msg := range warnings {
		line, _ := json.Marshal(fhir.NewOutcome("warning", "not-supported", msg))
		_, _ = w.Write(append(line, '\n'))
	}
}

var (
	luKey  = []byte(`"lastUpdated":"`)
	verKey = []byte(`"versionId":"`)
)

// lastUpdated reads meta.lastUpdated from a compact resource.
func lastUpdated(raw []byte) (time.Time, bool) {
	i := bytes.Index(raw, luKey)
	if i < 0 {
		return time.Time{}, false
	}
	rest := raw[i+len(luKey):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return time.Time{}, false
	}
	t, err := fhir.ParseDateTime(string(rest[:j]))
	return t, err == nil
}

// bump rewrites meta.versionId to "2" and meta.lastUpdated to at.
func bump(raw []byte, at time.Time) []byte {
	out := replaceValue(raw, verKey, "2")
	return replaceValue(out, luKey, at.UTC().Format(time.RFC3339))
}

func replaceValue(raw, key []byte, v string) []byte {
	i := bytes.Index(raw, key)
	if i < 0 {
		return raw
	}
	start := i + len(key)
	j := bytes.IndexByte(raw[start:], '"')
	if j < 0 {
		return raw
	}
	out := make([]byte, 0, len(raw)+len(v))
	out = append(out, raw[:start]...)
	out = append(out, v...)
	return append(out, raw[start+j:]...)
}

// Validate reports problems with the options.
func (o Options) Validate() error {
	if o.Source == nil {
		return fmt.Errorf("bulkexport: a Source is required")
	}
	if _, err := url.Parse(o.Prefix); err != nil {
		return fmt.Errorf("bulkexport: prefix: %w", err)
	}
	return nil
}

// Compartments is a population that can change while it is served, such
// as the simulated EHR's loaded data (ehrsim.Server.Population).
type Compartments interface {
	Patients() int
	PatientID(i int) string
	// Compartment calls fn with patient i's Patient, then each resource
	// of its compartment.
	Compartment(i int, fn func(typ string, raw json.RawMessage))
}

// Live returns a Source over c, read at each file's generation.
func Live(c Compartments) Source { return liveSource{c} }

type liveSource struct{ Compartments }

func (l liveSource) Resources(i int) []synth.Resource {
	var out []synth.Resource
	l.Compartment(i, func(typ string, raw json.RawMessage) {
		out = append(out, synth.Resource{Type: typ, JSON: raw})
	})
	return out
}
