// Package hl7store is the store-backed mllp.Handler and mllp.Quarantiner:
// what turns the MLLP listener into a store-and-forward interface engine.
//
// For each message HandleMessage converts it to FHIR (hl7/tofhir),
// normalizes each resource like FHIR-sourced ones (normalize.Normalize),
// and stores the raw message and the resources in ONE transaction of the
// store's group commit (store.HL7Log.PutHL7). It returns nil, and the
// listener sends AA, only after that commit. Conversion costs microseconds,
// so doing it inline keeps one durable write per message and makes "stored"
// and "converted" the same moment: a crash before commit loses nothing
// (no ACK was sent, the sender resends), a crash after commit has both.
//
// Acceptance (tofhir's rules: usable patient identifiers, required fields,
// known segments, no control characters) is checked before anything is
// stored as clinical data. A message that fails them is still kept in the
// log with its raw bytes and the reason (store.HL7Message.Error), converts
// to nothing, and HandleMessage returns its *hl7.MessageError, so the
// listener answers AE (AR when it can never succeed) with an ERR segment
// naming segment, field and HL7 error code: the sender keeps the message
// and a person sees why. A valid message of a type tofhir does not convert
// is refused the same way (AR, 200/201) unless Options.KeepUnsupported, in
// which case it is kept unconverted, acknowledged AA and counted. Frames
// that do not parse go to the quarantine with their raw bytes
// (Quarantine).
//
// Deferred mode (Options.Deferred) checks acceptance, then stores only the
// raw message before the ACK and converts later from the durable log (Run,
// PendingHL7 → CompleteHL7 with the processed flag): the lowest ACK
// latency, at the cost of resources appearing shortly after the ACK.
//
// A duplicate is the same identity (MSH-3, MSH-4, MSH-10) and the same
// content (hl7.ContentHash, which leaves out MSH-7), detected atomically by
// the store; HandleMessage then returns mllp.ErrDuplicate (the listener
// ACKs AA without storing again) or, for a resend of a refused message, the
// same refusal. The same identity with other content is a new message,
// stored, converted and counted as a control-id reuse.
//
// Each message is logged with the ACK code its sender was sent
// (store.HL7Message.Ack), for the feed's page and metrics
// (store.HL7Stats, hl7/feedhealth); a refused message can be replayed
// from there (store.HL7Stats.ReplayHL7) once the feed's configuration is
// fixed, and Run or ProcessPending then converts it.
//
// Events (events.Bus) are published after commit: never for duplicates,
// never before the message is durable. With a durable bus (events in the
// store's event log) a converted message's events are written in the
// same transaction as the message and its resources (store.HL7Message.
// Events, store.HL7Completion.Events): a converted message always has its
// events in the log, for webhooks and other replicas, or the whole
// transaction fails and nothing is acknowledged or completed.
package hl7store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"ehrgate/events"
	"ehrgate/hl7"
	"ehrgate/hl7/mllp"
	"ehrgate/hl7/tofhir"
	"ehrgate/refresh"
	"ehrgate/store"
)

// Backend is what the handler needs from a store.
type Backend interface {
	store.HL7Log
	Quarantine(ctx context.Context, item store.QuarantineItem) error
	Get(ctx context.Context, connection, typ, id string) (store.Record, error)
}

// DefaultConnection is the connection name resources are stored under.
const DefaultConnection = "hl7"

// Options configure a Handler. The zero value (plus a Backend) is usable.
type Options struct {
	// Connection names the source of the stored resources and messages
	// (store.Record.Connection; default DefaultConnection). Use one per
	// listener to keep feeds apart.
	Connection string
	// Convert tunes the FHIR conversion (assigning-authority systems, time zone).
	Convert tofhir.Options
	// Bus, optional, receives an event per stored message.
	Bus *events.Bus
	// Deferred stores only the raw message before the ACK; Run (or
	// ProcessPending, from any process on the store) converts.
	Deferred bool
	// Logged, if set, is called after a message that waits for conversion
	// is durably logged (Deferred mode), for example to schedule the
	// conversion job. It must not block.
	Logged func()
	// KeepUnsupported acknowledges (AA) and keeps, unconverted, valid
	// messages of types tofhir does not convert. The default refuses them
	// (AR) so that no sender believes data was used when it was not; they
	// are kept in the log either way.
	KeepUnsupported bool
	// AckMode is the listener's acknowledgment mode, so that the log
	// records the ACK code the sender really got: in mllp.AckImmediate
	// (aa-only) every message is answered AA, refused or not.
	AckMode mllp.AckMode
	// Clock stamps received/fetched times (default time.Now).
	Clock  func() time.Time
	Logger *slog.Logger
}

