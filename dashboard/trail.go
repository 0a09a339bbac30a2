package dashboard

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"ehrgate/store"
)

// Trail is what the audit page reads: the store's audit trail (every
// store backend has it). Implementations are safe for concurrent use.
type Trail interface {
	QueryAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error)
}

// auditPageSize is how many entries the audit page shows at once.
const auditPageSize = 200

// auditBody is the data of the audit page.
type auditBody struct {
	Agent, Patient string
	Since          string // YYYY-MM-DD shown in the form
	Entries        []store.AuditEntry
	Next           string // the next page's URL, "" when none
	Ref            string // set when the trail could not be read
}

// trail shows the audit trail: who accessed which patient's data, when and
// how it ended (no event bodies), filtered by agent, patient and day.
func (d *Dashboard) trail(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	b := auditBody{Agent: q.Get("agent"), Patient: q.Get("patient"), Since: q.Get("since")}
	since := d.now().Add(-24 * time.Hour)
	if t, err := time.Parse(time.DateOnly, b.Since); err == nil {
		since = t
	} else {
		b.Since = since.Format(time.DateOnly)
	}
	after, _ := strconv.ParseInt(q.Get("after"), 10, 64)
	entries, err := d.opts.Trail.QueryAudit(r.Context(), store.AuditQuery{Agent: b.Agent, Patient: b.Patient,
		Since: since, After: after, Limit: auditPageSize})
	if err != nil {
		b.Ref = d.reference(r.Context())
		d.log.ErrorContext(r.Context(), "dashboard: reading the audit trail", "err", err, "ref", b.Ref)
	}
	b.Entries = entries
	if len(entries) == auditPageSize {
		nq := r.URL.Query()
		nq.Set("after", strconv.FormatInt(entries[len(entries)-1].Seq, 10))
		b.Next = "/audit?" + nq.Encode()
	}
	d.render(w, r, http.StatusOK, "audit", "Audit trail", b)
}
