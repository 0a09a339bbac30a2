// Package feedhealth computes the state of an HL7 v2 feed from its message
// log (store.HL7Stats): messages per hour by trigger and ACK code, refused
// and unconverted messages, conversion lag, the last message time, how
// busy the feed normally is at this hour, and the alerts that follow from
// them. The dashboard's feed page and the Prometheus metrics both use it,
// so that the page shows the alerts the rules in deploy/prometheus raise.
//
// Nothing here reads message content: only counts, times, control ids,
// triggers and the user-safe reasons the log keeps.
package feedhealth

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"time"

	"ehrgate/store"
)

// Thresholds tune the alerts. The zero value means the defaults, which
// match deploy/prometheus/hl7.yml.
type Thresholds struct {
	// SilentAfter is how long without a message raises FeedSilent during
	// an hour the feed is normally busy (default 15 minutes).
	SilentAfter time.Duration
	// BusyPerHour is the mean count, at this hour of day over the last 7
	// days, from which the feed is "normally busy" (default 12 a hour).
	BusyPerHour float64
	// RejectRatio is the share of recent messages refused or not
	// converted above which RejectsRising may be raised (default 5%),
	// when it is also twice the baseline and at least MinRejects.
	RejectRatio float64
	// MinRejects is the fewest recent rejects that raise RejectsRising
	// (default 3).
	MinRejects int
}

func (t Thresholds) withDefaults() Thresholds {
	if t.SilentAfter <= 0 {
		t.SilentAfter = 15 * time.Minute
	}
	if t.BusyPerHour <= 0 {
		t.BusyPerHour = 12
	}
	if t.RejectRatio <= 0 {
		t.RejectRatio = 0.05
	}
	if t.MinRejects <= 0 {
		t.MinRejects = 3
	}
	return t
}

// Alert names, as in the Prometheus rules.
const (
	FeedSilent    = "EhrgateHL7FeedSilent"
	RejectsRising = "EhrgateHL7RejectsRising"
)

// Alert is one condition a person should look at.
type Alert struct {
	Name    string // FeedSilent, RejectsRising
	Summary string // user-safe
}

// TypeHour counts one trigger's messages in one hour.
type TypeHour struct {
	Hour     time.Time
	Type     string
	Messages int
	Failed   int
}

// Report is a feed's state at Now.
type Report struct {
	Connection string
	Now        time.Time
	// Window is how far back Hours, Types and Acks go (Options.Window).
	Window time.Duration
	// Hours counts messages per hour and trigger within Window, oldest
	// first; hours without messages are absent.
	Hours []TypeHour
	// Types lists the triggers seen within Window, sorted.
	Types []string
	// Acks counts the ACK codes sent within Window (AA, AE, AR).
	Acks map[string]int
	// Reused counts control-id reuses within Window.
	Reused int
	// Messages and Failed count the messages within Window.
	Messages, Failed int
	// Problems are the latest refused or unconverted messages (no content).
	Problems []store.HL7Problem
	// ReusedMessages are the latest control-id reuses within Window (up to
	// Options.Problems; no content).
	ReusedMessages []store.HL7Problem
	// LastMessage is when the newest message arrived (zero: never).
	LastMessage time.Time
	// Pending counts messages waiting for conversion; Lag is Now minus the
	// arrival of the oldest of them (0 when none).
	Pending int
	Lag     time.Duration
	// DelayP50 and DelayP99 are percentiles of the conversion delays of
	// the latest converted messages (0 for those converted inline).
	DelayP50, DelayP99 time.Duration
	// Expected is the mean number of messages in this hour of the day
	// (UTC) over the 7 days before today: how busy the feed normally is now.
	Expected float64
	// Recent counts the messages of the current and previous hour, and
	// RecentRejected those refused or not converted, by reason code (the
	// HL7 error condition, table 0357, or "not converted").
	Recent         int
	RecentRejected map[string]int
	// BaselineRejectRatio is the share refused or not converted in the 7
	// days before the current and previous hour.
	BaselineRejectRatio float64
	// Alerts are the conditions raised now.
	Alerts []Alert
}

// RecentRejects is the sum of RecentRejected.
func (r Report) RecentRejects() int {
	n := 0
	for _, v := range r.RecentRejected {
		n += v
	}
	return n
}

// Options configure Build.
type Options struct {
	// Window is how much history the report's hourly counts show
	// (default 24 hours).
	Window time.Duration
	// Problems is how many refused or unconverted messages to list
	// (default 50); recent rejects by reason are counted from up to 500.
	Problems   int
	Thresholds Thresholds
}

