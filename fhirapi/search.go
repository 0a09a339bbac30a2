package fhirapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"ehrgate/audit"
	"ehrgate/fhir"
	"ehrgate/smart"
	"ehrgate/store"
)

// query is a parsed search.
type query struct {
	typ          string
	filters      []filter
	count        int
	sorts        []sortSpec
	includes     []include
	revincludes  []include
	summaryCount bool
	elements     []string
	after        *position
	kept         url.Values // the parameters understood, for paging links
	clean        bool       // the cleaned form: records need their normalized form
}

// sortSpec is one _sort key.
type sortSpec struct {
	p    param
	desc bool
}

// include is one _include or _revinclude: the source type and its
// reference parameter (and, optionally, the target type).
type include struct {
	source, param, target string
	p                     param
}

// position is where a page ends: the sort values and the key of its last
// resource. Cursors in paging links carry it.
type position struct {
	Sort []string `json:"s,omitempty"`
	Conn string   `json:"c"`
	Type string   `json:"t,omitempty"`
	ID   string   `json:"i"`
}

func (p position) encode() string {
	b, _ := json.Marshal(p)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodePosition(s string) (*position, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("_cursor is malformed")
	}
	var p position
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, errors.New("_cursor is malformed")
	}
	return &p, nil
}

// searchError is a search the request got wrong (400).
type searchError struct{ msg string }

func (e *searchError) Error() string { return e.msg }

func badSearch(format string, args ...any) error {
	return &searchError{fmt.Sprintf(format, args...)}
}

// control parameters handled by the search itself.
var controlParams = map[string]bool{"_count": true, "_sort": true, "_include": true, "_revinclude": true,
	"_summary": true, "_elements": true, "_cursor": true, "_format": true, "_total": true}

// parseQuery reads a search's parameters. Unknown parameters are an
// error, unless lenient (Prefer: handling=lenient), when they are ignored
// and left out of the paging links (R4 search 3.1.1.3.7).
func (a *API) parseQuery(typ string, vals url.Values, lenient bool) (*query, error) {
	q := &query{typ: typ, count: a.o.DefaultCount, kept: url.Values{}}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vs := vals[k]
		name, mod, _ := strings.Cut(k, ":")
		if controlParams[name] {
			if mod != "" {
				return nil, badSearch("%s takes no modifier", name)
			}
			if err := a.parseControl(q, name, vs); err != nil {
				return nil, err
			}
			if name != "_cursor" && name != "_format" {
				q.kept[k] = vs
			}
			continue
		}
		if strings.Contains(name, ".") {
			if lenient {
				continue
			}
			return nil, badSearch("chained parameters (%s) are not supported", name)
		}
		p, ok := lookupParam(typ, name)
		if !ok {
			if lenient {
				continue
			}
			return nil, badSearch("%s is not a search parameter of %s on this server (see /fhir/metadata)", name, typ)
		}
		for _, v := range vs {
			f, err := newFilter(a.ns, typ, p, mod, v)
			if err != nil {
				return nil, badSearch("%v", err)
			}
			q.filters = append(q.filters, f)
		}
		q.kept[k] = vs
	}
	return q, nil
}

func (a *API) parseControl(q *query, name string, vs []string) error {
	last := vs[len(vs)-1]
	switch name {
	case "_count":
		n, err := strconv.Atoi(last)
		if err != nil || n < 0 {
			return badSearch("_count must be a whole number, not %q", last)
		}
		q.count = min(n, a.o.MaxCount)
	case "_sort":
		for _, s := range strings.Split(last, ",") {
			desc := strings.HasPrefix(s, "-")
			s = strings.TrimPrefix(s, "-")
			p, ok := lookupParam(q.typ, s)
			if !ok || (p.kind != dateParam && s != "_id") {
				return badSearch("cannot sort %s by %q: sort by _id, _lastUpdated or a date parameter", q.typ, s)
			}
			q.sorts = append(q.sorts, sortSpec{p, desc})
		}
	case "_include", "_revinclude":
		for _, v := range vs {
			in, err := parseInclude(q.typ, v, name == "_revinclude")
			if err != nil {
				return err
			}
			if name == "_include" {
				q.includes = append(q.includes, in)
			} else {
				q.revincludes = append(q.revincludes, in)
			}
		}
	case "_summary":
		switch last {
		case "count":
			q.summaryCount = true
		case "false":
		default:
			return badSearch("_summary=%s is not supported (count or false)", last)
		}
	case "_elements":
		for _, e := range strings.Split(last, ",") {
			if e = strings.TrimSpace(e); e != "" {
				q.elements = append(q.elements, e)
			}
		}
	case "_cursor":
		p, err := decodePosition(last)
		if err != nil {
			return badSearch("%v", err)
		}
		q.after = p
	}
	return nil
}

