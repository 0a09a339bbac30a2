package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ehrgate/hl7/feedhealth"
	"ehrgate/store"
)

// HL7Feeds exports the state of each HL7 v2 feed, read from the message
// log at scrape time (feedhealth.Build): what the alert rules in
// deploy/prometheus/hl7.yml use. Labels are connection names, ACK codes
// and HL7 error condition codes only.
//
//	ehrgate_hl7_last_message_timestamp_seconds{connection}
//	ehrgate_hl7_conversion_lag_seconds{connection}        now − oldest message waiting for conversion
//	ehrgate_hl7_conversion_delay_seconds{connection,quantile}  of the latest converted messages
//	ehrgate_hl7_pending_messages{connection}
//	ehrgate_hl7_expected_messages_per_hour{connection}    mean at this hour of day over the last 7 days
//	ehrgate_hl7_recent_messages{connection}               current and previous hour
//	ehrgate_hl7_recent_rejected_messages{connection,reason}
//	ehrgate_hl7_baseline_reject_ratio{connection}         the 7 days before
//	ehrgate_hl7_messages_24h{connection,ack}
//	ehrgate_hl7_reused_control_ids_24h{connection}
type HL7Feeds struct {
	s     store.HL7Stats
	feeds func() []string
	now   func() time.Time
	log   *slog.Logger

	lastMessage, lag, delay, pending, expected, recent, rejected, baseline, messages, reused *prometheus.Desc
}

// NewHL7Feeds returns a collector of the feeds named by feeds (the HL7
// listeners' connections) from s. now and log may be nil.
func NewHL7Feeds(s store.HL7Stats, feeds func() []string, now func() time.Time, log *slog.Logger) *HL7Feeds {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := []string{"connection"}
	return &HL7Feeds{s: s, feeds: feeds, now: now, log: log,
		lastMessage: prometheus.NewDesc("ehrgate_hl7_last_message_timestamp_seconds",
			"Unix time of the last HL7 v2 message received on the feed (absent: none yet).", c, nil),
		lag: prometheus.NewDesc("ehrgate_hl7_conversion_lag_seconds",
			"Age of the oldest HL7 v2 message waiting for conversion (0: none waits).", c, nil),
		delay: prometheus.NewDesc("ehrgate_hl7_conversion_delay_seconds",
			"Conversion delay (converted − received) of the latest converted messages, by quantile; 0 for inline conversion.",
			[]string{"connection", "quantile"}, nil),
		pending: prometheus.NewDesc("ehrgate_hl7_pending_messages",
			"HL7 v2 messages waiting for conversion.", c, nil),
		expected: prometheus.NewDesc("ehrgate_hl7_expected_messages_per_hour",
			"Mean messages received in this hour of the day (UTC) over the 7 days before today: how busy the feed normally is now.", c, nil),
		recent: prometheus.NewDesc("ehrgate_hl7_recent_messages",
			"Messages received in the current and previous hour.", c, nil),
		rejected: prometheus.NewDesc("ehrgate_hl7_recent_rejected_messages",
			"Messages of the current and previous hour refused or not converted, by reason (HL7 error condition, table 0357, or \"not converted\").",
			[]string{"connection", "reason"}, nil),
		baseline: prometheus.NewDesc("ehrgate_hl7_baseline_reject_ratio",
			"Share of messages refused or not converted in the 7 days before the current and previous hour.", c, nil),
		messages: prometheus.NewDesc("ehrgate_hl7_messages_24h",
			"Messages received in the last 24 hours, by ACK code sent (AA, AE, AR).", []string{"connection", "ack"}, nil),
		reused: prometheus.NewDesc("ehrgate_hl7_reused_control_ids_24h",
			"Messages of the last 24 hours whose control id an earlier message with other content had.", c, nil),
	}
}

// Describe implements prometheus.Collector.
func (h *HL7Feeds) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{h.lastMessage, h.lag, h.delay, h.pending, h.expected, h.recent,
		h.rejected, h.baseline, h.messages, h.reused} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A feed whose log cannot be
// read is left out (and logged) rather than failing the scrape.
func (h *HL7Feeds) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, conn := range h.feeds() {
		r, err := feedhealth.Build(ctx, h.s, conn, h.now(), feedhealth.Options{Problems: 1})
		if err != nil {
			h.log.Warn("metrics: reading HL7 feed state", "connection", conn, "err", err)
			continue
		}
		g := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{conn}, labels...)...)
		}
		if !r.LastMessage.IsZero() {
			g(h.lastMessage, float64(r.LastMessage.UnixNano())/1e9)
		}
		g(h.lag, r.Lag.Seconds())
		g(h.delay, r.DelayP50.Seconds(), "0.5")
		g(h.delay, r.DelayP99.Seconds(), "0.99")
		g(h.pending, float64(r.Pending))
		g(h.expected, r.Expected)
		g(h.recent, float64(r.Recent))
		for reason, n := range r.RecentRejected {
			g(h.rejected, float64(n), reason)
		}
		g(h.baseline, r.BaselineRejectRatio)
		for _, ack := range []string{"AA", "AE", "AR"} {
			g(h.messages, float64(r.Acks[ack]), ack)
		}
		g(h.reused, float64(r.Reused))
	}
}

var _ prometheus.Collector = (*HL7Feeds)(nil)