// Handler implements mllp.Handler and mllp.Quarantiner over a Backend. It
// is safe for concurrent use.
type Handler struct {
	s   Backend
	o   Options
	log *slog.Logger
}

// New returns a handler storing into s.
func New(s Backend, o Options) *Handler {
	if o.Connection == "" {
		o.Connection = DefaultConnection
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{s: s, o: o, log: o.Logger}
}

// HandleMessage implements mllp.Handler: it returns nil once msg (and, unless
// deferred, its converted resources) is committed, and an error holding an
// *hl7.MessageError once a refused message is committed (see the package
// comment).
func (h *Handler) HandleMessage(ctx context.Context, msg *hl7.Message) error {
	now := h.o.Clock()
	m := h.message(msg, now)
	var res *tofhir.Result
	var recs []store.Record
	var convErr error
	var evs []events.Event
	if h.o.Deferred {
		convErr = tofhir.Check(msg, h.o.Convert) // acceptance only; Run converts
	} else {
		res, recs, convErr = h.convert(ctx, msg, now, nil)
		if convErr == nil {
			if evs, m.Events, convErr = h.prepare(res); convErr != nil {
				return convErr
			}
		}
	}
	refusal := h.refusal(convErr)
	m.Ack = string(hl7.AckApplicationAccept)
	switch {
	case convErr == nil:
		m.Processed = !h.o.Deferred
	case refusal == nil: // kept unconverted by configuration
		m.Error = "not converted: " + convErr.Error()
	default:
		m.Error = "refused: " + refusal.Error()
		if h.o.AckMode != mllp.AckImmediate {
			m.Ack = string(refusal.AckCode())
		}
		h.log.WarnContext(ctx, "HL7 message refused and kept", "control_id", m.ControlID,
			"type", m.MessageType, "reason", refusal.Error())
	}
	if _, err := h.s.PutHL7(ctx, m, recs); err != nil {
		if errors.Is(err, store.ErrDuplicateMessage) && refusal != nil {
			return fmt.Errorf("resent refused message: %w", refusal)
		}
		return h.putErr(err)
	}
	if refusal != nil {
		return refusal
	}
	if res != nil {
		h.publish(res, evs, m.Events)
	}
	if h.o.Deferred && convErr == nil && h.o.Logged != nil {
		h.o.Logged()
	}
	return nil
}

// refusal turns a conversion error into the error the sender is told;
// nil for success and for unsupported types kept by configuration.
func (h *Handler) refusal(err error) *hl7.MessageError {
	if err == nil || (h.o.KeepUnsupported && errors.Is(err, tofhir.ErrUnsupported)) {
		return nil
	}
	var me *hl7.MessageError
	if errors.As(err, &me) {
		return me
	}
	// A converted resource that normalize rejects, a store read that
	// failed: not the sender's fault, but the data was not used.
	return &hl7.MessageError{Condition: hl7.ErrApplicationInternalError, Reason: err.Error()}
}

func (h *Handler) putErr(err error) error {
	if errors.Is(err, store.ErrDuplicateMessage) {
		return fmt.Errorf("%w: %w", mllp.ErrDuplicate, err)
	}
	return err
}

func (h *Handler) message(msg *hl7.Message, now time.Time) store.HL7Message {
	hdr := msg.Header()
	m := store.HL7Message{
		Connection:      h.o.Connection,
		SendingApp:      string(hdr.Field(3).Raw()),
		SendingFacility: string(hdr.Field(4).Raw()),
		ControlID:       msg.ControlID(),
		Raw:             msg.Bytes(),
		ContentHash:     hl7.ContentHash(msg),
		ReceivedAt:      now,
	}
	mt := msg.MessageType()
	m.MessageType = mt.Code + "^" + mt.Trigger
	return m
}

// overlay holds resources written by earlier messages of a batch that is
// not committed yet, so that later messages of the batch see them.
type overlay map[string]store.Record

// current returns the stored (or overlaid) current version of a resource.
func (h *Handler) current(ctx context.Context, ov overlay, typ, id string) (store.Record, bool, error) {
	if r, ok := ov[typ+"/"+id]; ok {
		return r, true, nil
	}
	cur, err := h.s.Get(ctx, h.o.Connection, typ, id)
	switch {
	case err == nil:
		return cur, true, nil
	case errors.Is(err, store.ErrNotFound):
		return store.Record{}, false, nil
	}
	return store.Record{}, false, fmt.Errorf("reading current %s: %w", typ, err)
}

// sameButSource reports whether raw (with meta.source source) says exactly
// what cur says: a message that changes nothing about a resource (the
// same demographics repeated on every ADT) creates no new version.
func sameButSource(cur store.Record, raw []byte, source string) bool {
	if cur.Source == source {
		return bytes.Equal(cur.Raw, raw)
	}
	oldSrc, err1 := json.Marshal(cur.Source)
	newSrc, err2 := json.Marshal(source)
	if err1 != nil || err2 != nil {
		return false
	}
	if len(cur.Raw)-len(oldSrc) != len(raw)-len(newSrc) {
		return false
	}
	swapped := bytes.Replace(cur.Raw, append([]byte(`"source":`), oldSrc...), append([]byte(`"source":`), newSrc...), 1)
	return bytes.Equal(swapped, raw)
}

// convert turns msg into store records. Errors are user-safe reasons (no
// message content). ov, when not nil, is consulted before the store and
// receives the records.
func (h *Handler) convert(ctx context.Context, msg *hl7.Message, now time.Time, ov overlay) (*tofhir.Result, []store.Record, error) {
	res, err := tofhir.Convert(msg, h.o.Convert)
	if err != nil {
		return nil, nil, err
	}
	var recs []store.Record
	add := func(typ, id string, raw []byte, cur store.Record, exists bool) error {
		if exists && sameButSource(cur, raw, res.Source) {
			return nil
		}
		rec, err := h.record(typ, id, raw, res.Source, now)
		if err != nil {
			return err
		}
		recs = append(recs, rec)
		if ov != nil {
			ov[typ+"/"+id] = rec
		}
		return nil
	}
	var provs []tofhir.Resource
	for _, r := range res.Resources {
		if r.Type == "Provenance" {
			provs = append(provs, r) // after the rest: it targets what changed
			continue
		}
		cur, exists, err := h.current(ctx, ov, r.Type, r.ID)
		if err != nil {
			return nil, nil, err
		}
		raw := r.JSON
		if r.StatusOnly && exists {
			// Cancel / un-cancel: change the status of what is stored, keep the rest.
			if raw, err = tofhir.ApplyStatus(cur.Raw, r.Status, res.Source); err != nil {
				return nil, nil, err
			}
		}
		if err := add(r.Type, r.ID, raw, cur, exists); err != nil {
			return nil, nil, err
		}
	}
	if mg := res.Merge; mg != nil {
		cur, exists, err := h.current(ctx, ov, "Patient", mg.RetiredID)
		if err != nil {
			return nil, nil, err
		}
		var existing []byte
		if exists {
			existing = cur.Raw
		}
		raw, err := tofhir.LinkRetired(existing, mg, res.Source)
		if err != nil {
			return nil, nil, err
		}
		if err := add("Patient", mg.RetiredID, raw, cur, exists); err != nil {
			return nil, nil, err
		}
	}
	// The Provenance targets only what this message created or changed;
	// none when it changed nothing. It belongs to its patient's record
	// even when the Patient itself was unchanged (no Patient target).
	changed := map[string]bool{}
	for _, r := range recs {
		changed[r.Type+"/"+r.ID] = true
	}
	for _, p := range provs {
		raw, ok, err := tofhir.RetargetProvenance(p.JSON, func(ref string) bool { return changed[ref] })
		if err != nil || !ok {
			if err != nil {
				return nil, nil, err
			}
			continue
		}
		rec, err := h.record(p.Type, p.ID, raw, res.Source, now)
		if err != nil {
			return nil, nil, err
		}
		if rec.PatientID == "" {
			rec.PatientID = p.PatientID
		}
		recs = append(recs, rec)
		if ov != nil {
			ov[p.Type+"/"+p.ID] = rec
		}
	}
	return res, recs, nil
}

// record normalizes one converted resource exactly like refresh does for
// FHIR input.
func (h *Handler) record(typ, id string, raw []byte, source string, now time.Time) (store.Record, error) {
	rec, err := refresh.NewRecord(h.o.Connection, raw, now, source)
	if err != nil {
		return store.Record{}, fmt.Errorf("normalizing converted %s: %w", typ, err)
	}
	if rec.Type != typ || rec.ID != id {
		return store.Record{}, fmt.Errorf("converted %s/%s came out as %s/%s", typ, id, rec.Type, rec.ID)
	}
	return rec, nil
}

// Quarantine implements mllp.Quarantiner: unparseable frames are kept with
// their raw bytes under Type "HL7v2".
func (h *Handler) Quarantine(ctx context.Context, raw []byte, reason string) error {
	return h.s.Quarantine(ctx, store.QuarantineItem{Connection: h.o.Connection, Type: "HL7v2",
		Source: "mllp", Reason: reason, Raw: raw, ReceivedAt: h.o.Clock()})
}

// kindOf maps a conversion to its event kind.
func kindOf(res *tofhir.Result) events.Kind {
	switch res.MessageType + "^" + res.Trigger {
	case "ADT^A01":
		return events.Admitted
	case "ADT^A05":
		return events.Preadmitted
	case "ADT^A02", "ADT^A17":
		return events.Transferred
	case "ADT^A06", "ADT^A07":
		return events.ClassChanged
	case "ADT^A03":
		return events.Discharged
	case "ADT^A21":
		return events.LeaveStarted
	case "ADT^A22":
		return events.LeaveEnded
	case "ADT^A04", "ADT^A28":
		return events.Registered
	case "ADT^A08", "ADT^A31":
		return events.Updated
	case "ADT^A34", "ADT^A39", "ADT^A40", "ADT^A47":
		return events.Merged
	case "ADT^A11", "ADT^A12", "ADT^A13", "ADT^A23":
		return events.Cancelled
	case "ORM^O01", "OML^O21", "RDE^O11", "RDE^O25":
		return events.Ordered
	case "MDM^T02", "MDM^T06":
		return events.Document
	case "SIU^S12", "SIU^S13", "SIU^S14", "SIU^S15", "SIU^S26":
		return events.Scheduled
	case "ORU^R01":
		switch res.ResultStatus {
		case "final", "corrected", "amended":
			return events.ResultFinal
		}
		return events.ResultPreliminary
	case "VXU^V04":
		return events.Immunization
	}
	return ""
}

// Event returns the event a conversion raises on connection, about its
// first patient (see Events).
func Event(connection string, res *tofhir.Result) events.Event {
	return Events(connection, res)[0]
}

// Events returns the events a conversion raises on connection: one per
// patient the message concerns (two for an A17 swap, each with its own
// patient's resources), listing the clinical resources (not the message's
// MessageHeader and Provenance).
func Events(connection string, res *tofhir.Result) []events.Event {
	pats := res.Patients
	if len(pats) == 0 {
		pats = []tofhir.PatientRef{{ID: res.PatientID, Identifier: res.Patient}}
	}
	var out []events.Event
	for i, p := range pats {
		e := events.Event{Kind: kindOf(res), Connection: connection, Source: res.Source,
			MessageType: res.MessageType + "^" + res.Trigger, Patient: p.Identifier, PatientRef: "Patient/" + p.ID}
		for _, r := range res.Resources {
			if messageLevel(r.Type) || (len(pats) > 1 && r.PatientID != p.ID) {
				continue
			}
			e.Resources = append(e.Resources, r.Type+"/"+r.ID)
		}
		if res.Merge != nil && i == 0 {
			old := res.Merge.Retired
			e.Replaced = &old
			e.Resources = append(e.Resources, "Patient/"+res.Merge.RetiredID)
		}
		out = append(out, e)
	}
	return out
}

// messageLevel reports the resource types that describe the message
// rather than a patient's data.
func messageLevel(typ string) bool { return typ == "MessageHeader" || typ == "Provenance" }

// prepare returns, for a durable bus, the events of res and their log
// entries for the store to write with the message; nil otherwise.
func (h *Handler) prepare(res *tofhir.Result) ([]events.Event, []store.StoredEvent, error) {
	if h.o.Bus == nil || !h.o.Bus.Durable() || kindOf(res) == "" {
		return nil, nil, nil
	}
	evs := Events(h.o.Connection, res)
	logged := make([]store.StoredEvent, len(evs))
	for i, e := range evs {
		var err error
		if evs[i], logged[i], err = h.o.Bus.Prepare(e); err != nil {
			return nil, nil, err
		}
	}
	return evs, logged, nil
}

// publish announces the events of a committed conversion: those the store
// logged with it (prepare; logged holds their positions), or, on a bus
// without a log, res's events.
func (h *Handler) publish(res *tofhir.Result, evs []events.Event, logged []store.StoredEvent) {
	if h.o.Bus == nil || kindOf(res) == "" {
		return
	}
	if h.o.Bus.Durable() {
		for i, e := range evs {
			e.ID = uint64(logged[i].Seq)
			h.o.Bus.Announce(e)
		}
		return
	}
	for _, e := range Events(h.o.Connection, res) {
		h.o.Bus.Publish(e)
	}
}

// Run converts messages stored unprocessed (Deferred mode, or left by an
// earlier process) until ctx is done, polling every interval (default 200
// ms) when idle. Messages are converted in log order and completed a page
// at a time in one transaction; a conversion failure is recorded on the
// message and not retried.
func (h *Handler) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	var after int64
	for {
		n, last, err := h.processPending(ctx, after)
		if err != nil && ctx.Err() == nil {
			h.log.ErrorContext(ctx, "converting stored HL7 messages", "error", err)
		}
		after = last
		if n == 0 {
			after = 0 // rescan from the start when idle: cheap, catches anything skipped
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(interval):
			}
		}
	}
}

