// Package refresh pulls patient charts from a FHIR server into the store:
// on demand for one patient, for every patient of a connection (a full
// sync), and (later) on a schedule or when an HL7 v2 event arrives.
//
// A sync enumerates the server's patients, then fetches each chart resource
// type for each patient with a bounded worker pool. Every resource received
// is stored raw beside its normalized form; a resource that cannot be
// normalized is quarantined with its raw bytes and the sync goes on. A fetch
// that fails after the client's retries is counted as an error, recorded in
// the patient's fetch state and reported to monitoring; it never silently
// shortens a chart.
package refresh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"ehrgate/fhir"
	"ehrgate/normalize"
	"ehrgate/store"
)

// ChartTypes are the resource types a chart sync pulls, Patient first.
var ChartTypes = []string{
	"Patient", "Encounter", "Condition", "Observation", "MedicationRequest",
	"AllergyIntolerance", "Immunization", "Procedure", "DiagnosticReport", "DocumentReference",
}

// Source is the FHIR server side of a sync (a *fhir.Client).
type Source interface {
	Capabilities(ctx context.Context) ([]byte, error)
	SearchAll(ctx context.Context, typ string, q *fhir.Query, fn fhir.PageFunc) error
}

// Planner decides how one resource type is fetched for one patient. Vendor
// adapters supply it: some EHRs reject an Observation search without a
// category, so the plan fans out over categories; some need extra
// parameters. Queries may overlap: a resource found by two of them is stored
// and counted once.
type Planner interface {
	// Plan returns the searches that together fetch every resource of typ in
	// the patient's compartment. An empty list means the type is not
	// available from this source, and reason says why (user-safe).
	Plan(typ, patientID string) (queries []*fhir.Query, reason string)
}

// DefaultPlanner searches each type once by patient with a page size.
type DefaultPlanner struct{ PageSize int }

// Plan implements Planner.
func (p DefaultPlanner) Plan(typ, patientID string) ([]*fhir.Query, string) {
	q := fhir.NewQuery().Patient(patientID)
	if p.PageSize > 0 {
		q.Count(p.PageSize)
	}
	return []*fhir.Query{q}, ""
}

// Recorder receives sync outcomes for monitoring (a *metrics.Metrics).
// Implementations must be safe for concurrent use and must not block.
type Recorder interface {
	SyncCompleted(connection string, at time.Time, took time.Duration, returned map[string]int)
	Stored(connection, resourceType, change string, n int)
	FetchFailed(connection, resourceType string)
	QuarantinedInput(connection, resourceType string)
}

// Options configure a Syncer.
type Options struct {
	Connection string   // connection name; required
	Types      []string // resource types to pull (default ChartTypes); Patient is always pulled
	Workers    int      // concurrent fetches (default 8)
	PageSize   int      // _count per search page (default 100)
	Clock      func() time.Time
	Logger     *slog.Logger
	Recorder   Recorder
	Planner    Planner // default DefaultPlanner{PageSize}
	// Done, if set, reports that a patient's type was already fetched by
	// an earlier attempt of the same run (a sync resumed after its process
	// died): Run skips it and counts it in Summary.Resumed.
	Done func(ctx context.Context, patientID, typ string) bool
}

// Syncer pulls charts from one connection into a store.
type Syncer struct {
	src   Source
	st    store.Writer
	opts  Options
	log   *slog.Logger
	clock func() time.Time
}

// New returns a Syncer.
func New(src Source, st store.Writer, opts Options) (*Syncer, error) {
	if opts.Connection == "" {
		return nil, errors.New("refresh: a connection name is required")
	}
	if len(opts.Types) == 0 {
		opts.Types = ChartTypes
	}
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 100
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Planner == nil {
		opts.Planner = DefaultPlanner{PageSize: opts.PageSize}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Syncer{src: src, st: st, opts: opts, log: log.With("connection", opts.Connection), clock: opts.Clock}, nil
}

// Summary reports what a sync did. Its JSON form is the documented output of
// `ehrgate sync --json` and `ehrgate demo --once --json`.
type Summary struct {
	Patients    int            `json:"patients"`
	Resources   map[string]int `json:"resources"` // resources received per type (stored or unchanged)
	New         int            `json:"new"`
	Updated     int            `json:"updated"`
	Unchanged   int            `json:"unchanged"`
	Errors      int            `json:"errors"`
	Quarantined int            `json:"quarantined"`
	// Resumed counts the patient types an earlier attempt of this run had
	// fetched already (Options.Done), which were not fetched again.
	Resumed    int   `json:"resumed,omitempty"`
	DurationMS int64 `json:"duration_ms"`
}

// tally accumulates a Summary from concurrent workers.
type tally struct {
	mu sync.Mutex
	s  Summary
}

func (t *tally) add(typ string, changes []store.Change) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.s.Resources[typ] += len(changes)
	for _, c := range changes {
		switch c {
		case store.New:
			t.s.New++
		case store.Updated:
			t.s.Updated++
		default:
			t.s.Unchanged++
		}
	}
}