// parseInclude reads "Source:param" or "Source:param:Target".
func parseInclude(typ, v string, rev bool) (include, error) {
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return include{}, badSearch("%q is not Type:parameter[:TargetType]", v)
	}
	in := include{source: parts[0], param: parts[1]}
	if len(parts) == 3 {
		in.target = parts[2]
	}
	if !isServed(in.source) {
		return in, badSearch("cannot include from %s: not served", in.source)
	}
	p, ok := lookupParam(in.source, in.param)
	if !ok || p.kind != referenceParam {
		return in, badSearch("%s is not a reference parameter of %s", in.param, in.source)
	}
	in.p = p
	switch {
	case !rev && in.source != typ:
		return in, badSearch("_include=%s: the source type must be %s", v, typ)
	case rev && (typ != "Patient" || (in.param != "patient" && in.param != "subject")):
		return in, badSearch("_revinclude supports Type:patient and Type:subject on Patient searches")
	}
	return in, nil
}

// hit is a matching resource with its sort values.
type hit struct {
	rec  store.Record
	sort []string
}

// result is one page of a search.
type result struct {
	hits  []hit
	total int // -1: not counted
	next  *position
}

// maxSorted bounds the matches a sorted search that no patient narrows
// may gather.
const maxSorted = 10000

// execute runs q within what g allows.
func (a *API) execute(ctx context.Context, q *query, g grants) (result, error) {
	now := a.o.Now()
	keep := func(rec store.Record) (hit, bool, error) {
		s, err := decode(&rec)
		if err != nil {
			return hit{}, false, err
		}
		if !g.allows(s, now) {
			return hit{}, false, nil
		}
		for _, f := range q.filters {
			if !f.matches(s, now) {
				return hit{}, false, nil
			}
		}
		return hit{rec: rec, sort: sortValues(q.sorts, s)}, true, nil
	}
	cands, narrowed, err := a.candidates(ctx, q, g)
	if err != nil {
		return result{}, err
	}
	if narrowed {
		var hits []hit
		for _, rec := range cands {
			h, ok, err := keep(rec)
			if err != nil {
				return result{}, err
			}
			if ok {
				hits = append(hits, h)
			}
		}
		return q.page(hits), nil
	}
	// A scan of the whole type, in key order.
	full := len(q.sorts) > 0 || q.summaryCount
	after := store.Key{}
	if q.after != nil && !full {
		after = store.Key{Connection: q.after.Conn, Type: q.typ, ID: q.after.ID}
	}
	var hits []hit
	examined := 0
	for {
		recs, err := a.o.Store.ScanCurrentPage(ctx, store.ScanQuery{Type: q.typ, After: after, Limit: 500, RawOnly: !q.clean})
		if err != nil {
			return result{}, fmt.Errorf("scanning %s: %w", q.typ, err)
		}
		if len(recs) == 0 {
			break
		}
		for _, rec := range recs {
			after = rec.Key
			examined++
			if _, ok := a.o.Connections[rec.Connection]; !ok {
				continue
			}
			h, ok, err := keep(rec)
			if err != nil {
				return result{}, err
			}
			if !ok {
				continue
			}
			hits = append(hits, h)
			if full && len(hits) > maxSorted {
				return result{}, badSearch("more than %d %s match; narrow the search (by patient, code or date) to sort it", maxSorted, q.typ)
			}
			if !full && len(hits) > q.count {
				return result{hits: hits[:q.count], total: -1, next: &position{Conn: hits[q.count-1].rec.Connection, ID: hits[q.count-1].rec.ID}}, nil
			}
		}
		if !full && examined >= a.o.ScanBudget {
			// Bounded work per page: what was found, and where to go on.
			return result{hits: hits, total: -1, next: &position{Conn: after.Connection, ID: after.ID}}, nil
		}
	}
	if full {
		return q.page(hits), nil
	}
	return result{hits: hits, total: -1}, nil
}

