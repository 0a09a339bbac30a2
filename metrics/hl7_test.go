package metrics

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ehrgate/store"
)

// fakeFeeds is a message log with one refusal and one message per hour.
type fakeFeeds struct{}

var fakeNow = time.Now().UTC()

func (fakeFeeds) HL7Hourly(ctx context.Context, connection string, since time.Time) ([]store.HL7HourCount, error) {
	h := fakeNow.Truncate(time.Hour)
	return []store.HL7HourCount{
		{Hour: h, MessageType: "ADT^A01", Ack: "AA", Messages: 3},
		{Hour: h, MessageType: "ADT^A01", Ack: "AE", Messages: 1, Failed: 1, Reused: 1},
	}, nil
}

func (fakeFeeds) HL7Problems(ctx context.Context, connection string, limit int) ([]store.HL7Problem, error) {
	return []store.HL7Problem{{Seq: 1, ControlID: "C1", MessageType: "ADT^A01", Ack: "AE", ReceivedAt: fakeNow,
		Reason: "refused: PID-3 (HL7 101 Required field missing)"}}, nil
}

func (fakeFeeds) HL7Reused(ctx context.Context, connection string, since time.Time, limit int) ([]store.HL7Problem, error) {
	return nil, nil
}

func (fakeFeeds) HL7Feed(ctx context.Context, connection string) (store.HL7Feed, error) {
	return store.HL7Feed{LastMessage: fakeNow, OldestPending: fakeNow.Add(-time.Minute), Pending: 1,
		Lags: []time.Duration{0, time.Second}}, nil
}

func (fakeFeeds) ReplayHL7(ctx context.Context, connection string, seq int64) error { return nil }

func TestHL7Feeds(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewHL7Feeds(fakeFeeds{}, func() []string { return []string{"north"} }, func() time.Time { return fakeNow }, nil))
	for series, want := range map[string]float64{
		`ehrgate_hl7_messages_24h{ack="AA",connection="north"}`:                 3,
		`ehrgate_hl7_messages_24h{ack="AE",connection="north"}`:                 1,
		`ehrgate_hl7_messages_24h{ack="AR",connection="north"}`:                 0,
		`ehrgate_hl7_recent_rejected_messages{connection="north",reason="101"}`: 1,
		`ehrgate_hl7_conversion_lag_seconds{connection="north"}`:                60,
		`ehrgate_hl7_reused_control_ids_24h{connection="north"}`:                1,
		`ehrgate_hl7_pending_messages{connection="north"}`:                      1,
	} {
		if got := gatherValue(t, reg, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}