func (t *tally) inc(field *int) {
	t.mu.Lock()
	*field++
	t.mu.Unlock()
}

// Run performs a full sync of every patient the server lists. It returns an
// error only when the sync could not run at all (for example the patient
// list could not be read); per-patient failures are counted in
// Summary.Errors.
func (s *Syncer) Run(ctx context.Context) (Summary, error) {
	start := s.clock()
	t := &tally{s: Summary{Resources: map[string]int{}}}
	supported := s.supportedTypes(ctx)

	var patients []string
	q := fhir.NewQuery().Count(s.opts.PageSize)
	err := s.src.SearchAll(ctx, "Patient", q, func(ctx context.Context, b *fhir.Bundle, pageURL string) error {
		ids, err := s.storePage(ctx, t, "Patient", b, pageURL)
		patients = append(patients, ids...)
		return err
	})
	if err != nil {
		return t.s, fmt.Errorf("refresh: listing patients on %s: %w", s.opts.Connection, err)
	}
	t.s.Patients = len(patients)

	if err := s.syncPatients(ctx, t, patients, supported); err != nil {
		return t.s, err
	}
	took := s.clock().Sub(start)
	t.s.DurationMS = took.Milliseconds()
	if s.opts.Recorder != nil {
		s.opts.Recorder.SyncCompleted(s.opts.Connection, s.clock(), took, t.s.Resources)
	}
	s.log.InfoContext(ctx, "sync finished", "patients", t.s.Patients, "new", t.s.New, "updated", t.s.Updated,
		"unchanged", t.s.Unchanged, "errors", t.s.Errors, "quarantined", t.s.Quarantined, "duration_ms", t.s.DurationMS)
	return t.s, nil
}

// Patient refreshes one patient's chart (on-demand and event-driven refresh).
func (s *Syncer) Patient(ctx context.Context, patientID string) (Summary, error) {
	start := s.clock()
	t := &tally{s: Summary{Resources: map[string]int{}, Patients: 1}}
	supported := s.supportedTypes(ctx)
	q := fhir.NewQuery().Set("_id", patientID)
	err := s.src.SearchAll(ctx, "Patient", q, func(ctx context.Context, b *fhir.Bundle, pageURL string) error {
		_, err := s.storePage(ctx, t, "Patient", b, pageURL)
		return err
	})
	if err != nil {
		return t.s, fmt.Errorf("refresh: reading patient on %s: %w", s.opts.Connection, err)
	}
	err = s.syncPatients(ctx, t, []string{patientID}, supported)
	t.s.DurationMS = s.clock().Sub(start).Milliseconds()
	return t.s, err
}

type task struct {
	patient string
	typ     string
}

func (s *Syncer) syncPatients(ctx context.Context, t *tally, patients []string, supported map[string]bool) error {
	tasks := make(chan task)
	var wg sync.WaitGroup
	for w := 0; w < s.opts.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tk := range tasks {
				s.fetchType(ctx, t, tk, supported)
			}
		}()
	}
	var err error
feed:
	for _, p := range patients {
		for _, typ := range s.opts.Types {
			if typ == "Patient" {
				continue
			}
			if s.opts.Done != nil && s.opts.Done(ctx, p, typ) {
				t.mu.Lock()
				t.s.Resumed++
				t.mu.Unlock()
				continue
			}
			select {
			case tasks <- task{patient: p, typ: typ}:
			case <-ctx.Done():
				err = ctx.Err()
				break feed
			}
		}
	}
	close(tasks)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("refresh: sync of %s interrupted: %w", s.opts.Connection, err)
	}
	return nil
}

