// Package hl7feed is the simulated HL7 v2 feed of ehrsim: a realistic,
// deterministic ADT/ORU/VXU stream for synth's patients, sent over MLLP
// (`ehrgate sim --hl7-to HOST:PORT`), with fault knobs to exercise a
// receiver: connections dropped before the ACK, duplicate sends and
// malformed frames.
package hl7feed

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"ehrgate/hl7"
	"ehrgate/hl7/mllp"
	"ehrgate/synth"
)

// Options configure Run.
type Options struct {
	// Addr is the receiver, HOST:PORT.
	Addr string
	// Patients and Seed select the synth population (same as ehrsim's, so
	// the feed describes the simulated EHR's patients). Default 10 patients.
	Patients int
	Seed     int64
	// Connections send in parallel (default 1). Messages of one patient
	// always go over the same connection, in order.
	Connections int
	// Limit stops after that many messages (0 = all).
	Limit int
	// Rate, when > 0, paces sending to that many messages per second in total.
	Rate float64
	// DropRate is the probability that a message is first written on a
	// connection that is then closed before its ACK is read (the message is
	// then resent on a new connection, as a real sender would).
	DropRate float64
	// DuplicateRate is the probability that an acknowledged message is sent
	// again (the receiver must ACK it and not store it twice).
	DuplicateRate float64
	// MalformedRate is the probability of sending, before a message, a
	// frame whose MSH encoding characters are broken (the receiver should
	// answer AR and quarantine it).
	MalformedRate float64
	// FaultSeed seeds the fault choices (deterministic per connection).
	FaultSeed int64
	// TLSConfig, when set, speaks MLLP over TLS.
	TLSConfig *tls.Config
	// AckTimeout per attempt (default 30 s).
	AckTimeout time.Duration
	Logger     *slog.Logger
}

// Stats says what Run did.
type Stats struct {
	Messages   int            `json:"messages"`   // distinct messages acknowledged AA/CA
	Dropped    int            `json:"dropped"`    // connections dropped before an ACK
	Duplicates int            `json:"duplicates"` // duplicate sends (each also acknowledged)
	Malformed  int            `json:"malformed"`  // malformed frames sent
	Rejected   int            `json:"rejected"`   // malformed frames answered AR/AE (expected)
	NAKs       int            `json:"naks"`       // real messages answered with an error code
	ByType     map[string]int `json:"byType"`
}

// Run sends the feed to o.Addr and returns when every message has been
// acknowledged, ctx is done, or a message could not be delivered.
func Run(ctx context.Context, o Options) (Stats, error) {
	if o.Patients <= 0 {
		o.Patients = 10
	}
	if o.Connections <= 0 {
		o.Connections = 1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	msgs := Messages(synth.New(synth.Options{Patients: o.Patients, Seed: o.Seed}), o.Patients)
	if o.Limit > 0 && len(msgs) > o.Limit {
		msgs = msgs[:o.Limit]
	}
	lanes := make([][]Message, o.Connections)
	for _, m := range msgs {
		lanes[m.Patient%o.Connections] = append(lanes[m.Patient%o.Connections], m)
	}
	var pace <-chan time.Time
	if o.Rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / o.Rate))
		defer t.Stop()
		pace = t.C
	}
	var (
		mu    sync.Mutex
		st    = Stats{ByType: map[string]int{}}
		wg    sync.WaitGroup
		errs  = make([]error, o.Connections)
		count atomic.Int64
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for lane := range lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ls, err := sendLane(ctx, o, lanes[lane], uint64(lane), pace)
			mu.Lock()
			st.Messages += ls.Messages
			st.Dropped += ls.Dropped
			st.Duplicates += ls.Duplicates
			st.Malformed += ls.Malformed
			st.Rejected += ls.Rejected
			st.NAKs += ls.NAKs
			for k, v := range ls.ByType {
				st.ByType[k] += v
			}
			mu.Unlock()
			count.Add(int64(ls.Messages))
			if err != nil {
				errs[lane] = err
				cancel()
			}
		}()
	}
	wg.Wait()
	return st, errors.Join(errs...)
}

func sendLane(ctx context.Context, o Options, msgs []Message, lane uint64, pace <-chan time.Time) (Stats, error) {
	st := Stats{ByType: map[string]int{}}
	if len(msgs) == 0 {
		return st, nil
	}
	rng := rand.New(rand.NewPCG(uint64(o.FaultSeed), lane))
	c, err := mllp.Dial(ctx, o.Addr, mllp.ClientOptions{TLSConfig: o.TLSConfig, AckTimeout: o.AckTimeout, MaxAttempts: 8, Logger: o.Logger})
	if err != nil {
		return st, fmt.Errorf("connecting to %s: %w", o.Addr, err)
	}
	defer c.Close()
	for _, m := range msgs {
		if pace != nil {
			select {
			case <-ctx.Done():
				return st, ctx.Err()
			case <-pace:
			}
		}
		if o.MalformedRate > 0 && rng.Float64() < o.MalformedRate {
			st.Malformed++
			if rejected, err := sendRaw(ctx, o, malformed(m.Bytes), true); err == nil && rejected {
				st.Rejected++
			}
		}
		if o.DropRate > 0 && rng.Float64() < o.DropRate {
			st.Dropped++
			_, _ = sendRaw(ctx, o, m.Bytes, false)
		}
		if _, err := c.Send(ctx, m.Bytes); err != nil {
			var nak *mllp.NAKError
			if errors.As(err, &nak) {
				st.NAKs++
				o.Logger.Warn("hl7 feed: message not accepted", "control_id", m.ControlID, "code", string(nak.Code))
				continue
			}
			return st, fmt.Errorf("sending %s: %w", m.ControlID, err)
		}
		st.Messages++
		st.ByType[m.Type]++
		if o.DuplicateRate > 0 && rng.Float64() < o.DuplicateRate {
			st.Duplicates++
			if _, err := c.Send(ctx, m.Bytes); err != nil {
				return st, fmt.Errorf("resending duplicate %s: %w", m.ControlID, err)
			}
		}
	}
	return st, nil
}

// malformed breaks MSH-2 (a repeated encoding character), which no parser
// accepts, keeping MSH-10 so the reject can name it.
func malformed(b []byte) []byte {
	out := append([]byte(nil), b...)
	if len(out) > 8 {
		copy(out[4:8], "^^^^")
	}
	return out
}

// sendRaw writes one frame on a fresh connection. With readAck it waits for
// the ACK and reports whether it was a reject/error; without, it closes the
// connection right after writing (the dropped-connection fault).
func sendRaw(ctx context.Context, o Options, msg []byte, readAck bool) (bool, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	var conn net.Conn
	var err error
	if o.TLSConfig != nil {
		conn, err = (&tls.Dialer{NetDialer: &d, Config: o.TLSConfig}).DialContext(ctx, "tcp", o.Addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", o.Addr)
	}
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if err := mllp.WriteFrame(conn, msg); err != nil {
		return false, err
	}
	if !readAck {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST: an abrupt drop, not a polite close
		}
		return false, nil
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	raw, err := mllp.NewReader(conn, 0).ReadFrame()
	if err != nil {
		return false, err
	}
	ack, err := hl7.Parse(raw, hl7.ParseOptions{})
	if err != nil {
		return false, err
	}
	return hl7.AckCode(ack.Get("MSA-1")).IsError(), nil
}
