package dashboard

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"ehrgate/hl7/feedhealth"
	"ehrgate/login"
	"ehrgate/store"
)

// Feeds is what the HL7 v2 feed pages read and the replay button writes:
// the message log's statistics (every store backend provides them).
type Feeds interface {
	store.HL7Stats
}

// feedHours is the window of a feed page: 24 hours, or 48 with ?hours=48.
func feedHours(r *http.Request) int {
	if r.URL.Query().Get("hours") == "48" {
		return 48
	}
	return 24
}

// bar is one hour of the feed chart: a stacked column, one segment per
// trigger (Class picks its colour).
type bar struct {
	X, W     float64
	Hour     time.Time
	Total    int
	Failed   int
	Segments []segment
	Label    bool // show the hour under it
}

type segment struct {
	Y, H  float64
	Type  string
	Count int
	Class int
}

// feedChart is the server-drawn SVG chart of messages per hour.
type feedChart struct {
	Width, Height, Top, Bottom float64
	Max                        int
	Bars                       []bar
	Legend                     []segment // Type and Class
}

// feedRow is one hour of the table under the chart.
type feedRow struct {
	Hour   time.Time
	Counts []int // parallel to feedBody.Report.Types
	Total  int
	Failed int
}

// feedBody is the data of a feed's page.
type feedBody struct {
	Name     string
	Report   feedhealth.Report
	Hours    int
	Chart    feedChart
	Rows     []feedRow
	Silent   time.Duration // since the last message
	Replayed string        // control id of a message just queued again
	CSRF     string
}

// AckOrder lists the ACK codes in display order.
func (feedBody) AckOrder() []string { return []string{"AA", "AE", "AR"} }

// feedNames returns the HL7 feeds to list, or nil.
func (d *Dashboard) feedNames(ctx context.Context) []string {
	if d.opts.Feeds == nil || d.opts.FeedNames == nil {
		return nil
	}
	return d.opts.FeedNames(ctx)
}

// knownFeed reports whether name is an HL7 feed the dashboard shows.
func (d *Dashboard) knownFeed(ctx context.Context, name string) bool {
	if d.opts.FeedNames == nil {
		return name != ""
	}
	return slices.Contains(d.opts.FeedNames(ctx), name)
}

// feed shows one HL7 v2 feed: messages per hour by trigger, ACK codes,
// refused and unconverted messages with their reason and a replay button,
// control-id reuses, conversion lag, the last message time and the alerts
// the Prometheus rules raise. No message content is read for it.
func (d *Dashboard) feed(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := r.PathValue("connection")
	if !d.knownFeed(ctx, name) {
		d.notFound(w, r)
		return
	}
	hours := feedHours(r)
	now := d.now().UTC()
	rep, err := feedhealth.Build(ctx, d.opts.Feeds, name, now, feedhealth.Options{Window: time.Duration(hours) * time.Hour,
		Thresholds: d.opts.FeedThresholds})
	if err != nil {
		d.fail(w, r, "reading HL7 feed "+name, err)
		return
	}
	body := feedBody{Name: name, Report: rep, Hours: hours, CSRF: login.CSRFToken(ctx)}
	if !rep.LastMessage.IsZero() {
		body.Silent = now.Sub(rep.LastMessage).Truncate(time.Second)
	}
	if s := r.URL.Query().Get("replayed"); s != "" {
		if seq, err := strconv.ParseInt(s, 10, 64); err == nil {
			body.Replayed = strconv.FormatInt(seq, 10)
		}
	}
	body.Chart, body.Rows = drawFeed(rep, now, hours)
	d.render(w, r, http.StatusOK, "feed", "HL7 feed "+name, body)
}