// candidates gathers what a search can be narrowed to: the patient's
// compartment, the ids asked for, patients by identifier. narrowed is
// false when the whole type must be scanned.
func (a *API) candidates(ctx context.Context, q *query, g grants) ([]store.Record, bool, error) {
	var patients []ref
	narrowedByPatient := false
	for _, f := range q.filters {
		if (f.p.name == "patient" || f.p.name == "subject") && f.modifier == "" {
			patients = intersectRefs(patients, f.refs, !narrowedByPatient)
			narrowedByPatient = true
		}
	}
	if g.patientOnly() {
		if narrowedByPatient {
			ok := false
			for _, p := range patients {
				ok = ok || (p.connection == g.patient.connection && p.id == g.patient.id)
			}
			if !ok {
				return nil, true, nil // another patient: nothing this token may see
			}
		}
		patients, narrowedByPatient = []ref{g.patient}, true
	}
	var out []store.Record
	get := func(conn, typ, id string) error {
		rec, err := a.o.Store.Get(ctx, conn, typ, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err == nil {
			out = append(out, rec)
		}
		return err
	}
	switch {
	case narrowedByPatient:
		for _, p := range patients {
			if p.id == "" || p.typ != "Patient" {
				continue
			}
			var err error
			if q.typ == "Patient" {
				err = get(p.connection, "Patient", p.id)
			} else {
				var recs []store.Record
				recs, err = a.listByPatient(ctx, p.connection, p.id, q.typ, q.clean)
				out = append(out, recs...)
			}
			if err != nil {
				return nil, false, fmt.Errorf("listing a patient's %s: %w", q.typ, err)
			}
		}
		return out, true, nil
	}
	for _, f := range q.filters {
		if f.p.name == "_id" && f.modifier == "" {
			for _, v := range f.raw {
				if conn, id, ok := a.ns.Parse(v); ok {
					if err := get(conn, q.typ, id); err != nil {
						return nil, false, fmt.Errorf("reading %s by id: %w", q.typ, err)
					}
				}
			}
			return out, true, nil
		}
	}
	if q.typ == "Patient" {
		for _, f := range q.filters {
			if f.p.name != "identifier" || f.modifier != "" {
				continue
			}
			seen := map[store.Key]bool{}
			for _, v := range f.raw {
				_, value, found := strings.Cut(v, "|")
				if !found {
					value = v
				}
				if value == "" {
					return nil, false, nil // system| only: scan
				}
				// Every identifier value is a search key of its patient
				// (refresh.PatientKeys), so this finds a superset.
				recs, err := a.o.Store.SearchPatients(ctx, store.PatientQuery{Text: value, Limit: 100000})
				if err != nil {
					return nil, false, fmt.Errorf("searching patients by identifier: %w", err)
				}
				for _, r := range recs {
					if k := r.Key; !seen[k] {
						seen[k] = true
						out = append(out, r)
					}
				}
			}
			return out, true, nil
		}
	}
	return nil, false, nil
}

// intersectRefs ANDs a patient filter's alternatives with those before it
// (first: the first patient filter).
func intersectRefs(have, next []ref, first bool) []ref {
	if first {
		return append([]ref(nil), next...)
	}
	var out []ref
	for _, h := range have {
		for _, n := range next {
			if h == n {
				out = append(out, h)
			}
		}
	}
	return out
}

// sortValues are a resource's values for the _sort keys, as strings that
// order like the values (UTC RFC 3339 at fixed width); a missing value
// sorts last either way.
func sortValues(specs []sortSpec, s subject) []string {
	out := make([]string, len(specs))
	for i, sp := range specs {
		v := ""
		if sp.p.name == "_id" {
			v = ServedID(s.rec.Connection, s.rec.ID)
		} else {
			var best *span
			for _, path := range sp.p.paths {
				for _, n := range s.values(path) {
					if x, ok := nodeSpan(n); ok && (best == nil || x.lo.Before(best.lo)) {
						best = &x
					}
				}
			}
			if sp.p.name == "_lastUpdated" && best == nil && !s.rec.LastUpdated.IsZero() {
				best = &span{lo: s.rec.LastUpdated}
			}
			if best != nil {
				v = best.lo.UTC().Format("2006-01-02T15:04:05.000000000Z")
			}
		}
		out[i] = v
	}
	return out
}

// less orders hits by the sort keys, then by connection and id.
func (q *query) less(a, b hit) bool {
	for i, sp := range q.sorts {
		x, y := a.sort[i], b.sort[i]
		if x == y {
			continue
		}
		switch {
		case x == "":
			return false
		case y == "":
			return true
		}
		return (x < y) != sp.desc
	}
	if a.rec.Connection != b.rec.Connection {
		return a.rec.Connection < b.rec.Connection
	}
	return a.rec.ID < b.rec.ID
}

// page sorts every hit and cuts the page after the cursor.
func (q *query) page(hits []hit) result {
	sort.SliceStable(hits, func(i, j int) bool { return q.less(hits[i], hits[j]) })
	res := result{total: len(hits)}
	start := 0
	if p := q.after; p != nil {
		at := hit{rec: store.Record{Key: store.Key{Connection: p.Conn, ID: p.ID}}, sort: p.Sort}
		if len(at.sort) != len(q.sorts) {
			at.sort = make([]string, len(q.sorts))
		}
		start = sort.Search(len(hits), func(i int) bool { return q.less(at, hits[i]) })
	}
	end := min(start+q.count, len(hits))
	res.hits = hits[start:end]
	if end < len(hits) && end > start {
		last := hits[end-1]
		res.next = &position{Sort: last.sort, Conn: last.rec.Connection, ID: last.rec.ID}
	}
	return res
}

// search serves GET /fhir/{type} and POST /fhir/{type}/_search.
func (a *API) search(w http.ResponseWriter, r *http.Request) {
	c, ok := a.begin(w, r)
	if !ok {
		return
	}
	typ := r.PathValue("type")
	vals := r.URL.Query()
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			fhir.WriteOutcome(w, http.StatusBadRequest, "error", "invalid", "The form body could not be read.")
			return
		}
		vals = r.Form
	}
	ev := audit.Search(c.agent, audit.PatientRef{}, vals.Encode())
	if !isServed(typ) {
		a.fail(c, ev, http.StatusNotFound, "not-supported", fmt.Sprintf("%s is not a resource type this API serves.", typ))
		return
	}
	g, err := a.grantsFor(c, typ, smart.PermSearch)
	if err != nil {
		a.fail(c, ev, http.StatusForbidden, "forbidden", err.Error()+".")
		return
	}
	lenient := strings.Contains(r.Header.Get("Prefer"), "handling=lenient")
	q, err := a.parseQuery(typ, vals, lenient)
	if err == nil {
		q.clean = c.clean
		var res result
		res, err = a.execute(r.Context(), q, g)
		if err == nil {
			a.answerSearch(c, ev, q, g, res)
			return
		}
	}
	var se *searchError
	if errors.As(err, &se) {
		a.fail(c, ev, http.StatusBadRequest, "invalid", se.msg)
		return
	}
	a.o.Logger.ErrorContext(r.Context(), "API search failed", "type", typ, "error", err)
	a.fail(c, ev, http.StatusInternalServerError, "exception", "The search could not be run.")
}

