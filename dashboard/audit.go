package dashboard

import (
	"net/http"

	"ehrgate/audit"
	"ehrgate/login"
)

// dashboardClient is the client the audit trail names for dashboard
// pages, beside the signed-in person (when login is on).
const dashboardClient = "ehrgate-dashboard"

// recordAccess records an access to patient data before the page showing
// it is sent. It reports false when the access could not be recorded: the
// refusal page was sent instead (fail closed: no record, no data).
func (d *Dashboard) recordAccess(w http.ResponseWriter, r *http.Request, e audit.Event) bool {
	if d.opts.Audit == nil {
		return true
	}
	e.Agent = audit.Agent{ClientID: dashboardClient, Address: audit.Address(r.RemoteAddr)}
	if p, ok := login.PersonFrom(r.Context()); ok {
		e.Agent.UserID, e.Agent.Name = p.ID, p.Name
	}
	e.Outcome = audit.OutcomeSuccess
	if d.opts.RequestID != nil {
		e.RequestID = d.opts.RequestID(r.Context())
	}
	if err := d.opts.Audit.Record(r.Context(), e); err != nil {
		ref := d.reference(r.Context())
		d.log.ErrorContext(r.Context(), "dashboard: recording the access in the audit trail; the page is not shown",
			"err", err, "ref", ref)
		d.render(w, r, http.StatusServiceUnavailable, "error", "Not shown", errorBody{
			Status:    http.StatusServiceUnavailable,
			Heading:   "This page cannot be shown right now",
			Message:   "Every view of patient data is recorded in the audit trail, and this one could not be. Please try again; if the problem persists, contact support and quote the reference below.",
			Reference: ref,
		})
		return false
	}
	return true
}

// recordRefusal records a refused attempt to see patient data (a chart or
// a search by someone whose role does not allow it): BALP records refused
// accesses too, with outcome 4 and no resources. The refusal stands
// whether or not it could be recorded.
func (d *Dashboard) recordRefusal(r *http.Request) {
	if d.opts.Audit == nil {
		return
	}
	who := audit.Agent{ClientID: dashboardClient, Address: audit.Address(r.RemoteAddr)}
	if p, ok := login.PersonFrom(r.Context()); ok {
		who.UserID, who.Name = p.ID, p.Name
	}
	var e audit.Event
	if conn, id := r.PathValue("connection"), r.PathValue("id"); conn != "" && id != "" {
		e = audit.Read(who, audit.PatientRef{Connection: conn, ID: id})
	} else {
		e = audit.Search(who, audit.PatientRef{}, r.URL.RawQuery)
	}
	e.Outcome, e.OutcomeDesc = audit.OutcomeMinor, "forbidden: the role does not give access to patient data"
	if d.opts.RequestID != nil {
		e.RequestID = d.opts.RequestID(r.Context())
	}
	if err := d.opts.Audit.Record(r.Context(), e); err != nil {
		d.log.ErrorContext(r.Context(), "dashboard: recording a refused access", "err", err)
	}
}
