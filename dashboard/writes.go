package dashboard

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"ehrgate/audit"
	"ehrgate/login"
	"ehrgate/writeback"
)

// WriteQueue is what the write-back approval pages read and change: the
// outbox (*writeback.Outbox is one). Approve and Reject record who and
// why; the implementation sends what is approved (the gateway's outbox
// enqueues a send job).
type WriteQueue interface {
	List(ctx context.Context, connection string, states ...writeback.State) ([]writeback.Record, error)
	Get(ctx context.Context, id string) (writeback.Record, error)
	Approve(ctx context.Context, id, by, why string) (writeback.Record, error)
	Reject(ctx context.Context, id, by, why string) (writeback.Record, error)
}

// WriteOptions configure the approval pages.
type WriteOptions struct {
	Queue WriteQueue
	// Versions finds the version an update was proposed against (the
	// store); nil shows updates against the EHR's version only when a 412
	// brought it.
	Versions writeback.Versions
	// LocalApprover names the approver when no one is signed in (login off:
	// the loopback-only dashboard): the OS user, or "local".
	LocalApprover string
}

// maxReason bounds an approval's or rejection's reason.
const maxReason = 1000

// WriteRoutes are the approval pages' routes, served by Writes's handler
// (the gateway mounts each as a patient-data route):
//
//	GET  /writes                  the queue: records by state (state; default proposed)
//	GET  /writes/{id}             one record: the readable diff, its history, approve and reject forms
//	POST /writes/{id}/approve     approve (reason, csrf)
//	POST /writes/{id}/reject      reject (reason, csrf)
var WriteRoutes = []struct{ Pattern, Serves string }{
	{"GET /writes", "write-back approval queue: proposed writes by state"},
	{"GET /writes/{id}", "a proposed write: field-level diff against the current version, history"},
	{"POST /writes/{id}/approve", "approve a proposed write (session CSRF token, reason)"},
	{"POST /writes/{id}/reject", "reject a proposed write (session CSRF token, reason)"},
}

// Writes returns the handler of the approval pages (WriteRoutes), for
// people whose roles grant login.ApproveWrites (admins and clinicians; not
// auditors). The approver is the signed-in person (login.PersonFrom), or
// o.LocalApprover without login. Every POST must be same-origin and, with
// a person signed in, carry the session's CSRF token (checked here as well
// as by login.Service.Require). Viewing a record is recorded in the audit
// trail as a read of its patient. Call Writes before d serves requests.
func (d *Dashboard) Writes(o WriteOptions) http.Handler {
	if o.LocalApprover == "" {
		o.LocalApprover = "local"
	}
	for _, name := range []string{"writes", "write"} {
		t := template.New("layout.html").Funcs(d.funcs())
		d.pages[name] = template.Must(t.ParseFS(assets, "templates/layout.html", "templates/partials.html", "templates/"+name+".html"))
	}
	ws := &writePages{d: d, o: o, cop: http.NewCrossOriginProtection()}
	mux := http.NewServeMux()
	mux.Handle("GET /writes", d.need(login.ApproveWrites, ws.list))
	mux.Handle("GET /writes/{id}", d.need(login.ApproveWrites, ws.show))
	mux.Handle("POST /writes/{id}/approve", d.need(login.ApproveWrites, ws.decide(true)))
	mux.Handle("POST /writes/{id}/reject", d.need(login.ApproveWrites, ws.decide(false)))
	return secure(mux)
}

type writePages struct {
	d   *Dashboard
	o   WriteOptions
	cop *http.CrossOriginProtection
}

// writeStates are the states the queue page filters by, in order.
var writeStates = []writeback.State{writeback.StateProposed, writeback.StateApproved, writeback.StateSent,
	writeback.StateConflicted, writeback.StateFailed, writeback.StateConfirmed, writeback.StateRejected}

type writesBody struct {
	State   string
	States  []writeback.State
	Records []writeback.Record
	Ref     string
}

func (ws *writePages) list(w http.ResponseWriter, r *http.Request) {
	state := writeback.State(r.URL.Query().Get("state"))
	if state == "" {
		state = writeback.StateProposed
	}
	b := writesBody{State: string(state), States: writeStates}
	var filter []writeback.State
	if state != "all" {
		filter = []writeback.State{state}
	}
	recs, err := ws.o.Queue.List(r.Context(), "", filter...)
	if err != nil {
		b.Ref = ws.d.reference(r.Context())
		ws.d.log.ErrorContext(r.Context(), "dashboard: listing write-back records", "err", err, "ref", b.Ref)
	}
	b.Records = recs
	ws.d.render(w, r, http.StatusOK, "writes", "Write approvals", b)
}

// writeBody is the data of one record's page.
type writeBody struct {
	Rec      writeback.Record
	Proposed string // the resource, indented
	Changes  []writeback.Change
	Against  string // what the diff is against
	Approve  bool   // the record may be approved now
	Reject   bool   // the record may be rejected now
	Notice   string // the outcome of the last decision, or why it was refused
	Error    bool
	CSRF     string // the session's token for the forms ("" without login)
}