// Build reads connection's log from s and computes its report at now.
func Build(ctx context.Context, s store.HL7Stats, connection string, now time.Time, o Options) (Report, error) {
	if o.Window <= 0 {
		o.Window = 24 * time.Hour
	}
	if o.Problems <= 0 {
		o.Problems = 50
	}
	th := o.Thresholds.withDefaults()
	now = now.UTC()
	r := Report{Connection: connection, Now: now, Window: o.Window, Acks: map[string]int{}, RecentRejected: map[string]int{}}
	thisHour := now.Truncate(time.Hour)
	weekAgo := thisHour.Add(-7 * 24 * time.Hour)
	since := now.Add(-o.Window)
	if since.After(weekAgo) {
		since = weekAgo
	}
	hours, err := s.HL7Hourly(ctx, connection, since)
	if err != nil {
		return r, fmt.Errorf("feed %s: %w", connection, err)
	}
	feed, err := s.HL7Feed(ctx, connection)
	if err != nil {
		return r, fmt.Errorf("feed %s: %w", connection, err)
	}
	probs, err := s.HL7Problems(ctx, connection, max(o.Problems, 500))
	if err != nil {
		return r, fmt.Errorf("feed %s: %w", connection, err)
	}
	r.Problems = probs[:min(len(probs), o.Problems)]
	if r.ReusedMessages, err = s.HL7Reused(ctx, connection, now.Add(-o.Window).Truncate(time.Hour), o.Problems); err != nil {
		return r, fmt.Errorf("feed %s: %w", connection, err)
	}

	windowStart := now.Add(-o.Window).Truncate(time.Hour)
	recentStart := thisHour.Add(-time.Hour)
	types := map[string]bool{}
	byTypeHour := map[[2]string]*TypeHour{}
	var baseMsgs, baseFailed, sameHour int
	for _, h := range hours {
		if !h.Hour.Before(windowStart) {
			r.Acks[h.Ack] += h.Messages
			r.Reused += h.Reused
			r.Messages += h.Messages
			r.Failed += h.Failed
			types[h.MessageType] = true
			k := [2]string{h.Hour.Format(time.RFC3339), h.MessageType}
			th := byTypeHour[k]
			if th == nil {
				th = &TypeHour{Hour: h.Hour, Type: h.MessageType}
				byTypeHour[k] = th
			}
			th.Messages += h.Messages
			th.Failed += h.Failed
		}
		switch {
		case !h.Hour.Before(recentStart):
			r.Recent += h.Messages
		case !h.Hour.Before(weekAgo):
			baseMsgs += h.Messages
			baseFailed += h.Failed
		}
		if h.Hour.Before(thisHour.Truncate(24*time.Hour)) && !h.Hour.Before(weekAgo) && h.Hour.Hour() == now.Hour() {
			sameHour += h.Messages
		}
	}
	for _, th := range byTypeHour {
		r.Hours = append(r.Hours, *th)
	}
	sort.Slice(r.Hours, func(i, j int) bool {
		if !r.Hours[i].Hour.Equal(r.Hours[j].Hour) {
			return r.Hours[i].Hour.Before(r.Hours[j].Hour)
		}
		return r.Hours[i].Type < r.Hours[j].Type
	})
	for t := range types {
		r.Types = append(r.Types, t)
	}
	sort.Strings(r.Types)
	r.Expected = float64(sameHour) / 7
	if baseMsgs > 0 {
		r.BaselineRejectRatio = float64(baseFailed) / float64(baseMsgs)
	}
	for _, p := range probs {
		if p.ReceivedAt.Before(recentStart) {
			continue
		}
		r.RecentRejected[ReasonCode(p.Reason)]++
	}

	r.LastMessage = feed.LastMessage
	r.Pending = feed.Pending
	if !feed.OldestPending.IsZero() && now.After(feed.OldestPending) {
		r.Lag = now.Sub(feed.OldestPending)
	}
	r.DelayP50, r.DelayP99 = percentile(feed.Lags, 0.50), percentile(feed.Lags, 0.99)
	r.Alerts = alerts(r, th)
	return r, nil
}

func alerts(r Report, th Thresholds) []Alert {
	var out []Alert
	if !r.LastMessage.IsZero() && r.Now.Sub(r.LastMessage) > th.SilentAfter && r.Expected >= th.BusyPerHour {
		out = append(out, Alert{Name: FeedSilent, Summary: fmt.Sprintf(
			"No message for %s, at an hour when this feed normally brings %.0f an hour.",
			r.Now.Sub(r.LastMessage).Truncate(time.Minute), r.Expected)})
	}
	rej := r.RecentRejects()
	if r.Recent > 0 && rej >= th.MinRejects {
		ratio := float64(rej) / float64(r.Recent)
		if ratio > th.RejectRatio && ratio > 2*r.BaselineRejectRatio {
			out = append(out, Alert{Name: RejectsRising, Summary: fmt.Sprintf(
				"%d of %d messages in the last two hours were refused or not converted (%.0f%%; %.1f%% over the week before).",
				rej, r.Recent, 100*ratio, 100*r.BaselineRejectRatio)})
		}
	}
	return out
}

// conditionRe finds the HL7 error condition (table 0357) in a reason
// written by hl7.MessageError.Error: "... (HL7 102 Data type error)".
var conditionRe = regexp.MustCompile(`\(HL7 (\d{3}) `)

// ReasonCode classifies a logged reason into a bounded label: the HL7
// error condition code of a refusal ("102"), "not converted" for a
// message kept unconverted, "other" else.
func ReasonCode(reason string) string {
	if m := conditionRe.FindStringSubmatch(reason); m != nil {
		return m[1]
	}
	if len(reason) >= len("not converted") && reason[:len("not converted")] == "not converted" {
		return "not converted"
	}
	return "other"
}

// percentile returns the q-quantile of ds (nearest rank); 0 for none.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	i = max(0, min(i, len(s)-1))
	return s[i]
}
