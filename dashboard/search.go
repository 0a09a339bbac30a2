package dashboard

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"ehrgate/audit"

	"ehrgate/normalize"
	"ehrgate/store"
)

// searchLimit is how many patients a search shows.
const searchLimit = 50

// maxQueryLen bounds every search parameter.
const maxQueryLen = 200

// patientRow is one search result.
type patientRow struct {
	Name       string
	MRN        string
	BirthDate  string
	Gender     string
	Connection string
	ID         string
}

// searchBody is the data of the search page.
type searchBody struct {
	Form     searchForm
	Problems []string // validation messages
	Searched bool
	Results  []patientRow
	More     bool // more than searchLimit matched
	Limit    int
}

func (d *Dashboard) search(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	body := searchBody{Limit: searchLimit, Form: searchForm{
		Q:          strings.TrimSpace(q.Get("q")),
		BirthDate:  strings.TrimSpace(q.Get("birthdate")),
		Connection: strings.TrimSpace(q.Get("connection")),
	}}
	body.Form.Connections = d.knownConnections(ctx)
	if body.Form.Connection != "" && !slices.Contains(body.Form.Connections, body.Form.Connection) {
		body.Form.Connections = append(body.Form.Connections, body.Form.Connection)
	}
	body.Problems, body.Form.BadBirthDate = validateSearch(body.Form)
	if len(body.Problems) > 0 {
		d.render(w, r, http.StatusBadRequest, "search", "Patient search", body)
		return
	}
	if body.Form.Q == "" && body.Form.BirthDate == "" {
		// An empty search would list every patient; ask for criteria instead.
		d.render(w, r, http.StatusOK, "search", "Patient search", body)
		return
	}
	recs, err := d.r.SearchPatients(ctx, store.PatientQuery{
		Connection: body.Form.Connection,
		Text:       body.Form.Q,
		BirthDate:  body.Form.BirthDate,
		Limit:      searchLimit + 1,
	})
	if err != nil {
		d.fail(w, r, "searching patients", err)
		return
	}
	e := audit.Search(audit.Agent{}, audit.PatientRef{}, r.URL.RawQuery)
	for _, rec := range recs {
		e.Resources = append(e.Resources, audit.ResourceRef{Connection: rec.Connection, Type: "Patient", ID: rec.ID})
	}
	if len(recs) == 1 {
		e.Patient = audit.PatientRef{Connection: recs[0].Connection, ID: recs[0].ID}
	}
	if !d.recordAccess(w, r, e) {
		return
	}
	body.Searched = true
	if len(recs) > searchLimit {
		recs, body.More = recs[:searchLimit], true
	}
	for _, rec := range recs {
		body.Results = append(body.Results, d.patientRow(r, rec))
	}
	slices.SortStableFunc(body.Results, func(a, b patientRow) int {
		return cmp.Or(strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)),
			strings.Compare(a.Connection, b.Connection))
	})
	d.render(w, r, http.StatusOK, "search", "Patient search", body)
}

// validateSearch returns a user-facing message for each bad parameter and
// whether the birth date is one of them.
func validateSearch(f searchForm) (problems []string, badBirthDate bool) {
	if len(f.Q) > maxQueryLen {
		problems = append(problems, "The name or MRN is too long (at most 200 characters).")
	}
	if len(f.Connection) > maxQueryLen {
		problems = append(problems, "The connection name is too long.")
	}
	if f.BirthDate != "" {
		if _, err := time.Parse("2006-01-02", f.BirthDate); err != nil {
			problems = append(problems, "Birth date must be a valid date written as YYYY-MM-DD, for example 1984-03-07.")
			badBirthDate = true
		}
	}
	return problems, badBirthDate
}

// patientRow summarises a Patient record, falling back to the store's
// search keys when the normalized form cannot be read.
func (d *Dashboard) patientRow(r *http.Request, rec store.Record) patientRow {
	row := patientRow{Connection: rec.Connection, ID: rec.ID}
	var p normalize.Patient
	if err := json.Unmarshal(rec.Normalized, &p); err != nil {
		d.log.WarnContext(r.Context(), "dashboard: decoding normalized patient", "err", err,
			"connection", rec.Connection, "id", rec.ID)
	}
	row.Name, row.MRN, row.BirthDate, row.Gender = p.Name, p.MRN, p.BirthDate, capitalize(p.Gender)
	if k := rec.Patient; k != nil {
		if row.Name == "" && len(k.Names) > 0 {
			row.Name = k.Names[0]
		}
		if row.MRN == "" && len(k.MRNs) > 0 {
			row.MRN = k.MRNs[0]
		}
		if row.BirthDate == "" {
			row.BirthDate = k.BirthDate
		}
	}
	if row.Name == "" {
		row.Name = "(no name recorded)"
	}
	return row
}
