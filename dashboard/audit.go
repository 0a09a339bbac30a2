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
