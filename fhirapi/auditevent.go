package fhirapi

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"ehrgate/audit"
	"ehrgate/smart"
	"ehrgate/store"
)

// auditEvents serves GET /fhir/AuditEvent: the audit trail, to auditors.
// It needs a user/ or system/ scope naming AuditEvent itself with search
// (user/AuditEvent.rs): a wildcard (system/*.rs) does not reach the trail,
// and patient/ scopes never do. Parameters: patient (a served id), agent
// (a user or client id), date (ge, gt, le, lt; several AND), type and
// subtype (codes, optionally system|code), _count; paging follows the
// trail's sequence. Each event is served as stored (its patient named by
// the source's id with the connection in entity.detail), which is what
// the hash chain covers. Reading the trail is itself recorded.
func (a *API) auditEvents(w http.ResponseWriter, r *http.Request) {
	c, ok := a.begin(w, r)
	if !ok {
		return
	}
	vals := r.URL.Query()
	ev := audit.Search(c.agent, audit.PatientRef{}, vals.Encode())
	if a.o.Trail == nil {
		a.fail(c, ev, http.StatusNotFound, "not-supported", "This server does not serve its audit trail.")
		return
	}
	allowed := false
	for _, s := range c.who.Scopes {
		allowed = allowed || (s.IsResource() && s.Type == "AuditEvent" && s.Context != smart.ContextPatient &&
			s.Perms&smart.PermSearch != 0 && s.Query == "")
	}
	if !allowed {
		a.fail(c, ev, http.StatusForbidden, "forbidden", "Reading the audit trail needs an auditor's scope naming AuditEvent (user/AuditEvent.rs or system/AuditEvent.rs).")
		return
	}
	q := store.AuditQuery{Limit: a.o.DefaultCount + 1}
	bad := func(format string, args ...any) {
		a.fail(c, ev, http.StatusBadRequest, "invalid", fmt.Sprintf(format, args...))
	}
	for k, vs := range vals {
		v := vs[len(vs)-1]
		switch k {
		case "patient":
			id := v[strings.LastIndex(v, "/")+1:]
			conn, pid, ok := a.ns.Parse(id)
			if !ok {
				bad("patient %q is not a served Patient id", v)
				return
			}
			q.Connection, q.Patient = conn, pid
			ev.Patient = audit.PatientRef{Connection: conn, ID: pid}
		case "agent":
			q.Agent = v
		case "type", "subtype":
			if _, code, found := strings.Cut(v, "|"); found {
				v = code
			}
			if k == "type" {
				q.Type = v
			} else {
				q.Subtype = v
			}
		case "date":
			for _, v := range vs {
				d, err := parseDateTest(v)
				if err != nil {
					bad("date: %v", err)
					return
				}
				switch d.prefix {
				case "ge", "eq":
					q.Since = d.s.lo
				case "gt":
					q.Since = d.s.hi
				case "lt":
					q.Until = d.s.lo
				case "le":
					q.Until = d.s.hi
				default:
					bad("date on AuditEvent takes ge, gt, le or lt")
					return
				}
				if d.prefix == "eq" {
					q.Until = d.s.hi
				}
			}
		case "_count":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				bad("_count must be a positive whole number")
				return
			}
			q.Limit = min(n, a.o.MaxCount) + 1
		case "_cursor":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				bad("_cursor is malformed")
				return
			}
			q.After = n
		case "_format":
		default:
			bad("%s is not a search parameter of AuditEvent on this server (patient, agent, date, type, subtype, _count)", k)
			return
		}
	}
	entries, err := a.o.Trail.QueryAudit(r.Context(), q)
	if err != nil {
		a.o.Logger.ErrorContext(r.Context(), "reading the audit trail failed", "error", err)
		a.fail(c, ev, http.StatusInternalServerError, "exception", "The audit trail could not be read.")
		return
	}
	base := a.base(r)
	kept := r.URL.Query()
	kept.Del("_cursor")
	self := base + "/AuditEvent"
	if enc := kept.Encode(); enc != "" {
		self += "?" + enc
	}
	b := bundle{Type: "searchset", Link: []bundleLink{{"self", self}}}
	if len(entries) == q.Limit {
		entries = entries[:q.Limit-1]
		kept.Set("_cursor", strconv.FormatInt(entries[len(entries)-1].Seq, 10))
		b.Link = append(b.Link, bundleLink{"next", base + "/AuditEvent?" + kept.Encode()})
	}
	for _, ent := range entries {
		res, err := audit.Resource(ent)
		if err != nil {
			a.fail(c, ev, http.StatusInternalServerError, "exception", "An audit entry could not be served.")
			return
		}
		e := bundleEntry{FullURL: base + "/AuditEvent/" + strconv.FormatInt(ent.Seq, 10), Resource: res}
		e.Search.Mode = "match"
		b.Entry = append(b.Entry, e)
	}
	a.succeed(c, ev, http.StatusOK, b.encode())
}
