package dashboard

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"

	"ehrgate/normalize"
	"ehrgate/quality"
	"ehrgate/store"
	"ehrgate/terminology"
)

// qualityTop is how many unmapped codes and profile rules the page lists per
// connection; the CSV export has all of them.
const qualityTop = 50

// qualityBody is the data of the quality page.
type qualityBody struct {
	Connection  string // the filter, "" for all
	Supported   bool   // the store can be scanned
	Ref         string // set when the report could not be built
	Connections []qualityConn
}

type qualityConn struct {
	*quality.ConnectionReport
	UnmappedTotal int
	Unmapped      []quality.UnmappedCode // at most qualityTop
	MoreUnmapped  int
	Profile       []quality.RuleCount
	MoreProfile   int
	// Extensions are the extensions nobody understands (at most
	// qualityTop), ExtensionsTotal how many resources carry one.
	Extensions      []quality.UnknownExtension
	MoreExtensions  int
	ExtensionsTotal int
	ExportURL       string
}

// qualityReport builds the report with the package-level normalizer (the
// application configures it, local-code maps included, with
// normalize.SetDefault).
func (d *Dashboard) qualityReport(r *http.Request) (*quality.Report, bool, error) {
	sc, ok := d.r.(store.PagedScanner)
	if !ok {
		return nil, false, nil
	}
	rep, err := quality.Build(r.Context(), sc, normalize.Default(), r.URL.Query().Get("connection"))
	return rep, true, err
}

// quality serves GET /quality: per connection, unmapped codes and
// extensions nobody understands by frequency, missing LOINC and RxNorm,
// stale medications and US Core profile findings.
func (d *Dashboard) quality(w http.ResponseWriter, r *http.Request) {
	body := qualityBody{Connection: r.URL.Query().Get("connection")}
	rep, ok, err := d.qualityReport(r)
	body.Supported = ok
	switch {
	case err != nil:
		body.Ref = d.reference(r.Context())
		d.log.ErrorContext(r.Context(), "dashboard: building quality report", "err", err, "ref", body.Ref)
	case ok:
		for _, c := range rep.Connections {
			qc := qualityConn{ConnectionReport: c, ExportURL: "/quality/unmapped.csv?" + url.Values{"connection": {c.Connection}}.Encode()}
			for _, u := range c.Unmapped {
				qc.UnmappedTotal += u.Count
			}
			qc.Unmapped, qc.MoreUnmapped = headOf(c.Unmapped, qualityTop)
			qc.Profile, qc.MoreProfile = headOf(c.Profile, qualityTop)
			for _, e := range c.UnknownExtensions {
				qc.ExtensionsTotal += e.Count
			}
			qc.Extensions, qc.MoreExtensions = headOf(c.UnknownExtensions, qualityTop)
			body.Connections = append(body.Connections, qc)
		}
	}
	d.render(w, r, http.StatusOK, "quality", "Data quality", body)
}

func headOf[T any](s []T, n int) ([]T, int) {
	if len(s) <= n {
		return s, 0
	}
	return s[:n], len(s) - n
}

// qualityCSV serves GET /quality/unmapped.csv?connection=C: the unmapped
// codes as a local-code map template (target columns empty) to fill in.
func (d *Dashboard) qualityCSV(w http.ResponseWriter, r *http.Request) {
	rep, ok, err := d.qualityReport(r)
	if err != nil {
		d.fail(w, r, "building quality report", err)
		return
	}
	if !ok {
		http.Error(w, "This store cannot be scanned for data quality.", http.StatusNotImplemented)
		return
	}
	var buf bytes.Buffer
	if err := terminology.WriteLocalMap(&buf, rep.MapTemplate()); err != nil {
		d.fail(w, r, "writing map template", err)
		return
	}
	name := "unmapped"
	if c := safeFileName(r.URL.Query().Get("connection")); c != "" {
		name += "-" + c
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
	_, _ = w.Write(buf.Bytes())
}

// safeFileName keeps letters, digits, '-', '_' and '.'.
func safeFileName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return -1
	}, s)
}
