// Package probe exercises a live FHIR endpoint and reports what it can do: a
// compatibility matrix of discovery (CapabilityStatement, SMART
// configuration, detected vendor), each resource type searched for a test
// patient, each search parameter on it, paging, error shapes and timings.
// Two reports compare into the differences an upgrade (or a site change)
// introduced.
//
// The probe only reads. It takes a *fhir.Client, so authentication is the
// caller's (fhir.Options.Authorizer). Reports carry resource types,
// parameter names, statuses and the test patient's id, never resource
// bodies or parameter values.
package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"ehrgate/ehr"
	"ehrgate/fhir"
	"ehrgate/refresh"
)

// Result values of a check besides the ehr.ErrorClass values.
const (
	ResultOK      = "ok"
	ResultSkipped = "skipped"
	// ResultIgnored is an unknown parameter the server accepted silently.
	ResultIgnored = "ignored"
)

// Options configure a probe.
type Options struct {
	// Types are the resource types to probe (default refresh.ChartTypes).
	Types []string
	// PatientID is the test patient (default: the first patient listed).
	PatientID string
	// Adapter plans searches (required parameters, fan-outs) and classifies
	// errors; nil = the adapter of the detected vendor.
	Adapter *ehr.Adapter
	// HTTPClient fetches .well-known/smart-configuration, which needs no
	// credentials (default: a client with a 30s timeout).
	HTTPClient *http.Client
	// Clock stamps the report (default time.Now).
	Clock func() time.Time
}

// Report is one probe's outcome. Its JSON form is what `ehrgate probe
// --json` prints and what is stored under probes/<connection>.json.
type Report struct {
	Connection  string    `json:"connection,omitempty"`
	BaseURL     string    `json:"base_url"`
	At          time.Time `json:"at"`
	Vendor      string    `json:"vendor"`  // detected vendor
	Version     string    `json:"version"` // software version the server reports
	Confidence  float64   `json:"confidence"`
	Adapter     string    `json:"adapter"` // adapter used for planning
	FHIRVersion string    `json:"fhir_version,omitempty"`
	Patient     string    `json:"patient,omitempty"`
	Checks      []Check   `json:"checks"`
}