// drawFeed lays out the hourly chart and table of rep's window.
func drawFeed(rep feedhealth.Report, now time.Time, hours int) (feedChart, []feedRow) {
	c := feedChart{Width: 720, Height: 180, Top: 10, Bottom: 150}
	class := map[string]int{}
	for i, t := range rep.Types {
		class[t] = i % 8
		c.Legend = append(c.Legend, segment{Type: typeLabel(t), Class: i % 8})
	}
	start := now.Truncate(time.Hour).Add(-time.Duration(hours-1) * time.Hour)
	byHour := map[int64][]feedhealth.TypeHour{}
	for _, h := range rep.Hours {
		if !h.Hour.Before(start) {
			byHour[h.Hour.Unix()] = append(byHour[h.Hour.Unix()], h)
		}
	}
	var rows []feedRow
	for i := range hours {
		hr := start.Add(time.Duration(i) * time.Hour)
		row := feedRow{Hour: hr, Counts: make([]int, len(rep.Types))}
		for _, h := range byHour[hr.Unix()] {
			row.Counts[slices.Index(rep.Types, h.Type)] += h.Messages
			row.Total += h.Messages
			row.Failed += h.Failed
		}
		c.Max = max(c.Max, row.Total)
		rows = append(rows, row)
	}
	bw := c.Width / float64(hours)
	scale := 0.0
	if c.Max > 0 {
		scale = (c.Bottom - c.Top) / float64(c.Max)
	}
	for i, row := range rows {
		b := bar{X: float64(i)*bw + 1, W: bw - 2, Hour: row.Hour, Total: row.Total, Failed: row.Failed,
			Label: row.Hour.Hour()%6 == 0}
		y := c.Bottom
		for j, n := range row.Counts {
			if n == 0 {
				continue
			}
			h := float64(n) * scale
			y -= h
			b.Segments = append(b.Segments, segment{Y: y, H: h, Type: typeLabel(rep.Types[j]), Count: n, Class: class[rep.Types[j]]})
		}
		c.Bars = append(c.Bars, b)
	}
	// The table lists hours with messages, newest first.
	var table []feedRow
	for i := len(rows) - 1; i >= 0; i-- {
		if rows[i].Total > 0 {
			table = append(table, rows[i])
		}
	}
	return c, table
}

func typeLabel(t string) string {
	if t == "" || t == "^" {
		return "(no type)"
	}
	return t
}

// crossOrigin refuses cross-origin browser requests (the replay button is
// a same-origin form).
var crossOrigin = http.NewCrossOriginProtection()

// replay queues a refused or unconverted message for conversion again
// (POST with the session's CSRF token), then shows the feed page.
func (d *Dashboard) replay(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := r.PathValue("connection")
	if !d.knownFeed(ctx, name) {
		d.notFound(w, r)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	who, signedIn := login.PersonFrom(ctx)
	tok := login.CSRFToken(ctx)
	if err := crossOrigin.Check(r); err != nil ||
		(signedIn && (tok == "" || subtle.ConstantTimeCompare([]byte(r.PostFormValue(login.CSRFField)), []byte(tok)) != 1)) {
		d.log.WarnContext(ctx, "dashboard: replay refused: CSRF", "person", who.ID, "connection", name)
		d.render(w, r, http.StatusForbidden, "error", "Refused", errorBody{Status: http.StatusForbidden, Heading: "Refused",
			Message: "This request did not come from an ehrgate page; reload the page and try again."})
		return
	}
	seq, err := strconv.ParseInt(r.PostFormValue("seq"), 10, 64)
	if err != nil || seq <= 0 {
		d.render(w, r, http.StatusBadRequest, "error", "Bad request", errorBody{Status: http.StatusBadRequest,
			Heading: "Bad request", Message: "No message to replay was named."})
		return
	}
	if err := d.opts.Feeds.ReplayHL7(ctx, name, seq); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			d.render(w, r, http.StatusNotFound, "error", "Not found", errorBody{Status: http.StatusNotFound, Heading: "Nothing to replay",
				Message: "This message is not waiting for a replay: it was converted or replayed already."})
			return
		}
		d.fail(w, r, "replaying an HL7 message", err)
		return
	}
	d.log.InfoContext(ctx, "dashboard: HL7 message queued for conversion again", "person", who.ID, "connection", name, "seq", seq)
	if d.opts.Replayed != nil {
		d.opts.Replayed(name)
	}
	http.Redirect(w, r, fmt.Sprintf("/feeds/%s?replayed=%d", url.PathEscape(name), seq), http.StatusSeeOther)
}