func (ws *writePages) show(w http.ResponseWriter, r *http.Request) {
	notice := ""
	switch r.URL.Query().Get("done") {
	case "approved":
		notice = "The write was approved; it is sent from the job queue."
	case "rejected":
		notice = "The write was rejected."
	}
	ws.page(w, r, http.StatusOK, notice, false)
}

// page renders record {id}'s page with a notice.
func (ws *writePages) page(w http.ResponseWriter, r *http.Request, status int, notice string, isErr bool) {
	ctx := r.Context()
	rec, err := ws.o.Queue.Get(ctx, r.PathValue("id"))
	if errors.Is(err, writeback.ErrNotFound) {
		ws.notFound(w, r)
		return
	}
	if err != nil {
		ws.d.fail(w, r, "reading a write-back record", err)
		return
	}
	b, err := renderWrite(ctx, ws.o.Versions, rec)
	if err != nil {
		ws.d.fail(w, r, "comparing a write-back record", err)
		return
	}
	b.Notice, b.Error, b.CSRF = notice, isErr, login.CSRFToken(ctx)
	if !ws.d.recordAccess(w, r, audit.Read(audit.Agent{}, audit.PatientRef{Connection: rec.Connection, ID: rec.Patient})) {
		return
	}
	ws.d.render(w, r, status, "write", "Proposed write", b)
}

// renderWrite computes what a record's page shows: the proposed resource,
// and its field-level diff against the version before (for a create:
// every field added).
func renderWrite(ctx context.Context, v writeback.Versions, rec writeback.Record) (writeBody, error) {
	b := writeBody{Rec: rec, Approve: writeback.CanTransition(rec.State, writeback.StateApproved) && rec.State != writeback.StateSent,
		Reject: writeback.CanTransition(rec.State, writeback.StateRejected)}
	var ind strings.Builder
	var res any
	if json.Unmarshal(rec.Resource, &res) == nil {
		enc := json.NewEncoder(&ind)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	}
	b.Proposed = ind.String()
	before, against, err := writeback.Before(ctx, v, rec)
	if err != nil {
		return b, err
	}
	b.Against = against
	if rec.Operation == writeback.OpCreate {
		b.Against = "nothing (a new resource)"
	}
	b.Changes, err = writeback.Diff(before, rec.Resource)
	return b, err
}

// decide approves or rejects record {id} as the signed-in person (or the
// local approver), with the form's reason.
func (ws *writePages) decide(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if err := checkPost(ws.cop, r); err != nil {
			ws.d.log.WarnContext(ctx, "dashboard: write decision refused", "reason", err.Error())
			ws.d.render(w, r, http.StatusForbidden, "error", "Refused", errorBody{Status: http.StatusForbidden, Heading: "Refused",
				Message: "This request did not come from an ehrgate page; reload the page and try again."})
			return
		}
		by := ws.o.LocalApprover
		if p, ok := login.PersonFrom(ctx); ok {
			by = p.ID
		}
		why := strings.TrimSpace(r.PostFormValue("reason"))
		if why == "" || len(why) > maxReason {
			ws.page(w, r, http.StatusUnprocessableEntity, "A reason is needed (at most 1000 characters).", true)
			return
		}
		id := r.PathValue("id")
		var err error
		verb := "approved"
		if approve {
			_, err = ws.o.Queue.Approve(ctx, id, by, why)
		} else {
			verb = "rejected"
			_, err = ws.o.Queue.Reject(ctx, id, by, why)
		}
		switch {
		case errors.Is(err, writeback.ErrNotFound):
			ws.notFound(w, r)
			return
		case errors.Is(err, writeback.ErrTransition):
			ws.page(w, r, http.StatusConflict, "This write can no longer be "+verb+": its state has changed.", true)
			return
		case err != nil:
			ws.d.fail(w, r, "deciding a write-back record", err)
			return
		}
		ws.d.log.InfoContext(ctx, "dashboard: write-back record decided", "record", id, "decision", verb, "person", by)
		http.Redirect(w, r, "/writes/"+url.PathEscape(id)+"?done="+verb, http.StatusSeeOther)
	}
}

// checkPost refuses cross-origin browser requests and, with a person
// signed in, requests without the session's CSRF token (every form the
// dashboard posts).
func checkPost(cop *http.CrossOriginProtection, r *http.Request) error {
	if err := cop.Check(r); err != nil {
		return err
	}
	if _, ok := login.PersonFrom(r.Context()); !ok {
		return nil // login off: loopback only, and same-origin was checked
	}
	want := login.CSRFToken(r.Context())
	got := r.Header.Get(login.CSRFHeader)
	if got == "" {
		got = r.PostFormValue(login.CSRFField)
	}
	if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errors.New("missing or wrong CSRF token")
	}
	return nil
}

// notFound is the 404 page for an unknown record (on GET and POST alike).
func (ws *writePages) notFound(w http.ResponseWriter, r *http.Request) {
	ws.d.render(w, r, http.StatusNotFound, "error", "Not found", errorBody{Status: http.StatusNotFound,
		Heading: "No such write", Message: "There is no write-back record with this id."})
}
