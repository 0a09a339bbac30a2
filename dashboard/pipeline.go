package dashboard

import (
	"context"
	"html/template"
	"net/http"
	"time"

	"ehrgate/audit"
	"ehrgate/login"
	"ehrgate/pipeline"
	"ehrgate/risk"
	"ehrgate/writeback"
)

// PipelineRun is the last population pipeline run as the cohort page shows
// it: what it did, each patient's findings, and the newest outbox record of
// each of the pipeline's resources.
type PipelineRun struct {
	At       time.Time
	Summary  pipeline.Summary
	Patients []pipeline.Patient
	// Writes maps connection + "|" + identifier value to the newest
	// pipeline record of that Flag or score Observation.
	Writes map[string]writeback.Record
}

// PipelineOptions configure the cohort page.
type PipelineOptions struct {
	// Load returns the last run, or nil when none ran yet.
	Load func(ctx context.Context) (*PipelineRun, error)
}

// PipelineRoutes are the cohort page's routes, served by Pipeline's
// handler (the gateway mounts each as a patient-data route):
//
//	GET /pipeline   the last run: the cohort, each patient's score with its inputs, the state of each write
var PipelineRoutes = []struct{ Pattern, Serves string }{
	{"GET /pipeline", "population pipeline: the cohort, each patient's scores with their inputs, the state of each write"},
}

// pipelineRow is one finding of one patient, with its write.
type pipelineRow struct {
	Connection, Patient string
	Finding             risk.Finding
	Write               *writeback.Record // the Flag's newest record
	ScoreWrite          *writeback.Record // the score Observation's
}

type pipelineBody struct {
	Run  *PipelineRun
	Rows []pipelineRow
	Ref  string
}

// Pipeline returns the handler of the cohort page (PipelineRoutes), for
// people who may see patients. Each view is recorded in the audit trail
// first (a search over the cohort); when that fails the page is not shown.
func (d *Dashboard) Pipeline(o PipelineOptions) http.Handler {
	t := template.New("layout.html").Funcs(d.funcs())
	d.pages["pipeline"] = template.Must(t.ParseFS(assets, "templates/layout.html", "templates/partials.html", "templates/pipeline.html"))
	mux := http.NewServeMux()
	mux.Handle("GET /pipeline", d.need(login.SeePatients, func(w http.ResponseWriter, r *http.Request) {
		// The page lists patients with their findings: one audit event
		// (a search over the cohort) before anything is shown, or nothing.
		if !d.recordAccess(w, r, audit.Search(audit.Agent{}, audit.PatientRef{}, "pipeline=cohort")) {
			return
		}
		var b pipelineBody
		run, err := o.Load(r.Context())
		if err != nil {
			b.Ref = d.reference(r.Context())
			d.log.ErrorContext(r.Context(), "dashboard: reading the pipeline run", "err", err, "ref", b.Ref)
		}
		b.Run = run
		if run != nil {
			for _, p := range run.Patients {
				for _, f := range p.Findings {
					row := pipelineRow{Connection: p.Connection, Patient: p.ID, Finding: f}
					if w, ok := run.Writes[p.Connection+"|"+f.Rule.Name+"/"+p.ID]; ok {
						row.Write = &w
					}
					if f.Score != nil {
						if w, ok := run.Writes[p.Connection+"|"+risk.ScoreCHA2DS2VASc.Name+"/"+p.ID]; ok {
							row.ScoreWrite = &w
						}
					}
					b.Rows = append(b.Rows, row)
				}
			}
		}
		d.render(w, r, http.StatusOK, "pipeline", "Population pipeline", b)
	}))
	return secure(mux)
}