// Check is one row of the compatibility matrix.
type Check struct {
	// ID names the check uniquely and stably across runs, e.g.
	// "search Observation", "param Observation code", "paging Patient".
	ID         string `json:"id"`
	Area       string `json:"area"` // discovery, read, search, param, paging, error
	Type       string `json:"type,omitempty"`
	Param      string `json:"param,omitempty"`
	Result     string `json:"result"` // ok, skipped, ignored, or an ehr.ErrorClass
	Status     int    `json:"status,omitempty"`
	Count      int    `json:"count,omitempty"`
	Detail     string `json:"detail,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// Run probes the server behind c. It fails only when the server cannot be
// probed at all (no CapabilityStatement and no patient); everything else is
// a check in the report.
func Run(ctx context.Context, c *fhir.Client, opts Options) (*Report, error) {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if len(opts.Types) == 0 {
		opts.Types = refresh.ChartTypes
	}
	r := &Report{BaseURL: c.BaseURL(), At: opts.Clock().UTC()}
	p := &prober{c: c, opts: opts, r: r}

	capBody := p.metadata(ctx)
	smartBody := p.smartConfig(ctx)
	r.Vendor, r.Version, r.Confidence = ehr.Detect(ctx, capBody, smartBody)
	a := opts.Adapter
	if a == nil {
		var err error
		if a, err = ehr.Lookup(r.Vendor); err != nil {
			return nil, fmt.Errorf("probe: %w", err)
		}
	}
	p.a = a
	r.Adapter = a.Vendor()

	if err := p.patient(ctx); err != nil {
		if capBody == nil {
			return r, fmt.Errorf("probe: no CapabilityStatement and no patient: %w", err)
		}
	}
	for _, typ := range opts.Types {
		if typ == "Patient" {
			continue
		}
		p.searchType(ctx, typ)
	}
	p.paging(ctx)
	p.errorShapes(ctx)
	return r, nil
}

type prober struct {
	c    *fhir.Client
	opts Options
	a    *ehr.Adapter
	r    *Report
	// capTypes maps each type in the CapabilityStatement to its search
	// parameter names; nil when there was none.
	capTypes map[string][]string
}

func (p *prober) add(c Check, start time.Time) {
	c.DurationMS = time.Since(start).Milliseconds()
	p.r.Checks = append(p.r.Checks, c)
}

// classify turns an error into a result and status.
func (p *prober) classify(err error) (string, int, string) {
	var fe *fhir.Error
	status := 0
	detail := ""
	if errors.As(err, &fe) {
		status = fe.StatusCode
		if fe.Outcome != nil && len(fe.Outcome.Issue) > 0 {
			detail = "OperationOutcome " + fe.Outcome.Issue[0].Severity + "/" + fe.Outcome.Issue[0].Code
		}
	}
	return string(p.a.Classify(err)), status, detail
}

func (p *prober) metadata(ctx context.Context) []byte {
	start := time.Now()
	body, err := p.c.Capabilities(ctx)
	ch := Check{ID: "discovery metadata", Area: "discovery"}
	if err != nil {
		ch.Result, ch.Status, ch.Detail = string(ehr.MustLookup(ehr.Generic).Classify(err)), statusOf(err), "no CapabilityStatement"
		p.add(ch, start)
		return nil
	}
	var cs struct {
		FHIRVersion string `json:"fhirVersion"`
		Software    struct{ Name, Version string }
		Rest        []struct {
			Mode     string `json:"mode"`
			Resource []struct {
				Type        string `json:"type"`
				SearchParam []struct {
					Name string `json:"name"`
				} `json:"searchParam"`
			} `json:"resource"`
		} `json:"rest"`
	}
	_ = json.Unmarshal(body, &cs)
	p.r.FHIRVersion = cs.FHIRVersion
	p.capTypes = map[string][]string{}
	for _, rest := range cs.Rest {
		if rest.Mode != "" && rest.Mode != "server" {
			continue
		}
		for _, res := range rest.Resource {
			var names []string
			for _, sp := range res.SearchParam {
				names = append(names, sp.Name)
			}
			p.capTypes[res.Type] = names
		}
	}
	ch.Result, ch.Status = ResultOK, http.StatusOK
	ch.Count = len(p.capTypes)
	ch.Detail = fmt.Sprintf("FHIR %s, %d types", cs.FHIRVersion, len(p.capTypes))
	if cs.Software.Name != "" {
		ch.Detail += fmt.Sprintf(", software %q %s", cs.Software.Name, cs.Software.Version)
	}
	p.add(ch, start)
	return body
}

func (p *prober) smartConfig(ctx context.Context) []byte {
	start := time.Now()
	ch := Check{ID: "discovery smart-configuration", Area: "discovery"}
	defer func() { p.add(ch, start) }()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.c.BaseURL()+"/.well-known/smart-configuration", nil)
	if err != nil {
		ch.Result, ch.Detail = string(ehr.ClassOther), "building request"
		return nil
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.opts.HTTPClient.Do(req)
	if err != nil {
		ch.Result, ch.Detail = string(ehr.ClassTransient), "unreachable"
		return nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	ch.Status = resp.StatusCode
	switch {
	case err != nil:
		ch.Result = string(ehr.ClassTransient)
	case resp.StatusCode == http.StatusOK && json.Valid(body):
		var sc struct {
			Methods      []string `json:"token_endpoint_auth_methods_supported"`
			Capabilities []string `json:"capabilities"`
		}
		_ = json.Unmarshal(body, &sc)
		ch.Result, ch.Count = ResultOK, len(sc.Capabilities)
		ch.Detail = "auth methods " + strings.Join(sc.Methods, ",")
		return body
	case resp.StatusCode == http.StatusNotFound:
		ch.Result = string(ehr.ClassNotFound)
	default:
		ch.Result = string(ehr.ClassOther)
	}
	return nil
}

// patient finds (or checks) the test patient.
func (p *prober) patient(ctx context.Context) error {
	start := time.Now()
	if id := p.opts.PatientID; id != "" {
		_, err := p.c.Read(ctx, "Patient", id)
		ch := Check{ID: "read Patient", Area: "read", Type: "Patient", Result: ResultOK, Status: http.StatusOK, Count: 1}
		if err != nil {
			ch.Result, ch.Status, ch.Detail = p.classify(err)
			ch.Count = 0
		}
		p.r.Patient = id
		p.add(ch, start)
		return err
	}
	b, err := p.c.Search(ctx, "Patient", fhir.NewQuery().Count(1))
	ch := Check{ID: "search Patient", Area: "search", Type: "Patient", Result: ResultOK, Status: http.StatusOK}
	if err != nil {
		ch.Result, ch.Status, ch.Detail = p.classify(err)
		p.add(ch, start)
		return err
	}
	for _, e := range b.Entry {
		if h, err := fhir.ParseHeader(e.Resource); err == nil && h.ResourceType == "Patient" {
			p.r.Patient = h.ID
			ch.Count = 1
			break
		}
	}
	if p.r.Patient == "" {
		ch.Result, ch.Detail = ResultSkipped, "the server lists no patients"
		p.add(ch, start)
		return errors.New("no patient")
	}
	p.add(ch, start)
	return nil
}

// searchType searches typ for the test patient as the adapter plans it,
// then each search parameter the server or vendor lists.
func (p *prober) searchType(ctx context.Context, typ string) {
	start := time.Now()
	ch := Check{ID: "search " + typ, Area: "search", Type: typ}
	if p.r.Patient == "" {
		ch.Result, ch.Detail = ResultSkipped, "no test patient"
		p.add(ch, start)
		return
	}
	params, listed := p.capTypes[typ]
	queries, reason := p.a.Planner().Plan(typ, p.r.Patient)
	var notes []string
	if p.capTypes != nil && !listed {
		notes = append(notes, "not in CapabilityStatement")
	}
	if len(queries) == 0 {
		// Ask the server anyway: the probe reports what it says.
		notes = append(notes, "adapter: "+reason)
		queries = []*fhir.Query{fhir.NewQuery().Patient(p.r.Patient).Count(p.a.PageSize())}
	} else if len(queries) > 1 {
		notes = append(notes, fmt.Sprintf("fan-out of %d searches", len(queries)))
	}
	var sample json.RawMessage
	var err error
	for _, q := range queries {
		var b *fhir.Bundle
		b, err = p.c.Search(ctx, typ, q)
		if err != nil {
			break
		}
		for _, e := range b.Entry {
			if h, herr := fhir.ParseHeader(e.Resource); herr == nil && h.ResourceType == typ {
				ch.Count++
				if sample == nil {
					sample = e.Resource
				}
			}
		}
	}
	if err != nil {
		var d string
		ch.Result, ch.Status, d = p.classify(err)
		notes = append(notes, d)
	} else {
		ch.Result, ch.Status = ResultOK, http.StatusOK
	}
	ch.Detail = strings.Join(slices.DeleteFunc(notes, func(s string) bool { return s == "" }), "; ")
	p.add(ch, start)

	// Parameters: those the server lists, plus those the vendor documents.
	names := slices.Clone(params)
	names = append(names, p.a.Profile().Types[typ].Params...)
	slices.Sort(names)
	names = slices.Compact(names)
	for _, name := range names {
		if skipParam(name) {
			continue
		}
		p.searchParam(ctx, typ, name, queries[0], sample, err)
	}
}

// skipParam reports parameters the probe does not test one by one: the
// patient compartment itself and paging and result controls.
func skipParam(name string) bool {
	return name == "patient" || name == "subject" || strings.HasPrefix(name, "_count") ||
		name == "_cursor" || name == "_format" || name == "_include" || name == "_revinclude" || name == "_sort" || name == "_summary"
}

func (p *prober) searchParam(ctx context.Context, typ, name string, base *fhir.Query, sample json.RawMessage, typeErr error) {
	start := time.Now()
	ch := Check{ID: "param " + typ + " " + name, Area: "param", Type: typ, Param: name}
	if typeErr != nil {
		ch.Result, ch.Detail = ResultSkipped, "the type's search failed"
		p.add(ch, start)
		return
	}
	v := sampleValue(name, sample)
	if v == "" {
		ch.Result, ch.Detail = ResultSkipped, "no sample value"
		p.add(ch, start)
		return
	}
	q := base.Clone().Set(name, v)
	b, err := p.c.Search(ctx, typ, q)
	if err != nil {
		ch.Result, ch.Status, ch.Detail = p.classify(err)
	} else {
		ch.Result, ch.Status = ResultOK, http.StatusOK
		ch.Count = len(b.Entry)
	}
	p.add(ch, start)
}

// sampleValue derives a value for a search parameter from a resource the
// server returned, so that a supported parameter finds something.
func sampleValue(name string, raw json.RawMessage) string {
	var res map[string]json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &res) != nil {
		return ""
	}
	firstCoding := func(field string, withSystem bool) string {
		var cc struct {
			Coding []struct{ System, Code string }
		}
		var ccs []struct {
			Coding []struct{ System, Code string }
		}
		if json.Unmarshal(res[field], &ccs) == nil && len(ccs) > 0 {
			cc = ccs[0]
		} else {
			_ = json.Unmarshal(res[field], &cc)
		}
		if len(cc.Coding) == 0 || cc.Coding[0].Code == "" {
			var strs []string // AllergyIntolerance.category is a code list
			if json.Unmarshal(res[field], &strs) == nil && len(strs) > 0 {
				return strs[0]
			}
			return ""
		}
		if withSystem && cc.Coding[0].System != "" {
			return cc.Coding[0].System + "|" + cc.Coding[0].Code
		}
		return cc.Coding[0].Code
	}
	str := func(field string) string {
		var s string
		_ = json.Unmarshal(res[field], &s)
		return s
	}
	switch name {
	case "_id":
		return str("id")
	case "category":
		return firstCoding("category", false)
	case "code":
		if v := firstCoding("code", true); v != "" {
			return v
		}
		return firstCoding("medicationCodeableConcept", true)
	case "class":
		var c struct{ System, Code string }
		if json.Unmarshal(res["class"], &c) == nil && c.Code != "" {
			return strings.TrimPrefix(c.System+"|"+c.Code, "|")
		}
		return ""
	case "encounter":
		var ref struct{ Reference string }
		if json.Unmarshal(res["encounter"], &ref) == nil && ref.Reference != "" {
			return ref.Reference
		}
		var ctx struct {
			Encounter []struct{ Reference string }
		}
		if json.Unmarshal(res["context"], &ctx) == nil && len(ctx.Encounter) > 0 {
			return ctx.Encounter[0].Reference
		}
		return ""
	case "vaccine-code":
		return firstCoding("vaccineCode", true)
	case "type":
		return firstCoding("type", true)
	case "status", "intent":
		return str(name)
	case "clinical-status":
		return firstCoding("clinicalStatus", false)
	case "verification-status":
		return firstCoding("verificationStatus", false)
	case "date", "authoredon", "onset-date", "recorded-date", "issued", "_lastUpdated":
		return "ge1900-01-01"
	}
	return ""
}

// paging lists patients two at a time and follows next twice.
func (p *prober) paging(ctx context.Context) {
	start := time.Now()
	ch := Check{ID: "paging Patient", Area: "paging", Type: "Patient"}
	const want = 3
	var rels []string
	pages, nextIsSelf := 0, false
	errEnough := errors.New("enough pages")
	err := p.c.SearchAll(ctx, "Patient", fhir.NewQuery().Count(2), func(ctx context.Context, b *fhir.Bundle, _ string) error {
		pages++
		for _, l := range b.Link {
			rels = append(rels, l.Relation)
		}
		if n := b.LinkURL("next"); n != "" && n == b.LinkURL("self") {
			nextIsSelf = true
		}
		if pages >= want {
			return errEnough
		}
		return nil
	})
	slices.Sort(rels)
	rels = slices.Compact(rels)
	ch.Count = pages
	switch {
	case err == nil || errors.Is(err, errEnough):
		ch.Result, ch.Status = ResultOK, http.StatusOK
		ch.Detail = fmt.Sprintf("%d pages; links %s", pages, strings.Join(rels, ","))
		if nextIsSelf {
			ch.Detail += "; last page's next repeats self"
		}
	default:
		ch.Result, ch.Status, ch.Detail = p.classify(err)
	}
	p.add(ch, start)
}

// errorShapes asks for an unknown parameter and a missing resource.
func (p *prober) errorShapes(ctx context.Context) {
	start := time.Now()
	ch := Check{ID: "error unknown-param", Area: "error", Type: "Patient", Param: "ehrgate-probe-unknown"}
	_, err := p.c.Search(ctx, "Patient", fhir.NewQuery().Set("ehrgate-probe-unknown", "1").Count(1))
	if err == nil {
		ch.Result, ch.Status, ch.Detail = ResultIgnored, http.StatusOK, "unknown parameter accepted silently"
	} else {
		ch.Result, ch.Status, ch.Detail = p.classify(err)
	}
	p.add(ch, start)

	start = time.Now()
	ch = Check{ID: "error bogus-id", Area: "error", Type: "Patient"}
	_, err = p.c.Read(ctx, "Patient", "ehrgate-probe-no-such-id")
	if err == nil {
		ch.Result, ch.Status, ch.Detail = ResultOK, http.StatusOK, "a made-up id was found"
	} else {
		ch.Result, ch.Status, ch.Detail = p.classify(err)
	}
	p.add(ch, start)
}

func statusOf(err error) int {
	var fe *fhir.Error
	if errors.As(err, &fe) {
		return fe.StatusCode
	}
	return 0
}
