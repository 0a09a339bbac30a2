package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/syslog"
	"net/url"
	"os"
	"strconv"

	"ehrgate/store"
)

// Sink receives the trail as JSON lines, for a SIEM: one AuditEvent (as
// Resource serves it, id = sequence number) per line. Write gets a batch
// in sequence order; when it returns nil the batch is durable at the sink
// (written and synced to a file, or handed to the syslog transport).
type Sink interface {
	Write(ctx context.Context, lines [][]byte) error
	Close() error
}

// docForward is the Documents kind keeping each sink's position in the
// trail (the last sequence number it has).
const docForward = "audit-forward"

// Forwarder copies new trail entries to a sink, resuming after the last
// entry the sink acknowledged (kept in the store, so a restart, or another
// replica, goes on where it stopped). Delivery is at least once: a
// process that dies between a write and saving the position sends that
// batch again, with the same ids, for the SIEM to drop.
//
// One Forward at a time per sink name: the gateway runs it as a unique
// job.
type Forwarder struct {
	Trail store.AuditLog
	Docs  store.Documents
	Sink  Sink
	// Name identifies the sink's position (several sinks each keep their
	// own).
	Name string
	// Batch is how many entries go per write (default 500).
	Batch int
}

type forwardState struct {
	Last int64 `json:"last"`
}

// Forward sends every entry after the saved position and returns how many
// it sent.
func (f *Forwarder) Forward(ctx context.Context) (int, error) {
	batch := f.Batch
	if batch <= 0 {
		batch = 500
	}
	var st forwardState
	doc, err := f.Docs.GetDocument(ctx, docForward, f.Name)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return 0, fmt.Errorf("reading the forwarding position: %w", err)
	default:
		if err := json.Unmarshal(doc.Body, &st); err != nil {
			return 0, fmt.Errorf("reading the forwarding position: %w", err)
		}
	}
	sent := 0
	for {
		es, err := f.Trail.QueryAudit(ctx, store.AuditQuery{After: st.Last, Limit: batch})
		if err != nil {
			return sent, fmt.Errorf("reading the audit trail: %w", err)
		}
		if len(es) == 0 {
			return sent, nil
		}
		lines := make([][]byte, 0, len(es))
		for _, e := range es {
			res, err := Resource(e)
			if err != nil {
				return sent, err
			}
			lines = append(lines, res)
		}
		if err := f.Sink.Write(ctx, lines); err != nil {
			return sent, fmt.Errorf("forwarding audit events: %w", err)
		}
		st.Last = es[len(es)-1].Seq
		body, _ := json.Marshal(st)
		if err := f.Docs.UpdateDocument(ctx, docForward, f.Name, func([]byte) ([]byte, error) { return body, nil }); err != nil {
			return sent, fmt.Errorf("saving the forwarding position: %w", err)
		}
		sent += len(es)
	}
}

// FileSink appends JSON lines to a file (created 0600), synced after each
// batch.
type FileSink struct{ f *os.File }

// NewFileSink opens path for appending.
func NewFileSink(path string) (*FileSink, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the audit sink: %w", err)
	}
	return &FileSink{f}, nil
}

// Write implements Sink.
func (s *FileSink) Write(_ context.Context, lines [][]byte) error {
	w := bufio.NewWriter(s.f)
	for _, l := range lines {
		w.Write(l)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return s.f.Sync()
}

// Close implements Sink.
func (s *FileSink) Close() error { return s.f.Close() }

// SyslogSink sends each event as one syslog message (facility authpriv,
// severity info, tag "ehrgate-audit") over UDP, TCP or a Unix socket.
type SyslogSink struct{ w *syslog.Writer }

// NewSyslogSink connects to a syslog server named by a URL:
// udp://host:514, tcp://host:601, unix:///dev/log.
func NewSyslogSink(raw string) (*SyslogSink, error) {
	network, addr, err := SyslogAddress(raw)
	if err != nil {
		return nil, err
	}
	w, err := syslog.Dial(network, addr, syslog.LOG_AUTHPRIV|syslog.LOG_INFO, "ehrgate-audit")
	if err != nil {
		return nil, fmt.Errorf("connecting to syslog at %s: %w", raw, err)
	}
	return &SyslogSink{w}, nil
}

// SyslogAddress splits a syslog URL into the network and address
// log/syslog dials.
func SyslogAddress(raw string) (network, addr string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("syslog address %q: %w", raw, err)
	}
	switch u.Scheme {
	case "udp", "tcp":
		if u.Port() == "" {
			return "", "", fmt.Errorf("syslog address %q: give the port (udp://host:514)", raw)
		}
		if _, err := strconv.Atoi(u.Port()); err != nil || u.Hostname() == "" {
			return "", "", fmt.Errorf("syslog address %q: not host:port", raw)
		}
		return u.Scheme, u.Host, nil
	case "unix", "unixgram":
		if u.Path == "" {
			return "", "", fmt.Errorf("syslog address %q: give the socket path (unix:///dev/log)", raw)
		}
		return u.Scheme, u.Path, nil
	}
	return "", "", fmt.Errorf("syslog address %q: use udp://, tcp:// or unix://", raw)
}

// Write implements Sink.
func (s *SyslogSink) Write(_ context.Context, lines [][]byte) error {
	for _, l := range lines {
		if err := s.w.Info(string(l)); err != nil {
			return err
		}
	}
	return nil
}

// Close implements Sink.
func (s *SyslogSink) Close() error { return s.w.Close() }
