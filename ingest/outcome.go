package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"

	"ehrgate/fhir"
	"ehrgate/fhir/bulk"
)

// serverErrors is what one error file of a manifest says: how many
// OperationOutcome lines it holds, and which of the candidate resource types
// its error (or fatal) issues name. all is set when an error cannot be tied
// to a type (or the file cannot be read or decoded): then every type of the
// request is affected.
type serverErrors struct {
	lines    int64
	warnings int64           // warning and information issues (not failures)
	types    map[string]bool // types named by error issues
	all      bool
	codes    []string // issue codes of the errors (never their text, which may quote data)
	readErr  error
}

// readServerErrors reads one error file of a manifest and ties its error
// issues to resource types among candidates.
//
// The Bulk Data spec puts error, warning and information messages in the
// error array as OperationOutcome files, without saying how a message names
// what failed. An issue is tied to a type by, in order: the manifest entry's
// own type when it is a resource type (some servers put the failed type
// there); the issue's expression (FHIRPath starting with the type); a
// candidate type named as a word in its diagnostics or details text (the
// SMART reference server writes "Failed to export 2.Observation.ndjson").
// An error issue tied to nothing affects every type, as does a line that is
// not an OperationOutcome: losing data quietly is worse than asking again.
// candidates nil (a request without _type) admits any FHIR R4 resource type
// but OperationOutcome.
//
// When tee is not nil it receives the file's bytes as read.
func readServerErrors(ctx context.Context, c *bulk.Client, m *bulk.Manifest, f bulk.OutputFile, candidates []string, tee io.Writer) serverErrors {
	se := serverErrors{types: map[string]bool{}}
	rc, err := c.Open(ctx, m, f, 0)
	if err != nil {
		se.all, se.readErr = true, err
		return se
	}
	defer rc.Close()
	var src io.Reader = rc
	if tee != nil {
		src = io.TeeReader(rc, tee)
	}
	r := bulk.NewReader(src, 0, 0, 0)
	for {
		l, err := r.Next()
		if errors.Is(err, io.EOF) {
			return se
		}
		if err != nil {
			se.all, se.readErr = true, err
			return se
		}
		se.lines++
		var oo fhir.OperationOutcome
		if l.TooLong || json.Unmarshal(l.Bytes, &oo) != nil || oo.ResourceType != "OperationOutcome" {
			se.all = true
			se.note("not-an-OperationOutcome")
			continue
		}
		for _, is := range oo.Issue {
			switch is.Severity {
			case "warning", "information":
				se.warnings++
				continue
			}
			se.note(is.Code)
			ts := issueTypes(f.Type, is, candidates)
			if len(ts) == 0 {
				se.all = true
			}
			for _, t := range ts {
				se.types[t] = true
			}
		}
	}
}

func (se *serverErrors) note(code string) {
	if code == "" {
		code = "unknown"
	}
	if !slices.Contains(se.codes, code) && len(se.codes) < 5 {
		se.codes = append(se.codes, code)
	}
}

// failed reports whether the file holds any error (as opposed to warnings
// only).
func (se serverErrors) failed() bool { return se.all || len(se.types) > 0 }

// issueTypes returns the candidate types an error issue names (see
// readServerErrors).
func issueTypes(entryType string, is fhir.OutcomeIssue, candidates []string) []string {
	allowed := func(t string) bool {
		if candidates == nil {
			return t != "OperationOutcome" && fhir.IsResourceType(t)
		}
		return slices.Contains(candidates, t)
	}
	if entryType != "OperationOutcome" && allowed(entryType) {
		return []string{entryType}
	}
	var out []string
	add := func(t string) {
		if allowed(t) && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	for _, e := range is.Expression {
		head, _, _ := strings.Cut(e, ".")
		head, _, _ = strings.Cut(head, "(")
		add(strings.TrimSpace(head))
	}
	if len(out) > 0 {
		return out
	}
	texts := []string{is.Diagnostics}
	if is.Details != nil {
		texts = append(texts, is.Details.Text)
	}
	for _, txt := range texts {
		for _, w := range strings.FieldsFunc(txt, func(r rune) bool {
			return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
		}) {
			add(w)
		}
	}
	return out
}