// fetchType pulls one resource type for one patient and records its fetch
// state.
func (s *Syncer) fetchType(ctx context.Context, t *tally, tk task, supported map[string]bool) {
	state := store.FetchState{Connection: s.opts.Connection, PatientID: tk.patient, Type: tk.typ, FetchedAt: s.clock()}
	if supported != nil && !supported[tk.typ] {
		state.Availability = store.NotAvailable
		state.Detail = "The server's CapabilityStatement does not list " + tk.typ + "."
		s.putState(ctx, state)
		return
	}
	queries, reason := s.opts.Planner.Plan(tk.typ, tk.patient)
	if len(queries) == 0 {
		state.Availability = store.NotAvailable
		state.Detail = reason
		s.putState(ctx, state)
		return
	}
	seen := map[string]bool{}
	var err error
	for _, q := range queries {
		err = s.src.SearchAll(ctx, tk.typ, q, func(ctx context.Context, b *fhir.Bundle, pageURL string) error {
			if len(queries) > 1 {
				b.Entry = unseen(b.Entry, seen)
			}
			ids, err := s.storePage(ctx, t, tk.typ, b, pageURL)
			for _, id := range ids {
				seen[id] = true
			}
			return err
		})
		if err != nil {
			break
		}
	}
	state.Count = len(seen)
	switch {
	case err == nil:
		state.Availability = store.Available
	case errors.Is(err, fhir.ErrNotSupported) || errors.Is(err, fhir.ErrNotFound):
		state.Availability = store.NotAvailable
		state.Detail = "The server does not support searching " + tk.typ + " by patient."
	default:
		if ctx.Err() != nil {
			return
		}
		t.inc(&t.s.Errors)
		if s.opts.Recorder != nil {
			s.opts.Recorder.FetchFailed(s.opts.Connection, tk.typ)
		}
		state.Availability = store.Failed
		state.Detail = userSafe(err)
		s.log.WarnContext(ctx, "fetch failed", "type", tk.typ, "error", err)
	}
	s.putState(ctx, state)
}

// unseen drops entries whose resource id was already stored by an earlier
// query of the same fan-out.
func unseen(entries []fhir.BundleEntry, seen map[string]bool) []fhir.BundleEntry {
	out := entries[:0:0]
	for _, e := range entries {
		if h, err := fhir.ParseHeader(e.Resource); err == nil && seen[h.ID] {
			continue
		}
		out = append(out, e)
	}
	return out
}

func (s *Syncer) putState(ctx context.Context, st store.FetchState) {
	if err := s.st.PutFetchStates(ctx, []store.FetchState{st}); err != nil && ctx.Err() == nil {
		s.log.ErrorContext(ctx, "recording fetch state failed", "type", st.Type, "error", err)
	}
}

// storePage normalizes and stores the resources of one search page whose
// type is typ, quarantining what cannot be normalized. It returns the ids of
// the resources stored. Included resources of other types are stored too
// but not counted.
func (s *Syncer) storePage(ctx context.Context, t *tally, typ string, b *fhir.Bundle, pageURL string) ([]string, error) {
	now := s.clock()
	source := sourceURL(pageURL)
	var recs []store.Record
	var ids []string
	for i, e := range b.Entry {
		if e.Search != nil && e.Search.Mode == "outcome" {
			continue
		}
		if len(e.Resource) == 0 {
			continue
		}
		rec, err := s.record(e.Resource, now, source)
		if err != nil {
			t.inc(&t.s.Quarantined)
			if s.opts.Recorder != nil {
				s.opts.Recorder.QuarantinedInput(s.opts.Connection, typ)
			}
			q := store.QuarantineItem{Connection: s.opts.Connection, Type: typ, ResourceID: rec.ID,
				Source: fmt.Sprintf("%s#entry[%d]", source, i), Reason: err.Error(), Raw: e.Resource, ReceivedAt: now}
			if qerr := s.st.Quarantine(ctx, q); qerr != nil {
				return ids, fmt.Errorf("quarantining %s: %w", typ, qerr)
			}
			s.log.WarnContext(ctx, "resource quarantined", "type", typ, "reason", err.Error())
			continue
		}
		recs = append(recs, rec)
		if rec.Type == typ {
			ids = append(ids, rec.ID)
		}
	}
	if len(recs) == 0 {
		return ids, nil
	}
	changes, err := s.st.PutResources(ctx, recs)
	if err != nil {
		return nil, fmt.Errorf("storing %s page: %w", typ, err)
	}
	byType := map[string][]store.Change{}
	for i, c := range changes {
		byType[recs[i].Type] = append(byType[recs[i].Type], c)
	}
	for ty, cs := range byType {
		t.add(ty, cs)
		if s.opts.Recorder != nil {
			n := map[store.Change]int{}
			for _, c := range cs {
				n[c]++
			}
			for c, k := range n {
				s.opts.Recorder.Stored(s.opts.Connection, ty, c.String(), k)
			}
		}
	}
	return ids, nil
}

