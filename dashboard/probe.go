package dashboard

import (
	"net/http"

	"ehrgate/probe"
)

// probeBody is the data of a connection's compatibility-matrix page.
type probeBody struct {
	Connection string
	Report     *probe.Report // nil when never probed
	Rows       []probeRow
	Problems   int
}

type probeRow struct {
	Area, Type, Param, Result, Detail string
	Status                            int
	Count                             int
	DurationMS                        int64
	OK                                bool
}

// probe shows the latest `ehrgate probe` matrix of a connection: what the
// endpoint really supports, as of the probe's time.
func (d *Dashboard) probe(w http.ResponseWriter, r *http.Request) {
	conn := r.PathValue("connection")
	if d.opts.Probe == nil {
		d.notFound(w, r)
		return
	}
	rep, err := d.opts.Probe(r.Context(), conn)
	if err != nil {
		d.fail(w, r, "reading the probe report", err)
		return
	}
	body := probeBody{Connection: conn}
	if rep != nil {
		body.Report = rep
		for _, c := range rep.Checks {
			ok := c.Result == "ok" || c.Result == "skipped" || c.Result == "ignored"
			if !ok {
				body.Problems++
			}
			body.Rows = append(body.Rows, probeRow{Area: c.Area, Type: c.Type, Param: c.Param, Result: c.Result,
				Detail: c.Detail, Status: c.Status, Count: c.Count, DurationMS: c.DurationMS, OK: ok})
		}
	}
	d.render(w, r, http.StatusOK, "probe", "Compatibility of "+conn, body)
}