// ProcessPending converts every message currently pending and returns how
// many it completed.
func (h *Handler) ProcessPending(ctx context.Context) (int, error) {
	total := 0
	var after int64
	for {
		n, last, err := h.processPending(ctx, after)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
		after = last
	}
}

func (h *Handler) processPending(ctx context.Context, after int64) (int, int64, error) {
	pend, err := h.s.PendingHL7(ctx, h.o.Connection, after, 256)
	if err != nil || len(pend) == 0 {
		return 0, after, err
	}
	// The page is converted in log order and completed in one transaction
	// (one commit for many messages); conversions read earlier messages of
	// the page from an overlay, since those are not committed yet.
	var batch []store.HL7Completion
	var results []*tofhir.Result
	var evs [][]events.Event // per completion
	ov := overlay{}
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := h.s.CompleteHL7(ctx, batch); err != nil {
			return err
		}
		for i, res := range results {
			if res != nil {
				h.publish(res, evs[i], batch[i].Events)
			}
		}
		batch, results, evs, ov = batch[:0], results[:0], evs[:0], overlay{}
		return nil
	}
	for _, m := range pend {
		msg, err := hl7.Parse(m.Raw, hl7.ParseOptions{})
		var res *tofhir.Result
		var recs []store.Record
		if err == nil {
			res, recs, err = h.convert(ctx, msg, h.o.Clock(), ov)
		}
		c := store.HL7Completion{Seq: m.Seq, Records: recs}
		var ev []events.Event
		if err == nil {
			ev, c.Events, err = h.prepare(res)
		}
		if err != nil {
			c.Error, res = err.Error(), nil
			h.log.WarnContext(ctx, "HL7 message stored but not converted", "control_id", m.ControlID,
				"type", m.MessageType, "reason", c.Error)
		}
		batch, results, evs = append(batch, c), append(results, res), append(evs, ev)
	}
	if err := flush(); err != nil {
		return 0, after, err
	}
	return len(pend), pend[len(pend)-1].Seq, nil
}

var (
	_ mllp.Handler     = (*Handler)(nil)
	_ mllp.Quarantiner = (*Handler)(nil)
)
