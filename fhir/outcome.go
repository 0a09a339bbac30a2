package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// OperationOutcome reports errors, warnings and information about an action.
type OperationOutcome struct {
	ResourceType string         `json:"resourceType"`
	Issue        []OutcomeIssue `json:"issue"`
}

// OutcomeIssue is one issue in an OperationOutcome.
type OutcomeIssue struct {
	Severity    string           `json:"severity"` // fatal | error | warning | information
	Code        string           `json:"code"`     // http://hl7.org/fhir/valueset-issue-type.html
	Details     *CodeableConcept `json:"details,omitempty"`
	Diagnostics string           `json:"diagnostics,omitempty"`
	Expression  []string         `json:"expression,omitempty"`
}

// NewOutcome builds an OperationOutcome with a single issue.
func NewOutcome(severity, code, diagnostics string) *OperationOutcome {
	return &OperationOutcome{
		ResourceType: "OperationOutcome",
		Issue:        []OutcomeIssue{{Severity: severity, Code: code, Diagnostics: diagnostics}},
	}
}

// Summary joins the issues' diagnostics (or codes) into one line. The
// diagnostics are the server's free text, which may name a patient: show
// Summary to a signed-in person, never put it in a log, a job's recorded
// error or a metric (Codes is for those).
func (o *OperationOutcome) Summary() string {
	if o == nil {
		return ""
	}
	parts := make([]string, 0, len(o.Issue))
	for _, is := range o.Issue {
		msg := is.Diagnostics
		if msg == "" && is.Details != nil {
			msg = is.Details.Label()
		}
		if msg == "" {
			msg = is.Code
		}
		parts = append(parts, is.Severity+": "+msg)
	}
	return strings.Join(parts, "; ")
}

// Codes joins the issues' severities and codes (issue.code and the codes of
// issue.details) into one line, without any of the server's free text:
// "error: not-found; warning: processing/MSG_DELETED".
func (o *OperationOutcome) Codes() string {
	if o == nil {
		return ""
	}
	parts := make([]string, 0, len(o.Issue))
	for _, is := range o.Issue {
		msg := is.Severity + ": " + is.Code
		if is.Details != nil {
			for _, c := range is.Details.Coding {
				if c.Code != "" {
					msg += "/" + c.Code
				}
			}
		}
		parts = append(parts, msg)
	}
	return strings.Join(parts, "; ")
}

// WriteOutcome writes an OperationOutcome as the HTTP response.
func WriteOutcome(w http.ResponseWriter, status int, severity, code, diagnostics string) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(NewOutcome(severity, code, diagnostics))
}

// Sentinel errors callers branch on. An *Error matches them with errors.Is
// according to its HTTP status.
var (
	ErrNotFound           = errors.New("fhir: not found")
	ErrGone               = errors.New("fhir: gone")
	ErrUnauthorized       = errors.New("fhir: unauthorized")
	ErrForbidden          = errors.New("fhir: forbidden")
	ErrNotSupported       = errors.New("fhir: not supported")
	ErrBadRequest         = errors.New("fhir: bad request")
	ErrRateLimited        = errors.New("fhir: rate limited")
	ErrServer             = errors.New("fhir: server error")
	ErrPreconditionFailed = errors.New("fhir: precondition failed")
)

// Error is a failed FHIR interaction: the HTTP status, the OperationOutcome
// when the server sent one, and what was being done. Its message holds the
// outcome's codes but none of the server's free text (diagnostics, details
// text), which can name a patient and would otherwise reach logs and the
// job queue's recorded errors; Outcome.Summary has it for a person to read.
type Error struct {
	Op         string // e.g. "search Observation"
	StatusCode int
	Outcome    *OperationOutcome
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("fhir: %s: HTTP %d", e.Op, e.StatusCode)
	if s := e.Outcome.Codes(); s != "" {
		msg += " (" + s + ")"
	}
	return msg
}

// Is maps the status code onto the package's sentinel errors.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrGone:
		return e.StatusCode == http.StatusGone
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrNotSupported:
		return e.StatusCode == http.StatusNotImplemented || e.StatusCode == http.StatusMethodNotAllowed ||
			(e.StatusCode == http.StatusBadRequest && e.hasIssueCode("not-supported"))
	case ErrBadRequest:
		return e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusUnprocessableEntity
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrServer:
		return e.StatusCode >= 500
	case ErrPreconditionFailed:
		return e.StatusCode == http.StatusPreconditionFailed
	}
	return false
}

func (e *Error) hasIssueCode(code string) bool {
	if e.Outcome == nil {
		return false
	}
	for _, is := range e.Outcome.Issue {
		if is.Code == code {
			return true
		}
	}
	return false
}