// bundleEntry is one entry of a searchset.
type bundleEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Search   struct {
		Mode string `json:"mode"`
	} `json:"search"`
}

type bundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type bundle struct {
	ResourceType string        `json:"resourceType"`
	Type         string        `json:"type"`
	Total        *int          `json:"total,omitempty"`
	Link         []bundleLink  `json:"link"`
	Entry        []bundleEntry `json:"entry,omitempty"`
}

// encode writes the bundle. The resources are copied as they are (they
// are valid JSON, made by served): encoding/json would scan and compact
// every one of them again.
func (b bundle) encode() []byte {
	var buf bytes.Buffer
	str := func(s string) {
		q, _ := json.Marshal(s)
		buf.Write(q)
	}
	buf.WriteString(`{"resourceType":"Bundle","type":`)
	str(b.Type)
	if b.Total != nil {
		buf.WriteString(`,"total":`)
		buf.WriteString(strconv.Itoa(*b.Total))
	}
	buf.WriteString(`,"link":[`)
	for i, l := range b.Link {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"relation":`)
		str(l.Relation)
		buf.WriteString(`,"url":`)
		str(l.URL)
		buf.WriteByte('}')
	}
	buf.WriteByte(']')
	if len(b.Entry) > 0 {
		buf.WriteString(`,"entry":[`)
		for i, e := range b.Entry {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString(`{"fullUrl":`)
			str(e.FullURL)
			buf.WriteString(`,"resource":`)
			buf.Write(e.Resource)
			buf.WriteString(`,"search":{"mode":`)
			str(e.Search.Mode)
			buf.WriteString(`}}`)
		}
		buf.WriteByte(']')
	}
	buf.WriteString("}\n")
	return buf.Bytes()
}

// answerSearch renders the page, its includes and links, records the
// access and sends the Bundle.
func (a *API) answerSearch(c *call, ev audit.Event, q *query, g grants, res result) {
	base := a.base(c.r)
	self := base + "/" + q.typ
	if enc := q.kept.Encode(); enc != "" {
		self += "?" + enc
	}
	b := bundle{ResourceType: "Bundle", Type: "searchset", Link: []bundleLink{{"self", self}}}
	if res.total >= 0 {
		b.Total = &res.total
	}
	if q.summaryCount {
		if res.total < 0 {
			n := len(res.hits)
			b.Total = &n
		}
		a.finishSearch(c, ev, nil, b)
		return
	}
	if res.next != nil {
		v := url.Values{}
		for k, vs := range q.kept {
			v[k] = vs
		}
		v.Set("_cursor", res.next.encode())
		b.Link = append(b.Link, bundleLink{"next", base + "/" + q.typ + "?" + v.Encode()})
	}
	var recs []*store.Record
	seen := map[store.Key]bool{}
	add := func(rec *store.Record, mode string) error {
		k := rec.Key
		k.VersionID = ""
		if seen[k] {
			return nil
		}
		seen[k] = true
		body, err := a.render(rec, q.elements, c.clean)
		if err != nil {
			return err
		}
		e := bundleEntry{FullURL: base + "/" + rec.Type + "/" + ServedID(rec.Connection, rec.ID), Resource: body}
		e.Search.Mode = mode
		b.Entry = append(b.Entry, e)
		recs = append(recs, rec)
		return nil
	}
	for i := range res.hits {
		if err := add(&res.hits[i].rec, "match"); err != nil {
			a.o.Logger.ErrorContext(c.r.Context(), "API search: stored resource unreadable", "type", q.typ, "error", err)
			a.fail(c, ev, http.StatusInternalServerError, "exception", "A stored resource could not be served.")
			return
		}
	}
	incl, err := a.included(c, q, res.hits)
	if err == nil {
		for i := range incl {
			if err = add(&incl[i], "include"); err != nil {
				break
			}
		}
	}
	if err != nil {
		a.o.Logger.ErrorContext(c.r.Context(), "API search: includes failed", "type", q.typ, "error", err)
		a.fail(c, ev, http.StatusInternalServerError, "exception", "The included resources could not be read.")
		return
	}
	a.finishSearch(c, ev, recs, b)
}

// finishSearch names the patient in the event when the page is one
// patient's, and sends the bundle.
func (a *API) finishSearch(c *call, ev audit.Event, recs []*store.Record, b bundle) {
	var who *audit.PatientRef
	one := true
	for _, rec := range recs {
		p := patientOf(rec)
		switch {
		case p.ID == "":
		case who == nil:
			who = &p
		case *who != p:
			one = false
		}
	}
	if who != nil && one {
		ev.Patient = *who
	}
	a.succeed(c, ev, http.StatusOK, b.encode())
}

// included resolves the page's _include and _revinclude targets, each
// checked against the caller's scopes and compartment like a read.
func (a *API) included(c *call, q *query, hits []hit) ([]store.Record, error) {
	if len(q.includes) == 0 && len(q.revincludes) == 0 {
		return nil, nil
	}
	ctx := c.r.Context()
	now := a.o.Now()
	grantCache := map[string]*grants{}
	allowed := func(rec *store.Record) bool {
		gp, ok := grantCache[rec.Type]
		if !ok {
			g, err := a.grantsFor(c, rec.Type, smart.PermRead)
			if err == nil {
				gp = &g
			}
			grantCache[rec.Type] = gp
		}
		if gp == nil {
			return false
		}
		s, err := decode(rec)
		return err == nil && gp.allows(s, now)
	}
	var out []store.Record
	for _, h := range hits {
		s, err := decode(&h.rec)
		if err != nil {
			return nil, err
		}
		for _, in := range q.includes {
			var targets []ref
			if (in.param == "patient" || in.param == "subject") && h.rec.PatientID != "" {
				targets = append(targets, ref{h.rec.Connection, "Patient", h.rec.PatientID})
			} else {
				for _, path := range in.p.paths {
					for _, n := range s.values(path) {
						m, _ := n.(map[string]any)
						r, _ := m["reference"].(string)
						if t, id, ok := splitReference(r); ok {
							targets = append(targets, ref{h.rec.Connection, t, id})
						}
					}
				}
			}
			for _, t := range targets {
				if (in.target != "" && t.typ != in.target) || !isServed(t.typ) {
					continue
				}
				rec, err := a.o.Store.Get(ctx, t.connection, t.typ, t.id)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return nil, err
				}
				if allowed(&rec) {
					out = append(out, rec)
				}
			}
		}
		for _, in := range q.revincludes {
			recs, err := a.listByPatient(ctx, h.rec.Connection, h.rec.ID, in.source, c.clean)
			if err != nil {
				return nil, err
			}
			for i := range recs {
				if allowed(&recs[i]) {
					out = append(out, recs[i])
				}
			}
		}
	}
	return out, nil
}

// everything serves Patient/{id}/$everything: the patient and every
// resource of the served types in their compartment that the token may
// read, paged (_count, cursor), narrowed by _type and _since.
func (a *API) everything(w http.ResponseWriter, r *http.Request) {
	c, ok := a.begin(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	ev := audit.Search(c.agent, audit.PatientRef{}, r.URL.RawQuery)
	ev.Subtype = []audit.Coding{audit.Interaction("operation")}
	if r.PathValue("op") != "$everything" {
		a.fail(c, ev, http.StatusNotFound, "not-supported", "The only Patient operation served is $everything.")
		return
	}
	conn, pid, ok := a.ns.Parse(id)
	if !ok {
		a.fail(c, ev, http.StatusNotFound, "not-found", "Patient/"+id+" is not known.")
		return
	}
	ev.Patient = audit.PatientRef{Connection: conn, ID: pid}
	g, err := a.grantsFor(c, "Patient", smart.PermRead)
	if err != nil {
		a.fail(c, ev, http.StatusForbidden, "forbidden", err.Error()+".")
		return
	}
	ctx := r.Context()
	pat, err := a.o.Store.Get(ctx, conn, "Patient", pid)
	if err == nil {
		var s subject
		if s, err = decode(&pat); err == nil && !g.allows(s, a.o.Now()) {
			err = store.ErrNotFound
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		a.fail(c, ev, http.StatusNotFound, "not-found", "Patient/"+id+" is not known.")
		return
	}
	if err != nil {
		a.fail(c, ev, http.StatusInternalServerError, "exception", "The patient could not be read.")
		return
	}
	vals := r.URL.Query()
	types := ServedTypes[1:]
	if t := vals.Get("_type"); t != "" {
		types = nil
		for _, x := range strings.Split(t, ",") {
			if !isServed(x) || x == "Patient" {
				a.fail(c, ev, http.StatusBadRequest, "invalid", fmt.Sprintf("_type: %s is not served (besides the Patient)", x))
				return
			}
			types = append(types, x)
		}
	}
	var since time.Time
	if s := vals.Get("_since"); s != "" {
		sp, err := parseSpan(s)
		if err != nil {
			a.fail(c, ev, http.StatusBadRequest, "invalid", "_since must be an instant.")
			return
		}
		since = sp.lo
	}
	q := &query{typ: "Patient", count: a.o.DefaultCount, kept: url.Values{}}
	for _, k := range []string{"_type", "_since", "_count"} {
		if v, ok := vals[k]; ok {
			q.kept[k] = v
		}
	}
	if v := vals.Get("_count"); v != "" {
		if err := a.parseControl(q, "_count", []string{v}); err != nil {
			a.fail(c, ev, http.StatusBadRequest, "invalid", err.Error())
			return
		}
	}
	if v := vals.Get("_cursor"); v != "" {
		if err := a.parseControl(q, "_cursor", []string{v}); err != nil {
			a.fail(c, ev, http.StatusBadRequest, "invalid", err.Error())
			return
		}
	}
	// The order: the Patient, then each type in turn, by id.
	q.sorts = []sortSpec{{p: param{name: "$type"}}}
	hits := []hit{{rec: pat, sort: []string{"00"}}}
	now := a.o.Now()
	for i, typ := range types {
		tg, err := a.grantsFor(c, typ, smart.PermRead)
		if err != nil {
			continue // types the token may not read are left out
		}
		recs, err := a.listByPatient(ctx, conn, pid, typ, c.clean)
		if err != nil {
			a.fail(c, ev, http.StatusInternalServerError, "exception", "The patient's record could not be read.")
			return
		}
		for _, rec := range recs {
			if !since.IsZero() && !rec.LastUpdated.IsZero() && rec.LastUpdated.Before(since) {
				continue
			}
			s, err := decode(&rec)
			if err != nil || !tg.allows(s, now) {
				continue
			}
			hits = append(hits, hit{rec: rec, sort: []string{fmt.Sprintf("%02d", i+1)}})
		}
	}
	res := q.page(hits)
	base := a.base(r)
	b := bundle{ResourceType: "Bundle", Type: "searchset", Total: &res.total}
	self := base + "/Patient/" + id + "/$everything"
	if enc := q.kept.Encode(); enc != "" {
		self += "?" + enc
	}
	b.Link = []bundleLink{{"self", self}}
	if res.next != nil {
		v := url.Values{}
		for k, vs := range q.kept {
			v[k] = vs
		}
		v.Set("_cursor", res.next.encode())
		b.Link = append(b.Link, bundleLink{"next", base + "/Patient/" + id + "/$everything?" + v.Encode()})
	}
	for i := range res.hits {
		rec := &res.hits[i].rec
		body, err := a.render(rec, nil, c.clean)
		if err != nil {
			a.fail(c, ev, http.StatusInternalServerError, "exception", "A stored resource could not be served.")
			return
		}
		e := bundleEntry{FullURL: base + "/" + rec.Type + "/" + ServedID(rec.Connection, rec.ID), Resource: body}
		e.Search.Mode = "match"
		b.Entry = append(b.Entry, e)
	}
	a.succeed(c, ev, http.StatusOK, b.encode())
}

// listByPatient lists a patient's current resources of a type, with their
// normalized form only when the cleaned form needs it.
func (a *API) listByPatient(ctx context.Context, conn, patient, typ string, clean bool) ([]store.Record, error) {
	if clean {
		return a.o.Store.ListByPatient(ctx, conn, patient, typ)
	}
	return a.o.Store.ListRawByPatient(ctx, conn, patient, typ)
}