// record normalizes one raw resource into a store record.
func (s *Syncer) record(raw json.RawMessage, now time.Time, source string) (store.Record, error) {
	return NewRecord(s.opts.Connection, raw, now, source)
}

// NewRecord turns one raw FHIR resource received on connection into a store
// record: the raw bytes as received, the normalized form, the patient it
// belongs to, its demographic search keys for a Patient, and provenance.
// Every path into the store (REST sync, bulk ingest, HL7 v2 conversion) uses
// it, so the same resource is stored the same way whatever brought it. On
// error the returned record carries whatever type and id could be read, for
// the quarantine.
func NewRecord(connection string, raw []byte, now time.Time, source string) (store.Record, error) {
	h, err := fhir.ParseHeader(raw)
	if err != nil {
		return store.Record{}, err
	}
	rec := store.Record{Key: store.Key{Connection: connection, Type: h.ResourceType, ID: h.ID, VersionID: h.VersionID()}}
	if h.ID == "" {
		return rec, errors.New("resource has no id")
	}
	ref := normalize.Ref{Connection: connection, Type: h.ResourceType, ID: h.ID, VersionID: h.VersionID()}
	n, err := normalize.Normalize(ref, raw)
	if err != nil {
		return rec, err
	}
	norm, err := json.Marshal(n)
	if err != nil {
		return rec, fmt.Errorf("encoding normalized %s: %w", h.ResourceType, err)
	}
	rec.PatientID = n.Base().PatientID
	rec.Raw = raw
	rec.Hash = store.ContentHash(raw)
	rec.Normalized = norm
	rec.LastUpdated = h.LastUpdated()
	rec.FetchedAt = now
	rec.Source = source
	if p, ok := n.(*normalize.Patient); ok {
		rec.Patient = PatientKeys(p)
	}
	return rec, nil
}

// PatientKeys extracts the demographic search keys of a normalized patient.
func PatientKeys(p *normalize.Patient) *store.PatientKeys {
	k := &store.PatientKeys{BirthDate: p.BirthDate}
	if p.Name != "" {
		k.Names = append(k.Names, p.Name)
	}
	for _, id := range p.Identifiers {
		k.MRNs = append(k.MRNs, id.Value)
	}
	if p.MRN != "" {
		k.MRNs = append(k.MRNs, p.MRN)
	}
	return k
}

// supportedTypes reads the CapabilityStatement's resource list; nil means
// unknown (treat every type as supported and let searches tell).
func (s *Syncer) supportedTypes(ctx context.Context) map[string]bool {
	body, err := s.src.Capabilities(ctx)
	if err != nil {
		s.log.WarnContext(ctx, "could not read the CapabilityStatement; assuming every type is supported", "error", err)
		return nil
	}
	var cs struct {
		Rest []struct {
			Mode     string `json:"mode"`
			Resource []struct {
				Type string `json:"type"`
			} `json:"resource"`
		} `json:"rest"`
	}
	if err := json.Unmarshal(body, &cs); err != nil || len(cs.Rest) == 0 {
		s.log.WarnContext(ctx, "the CapabilityStatement lists no REST resources; assuming every type is supported")
		return nil
	}
	out := map[string]bool{}
	for _, r := range cs.Rest {
		if r.Mode != "" && r.Mode != "server" {
			continue
		}
		for _, res := range r.Resource {
			out[res.Type] = true
		}
	}
	return out
}

// userSafe turns a fetch error into a message fit for the dashboard: the
// HTTP status and outcome diagnostics, never URLs or internals.
func userSafe(err error) string {
	var fe *fhir.Error
	if errors.As(err, &fe) {
		return fmt.Sprintf("The server answered HTTP %d.", fe.StatusCode)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "The server did not answer in time."
	}
	if errors.Is(err, fhir.ErrMalformedBody) {
		return "The server sent a response that could not be read."
	}
	return "The server could not be reached."
}

// sourceURL is the provenance kept with each stored resource: the page URL
// it came in, without any user info.
func sourceURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	p.User = nil
	return p.String()
}
