package store

import (
	"context"
	"time"
)

// HL7HourCount counts the messages of one connection received in one hour
// (UTC) with one message type and one acknowledgment code.
type HL7HourCount struct {
	Hour        time.Time // the start of the hour, UTC
	MessageType string    // "ADT^A01"; "" when the message had none
	Ack         string    // MSA-1 sent: "AA", "AE" or "AR"
	Messages    int
	// Failed counts those refused or not converted (Error set).
	Failed int
	// Reused counts those whose control id an earlier message with other
	// content had.
	Reused int
}

// HL7Problem is a logged message that was refused or not converted. It
// never carries the message's content: a page that lists problems shows
// no patient data.
type HL7Problem struct {
	Seq         int64
	ControlID   string // MSH-10
	MessageType string
	Ack         string // MSA-1 sent
	ReceivedAt  time.Time
	Reason      string // HL7Message.Error: user-safe
}

// HL7Feed summarises the state of one connection's message log at the
// time of the call.
type HL7Feed struct {
	// LastMessage is when the newest message was received (zero: never).
	LastMessage time.Time
	// OldestPending is when the oldest message still waiting for
	// conversion (not processed, no error) was received (zero: none).
	OldestPending time.Time
	// Pending counts those messages.
	Pending int
	// Lags are the conversion delays (processed − received) of up to the
	// 1,000 most recently logged processed messages, newest first; zero
	// for messages converted inline, before their ACK.
	Lags []time.Duration
}

// HL7Stats reads the HL7 v2 message log by connection for a feed's
// operations page and its metrics, and replays a message. It never returns
// message content.
//
// Contract: implementations are safe for concurrent use; HL7Hourly and
// HL7Feed read committed data only; ReplayHL7 is atomic.
type HL7Stats interface {
	// HL7Hourly counts the messages of connection received at or after
	// since, by hour (UTC), message type and ACK code, oldest hour first.
	// Messages logged before ACK codes were recorded count as AA, or AE
	// when refused.
	HL7Hourly(ctx context.Context, connection string, since time.Time) ([]HL7HourCount, error)
	// HL7Problems lists up to limit messages of connection that were
	// refused or not converted (Error set), newest first.
	HL7Problems(ctx context.Context, connection string, limit int) ([]HL7Problem, error)
	// HL7Reused lists up to limit messages of connection received at or
	// after since whose control id an earlier message with other content
	// had (control-id reuses), newest first; Reason is their Error.
	HL7Reused(ctx context.Context, connection string, since time.Time, limit int) ([]HL7Problem, error)
	// HL7Feed summarises connection's log.
	HL7Feed(ctx context.Context, connection string) (HL7Feed, error)
	// ReplayHL7 clears the error of message seq of connection so that it
	// waits for conversion again (HL7Log.PendingHL7 lists it): after a fix
	// of the feed's configuration, a person asks for it to be converted.
	// The ACK code it was sent keeps its value. ErrNotFound when connection
	// has no such message with an error (processed or pending messages
	// are not replayed).
	ReplayHL7(ctx context.Context, connection string, seq int64) error
}
