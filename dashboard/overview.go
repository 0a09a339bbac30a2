package dashboard

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"ehrgate/hl7/feedhealth"
	"ehrgate/login"
	"ehrgate/store"
)

// searchForm is the patient search form, pre-filled with the last query.
type searchForm struct {
	Q            string
	BirthDate    string
	Connection   string
	Connections  []string // choices for the connection filter
	BadBirthDate bool     // BirthDate failed validation
}

// countRow is one resource type's counts across connections.
type countRow struct {
	Type   string
	Counts []int // parallel to overviewBody.Connections
	Total  int
}

// overviewBody is the data of the overview page.
type overviewBody struct {
	Statuses    []ConnectionStatus
	ShowStatus  bool
	ShowProbe   bool // link each connection to its compatibility matrix
	ShowSearch  bool // the viewer may search patients
	Connections []string
	Rows        []countRow
	Totals      []int
	Total       int
	Versions    int
	Quarantined int
	StatsRef    string // set when the counts could not be read
	Form        searchForm
	Feeds       []feedLink // HL7 v2 feeds, for operations viewers
}

// feedLink is an HL7 feed on the overview, with its alerts.
type feedLink struct {
	Name        string
	LastMessage time.Time
	Alerts      []feedhealth.Alert
}

func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	body := overviewBody{ShowStatus: d.opts.Status != nil && d.can(r, login.SeeOperations), ShowProbe: d.opts.Probe != nil,
		ShowSearch: d.can(r, login.SeePatients)}
	body.Statuses = d.statuses(ctx)
	stats, err := d.r.Stats(ctx)
	if err != nil {
		body.StatsRef = d.reference(ctx)
		d.log.ErrorContext(ctx, "dashboard: reading store stats", "err", err, "ref", body.StatsRef)
	} else {
		body.Versions, body.Quarantined = stats.Versions, stats.Quarantined
		body.Connections, body.Rows, body.Totals, body.Total = pivot(stats.Resources)
	}
	body.Form.Connections = connectionNames(body.Statuses, stats.Resources)
	if d.can(r, login.SeeOperations) {
		for _, name := range d.feedNames(ctx) {
			l := feedLink{Name: name}
			if rep, err := feedhealth.Build(ctx, d.opts.Feeds, name, d.now(), feedhealth.Options{Problems: 1,
				Thresholds: d.opts.FeedThresholds}); err != nil {
				d.log.WarnContext(ctx, "dashboard: reading HL7 feed state", "connection", name, "err", err)
			} else {
				l.LastMessage, l.Alerts = rep.LastMessage, rep.Alerts
			}
			body.Feeds = append(body.Feeds, l)
		}
	}
	d.render(w, r, http.StatusOK, "overview", "Overview", body)
}

// pivot arranges type counts as one row per type and one column per
// connection, both sorted, with column and grand totals.
func pivot(counts []store.TypeCount) (conns []string, rows []countRow, totals []int, total int) {
	types := make([]string, 0, len(counts))
	for _, c := range counts {
		conns = append(conns, c.Connection)
		types = append(types, c.Type)
	}
	slices.Sort(conns)
	conns = slices.Compact(conns)
	slices.Sort(types)
	types = slices.Compact(types)
	totals = make([]int, len(conns))
	for _, typ := range types {
		row := countRow{Type: typ, Counts: make([]int, len(conns))}
		for _, c := range counts {
			if c.Type != typ {
				continue
			}
			i := slices.Index(conns, c.Connection)
			row.Counts[i] += c.Count
			row.Total += c.Count
			totals[i] += c.Count
			total += c.Count
		}
		rows = append(rows, row)
	}
	return conns, rows, totals, total
}

// connectionNames lists every connection the dashboard knows of, sorted.
func connectionNames(statuses []ConnectionStatus, counts []store.TypeCount) []string {
	var names []string
	for _, s := range statuses {
		names = append(names, s.Name)
	}
	for _, c := range counts {
		names = append(names, c.Connection)
	}
	slices.Sort(names)
	return slices.DeleteFunc(slices.Compact(names), func(s string) bool { return strings.TrimSpace(s) == "" })
}

// knownConnections is connectionNames for pages other than the overview;
// a store failure only costs the filter its choices.
func (d *Dashboard) knownConnections(ctx context.Context) []string {
	stats, err := d.r.Stats(ctx)
	if err != nil {
		d.log.WarnContext(ctx, "dashboard: reading store stats for connection list", "err", err)
	}
	return connectionNames(d.statuses(ctx), stats.Resources)
}
