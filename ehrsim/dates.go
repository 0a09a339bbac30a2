package ehrsim

import "ehrgate/ehrsim/internal/fhirdate"

// span and dateQuery are the shared FHIR date search types.
type (
	span      = fhirdate.Span
	dateQuery = fhirdate.Query
)

// spansOf turns a date element (a string, or a Period object) into spans.
func spansOf(v any) []span {
	switch x := v.(type) {
	case string:
		if sp, err := fhirdate.ParseSpan(x); err == nil {
			return []fhirdate.Span{sp}
		}
	case map[string]any:
		start, _ := x["start"].(string)
		end, _ := x["end"].(string)
		if start == "" && end == "" {
			return nil
		}
		sp := fhirdate.Span{Lo: fhirdate.MinTime, Hi: fhirdate.MaxTime}
		if s, err := fhirdate.ParseSpan(start); err == nil {
			sp.Lo = s.Lo
		}
		if e, err := fhirdate.ParseSpan(end); err == nil {
			sp.Hi = e.Hi
		}
		return []fhirdate.Span{sp}
	}
	return nil
}
