package dashboard

import (
	"context"
	"net/http"
	"sort"
	"time"
)

// CDSFeedback is one recorded outcome of a CDS Hooks card ehrgate sent:
// what the clinician did with it. It holds no patient data.
type CDSFeedback struct {
	Service string // the CDS service id, e.g. drug-allergy-select
	Card    string // the card's uuid
	// Kind is the rule that made the card (ingredient, class,
	// cross-sensitivity, drug-unchecked, duplicate, ...) and Indicator its
	// urgency; empty when the process that recorded the feedback did not
	// send the card.
	Kind, Indicator string
	Outcome         string // accepted or overridden
	// Reason is the override reason's display (or code); empty when none
	// was given.
	Reason   string
	Client   string // the CDS client (EHR) that sent the feedback
	Received time.Time
}

// cdsFeedbackRow is one kind of card of one service on the feedback page.
type cdsFeedbackRow struct {
	Kind, Indicator      string
	Accepted, Overridden int
	Reasons              []reasonCount // most given first
	Last                 time.Time
}

type reasonCount struct {
	Reason string
	Count  int
}

type cdsFeedbackService struct {
	Service              string
	Accepted, Overridden int
	Rows                 []cdsFeedbackRow
}

type cdsFeedbackBody struct {
	Services []cdsFeedbackService
	Ref      string // set when the feedback could not be read
}

// summarizeCDSFeedback counts feedback per service and kind of card, with
// the override reasons given; services and kinds in name order.
func summarizeCDSFeedback(fb []CDSFeedback) []cdsFeedbackService {
	type key struct{ svc, kind, ind string }
	rows := map[key]*cdsFeedbackRow{}
	reasons := map[key]map[string]int{}
	for _, f := range fb {
		k := key{f.Service, f.Kind, f.Indicator}
		r := rows[k]
		if r == nil {
			r = &cdsFeedbackRow{Kind: f.Kind, Indicator: f.Indicator}
			rows[k], reasons[k] = r, map[string]int{}
		}
		switch f.Outcome {
		case "accepted":
			r.Accepted++
		case "overridden":
			r.Overridden++
			reason := f.Reason
			if reason == "" {
				reason = "(no reason given)"
			}
			reasons[k][reason]++
		}
		if f.Received.After(r.Last) {
			r.Last = f.Received
		}
	}
	bySvc := map[string]*cdsFeedbackService{}
	for k, r := range rows {
		for reason, n := range reasons[k] {
			r.Reasons = append(r.Reasons, reasonCount{reason, n})
		}
		sort.Slice(r.Reasons, func(i, j int) bool {
			if r.Reasons[i].Count != r.Reasons[j].Count {
				return r.Reasons[i].Count > r.Reasons[j].Count
			}
			return r.Reasons[i].Reason < r.Reasons[j].Reason
		})
		s := bySvc[k.svc]
		if s == nil {
			s = &cdsFeedbackService{Service: k.svc}
			bySvc[k.svc] = s
		}
		s.Accepted += r.Accepted
		s.Overridden += r.Overridden
		s.Rows = append(s.Rows, *r)
	}
	var out []cdsFeedbackService
	for _, s := range bySvc {
		sort.Slice(s.Rows, func(i, j int) bool {
			if s.Rows[i].Kind != s.Rows[j].Kind {
				return s.Rows[i].Kind < s.Rows[j].Kind
			}
			return s.Rows[i].Indicator < s.Rows[j].Indicator
		})
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out
}

// cdsFeedback is the CDS feedback page: per service and kind of card,
// how often clinicians accepted a suggestion or overrode the card, and
// the reasons they gave.
func (d *Dashboard) cdsFeedback(w http.ResponseWriter, r *http.Request) {
	var b cdsFeedbackBody
	fb, err := d.opts.CDSFeedback(r.Context())
	if err != nil {
		b.Ref = d.reference(r.Context())
		d.log.ErrorContext(r.Context(), "dashboard: reading CDS feedback", "err", err, "ref", b.Ref)
	}
	b.Services = summarizeCDSFeedback(fb)
	d.render(w, r, http.StatusOK, "cdsfeedback", "CDS feedback", b)
}

// CDSFeedbackFunc reads the recorded CDS feedback (every service).
type CDSFeedbackFunc func(ctx context.Context) ([]CDSFeedback, error)
