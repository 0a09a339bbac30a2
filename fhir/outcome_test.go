package fhir

import (
	"errors"
	"strings"
	"testing"
)

// TestErrorMessageHoldsNoFreeText: a server's OperationOutcome diagnostics
// and details text (free text that can name a patient) stay out of the
// error's message, which reaches logs and the job queue; the codes are in
// it, and Summary still gives the text to whoever may read it.
func TestErrorMessageHoldsNoFreeText(t *testing.T) {
	e := &Error{Op: "read Patient", StatusCode: 404, Outcome: &OperationOutcome{ResourceType: "OperationOutcome", Issue: []OutcomeIssue{
		{Severity: "error", Code: "not-found", Diagnostics: "No record for SMITH, JOHN (MRN 00412345)"},
		{Severity: "warning", Code: "processing", Details: &CodeableConcept{
			Coding: []Coding{{System: "urn:oid:1.2.840.114350.1.13.0.1.7.2.657369", Code: "59008"}},
			Text:   "Patient Jane Doe is restricted"}},
	}}}
	msg := e.Error()
	for _, leak := range []string{"SMITH", "00412345", "Jane", "restricted"} {
		if strings.Contains(msg, leak) {
			t.Errorf("Error() = %q: holds the server's free text %q", msg, leak)
		}
	}
	if want := "fhir: read Patient: HTTP 404 (error: not-found; warning: processing/59008)"; msg != want {
		t.Errorf("Error() = %q, want %q", msg, want)
	}
	if !errors.Is(e, ErrNotFound) {
		t.Error("a 404 is not ErrNotFound")
	}
	if s := e.Outcome.Summary(); !strings.Contains(s, "SMITH, JOHN") || !strings.Contains(s, "Jane Doe") {
		t.Errorf("Summary() = %q, want the diagnostics for display", s)
	}
	var nilOutcome *OperationOutcome
	if nilOutcome.Codes() != "" {
		t.Error("a nil outcome has codes")
	}
}
