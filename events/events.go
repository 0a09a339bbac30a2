// Package events is ehrgate's internal event bus and its subscribers.
//
// Ingestion (the HL7 v2 listener) publishes an Event for each clinical
// happening it stores: admissions, transfers, discharges, registrations,
// updates, merges, cancellations, results and immunizations. An Event
// carries identifiers and resource references only, never clinical
// payload, so it can leave the process (webhooks, server-sent events)
// without carrying PHI beyond the patient identifier.
//
// Publish never blocks and never fails: every subscriber takes events into
// its own bounded queue and drops (and counts) what it cannot hold, so a
// slow webhook or browser can never slow down acknowledging messages.
// Subscribers: RefreshQueue (event-driven FHIR refresh), Webhooks (signed
// POSTs with retries) and SSEHandler (GET /events/stream with
// Last-Event-ID resume from the bus's ring buffer).
package events

import (
	"sync"
	"time"

	"context"
	"encoding/json"
	"fmt"

	"ehrgate/fhir"
	"ehrgate/store"
)

// Kind says what happened.
type Kind string

// Event kinds.
const (
	Admitted          Kind = "admitted"           // ADT A01
	Preadmitted       Kind = "preadmitted"        // ADT A05
	Transferred       Kind = "transferred"        // ADT A02, A17 (swap: one event per patient)
	ClassChanged      Kind = "class-changed"      // ADT A06 (outpatient to inpatient), A07 (inpatient to outpatient)
	Discharged        Kind = "discharged"         // ADT A03
	LeaveStarted      Kind = "leave-started"      // ADT A21 (leave of absence)
	LeaveEnded        Kind = "leave-ended"        // ADT A22 (back from leave)
	Registered        Kind = "registered"         // ADT A04, A28
	Updated           Kind = "updated"            // ADT A08, A31
	Merged            Kind = "merged"             // ADT A34, A39, A40, A47
	Cancelled         Kind = "cancelled"          // ADT A11 (cancel admit), A12 (cancel transfer), A13 (cancel discharge), A23 (delete visit)
	ResultFinal       Kind = "result-final"       // ORU R01, final or corrected report
	ResultPreliminary Kind = "result-preliminary" // ORU R01, any other report status
	Immunization      Kind = "immunization"       // VXU V04
	Ordered           Kind = "ordered"            // ORM O01, OML O21 (service orders), RDE O11/O25 (medication orders)
	Document          Kind = "document"           // MDM T02, T06
	Scheduled         Kind = "scheduled"          // SIU S12-S15, S26 (appointment booked, moved, changed, cancelled, missed)
	Changed           Kind = "changed"            // a resource created or updated on the EHR (FHIR Subscription notification)
)

// Event is one happening. It never carries clinical content.
type Event struct {
	// ID is assigned by Bus.Publish, increasing from 1 within a process.
	ID   uint64    `json:"id"`
	Kind Kind      `json:"kind"`
	Time time.Time `json:"time"`
	// Connection is the ingesting connection (e.g. "hl7").
	Connection string `json:"connection"`
	// Source is the originating message, "urn:hl7v2:<app>|<facility>|<control id>".
	Source string `json:"source,omitempty"`
	// MessageType is e.g. "ADT^A01".
	MessageType string `json:"messageType,omitempty"`
	// Patient is the patient's identifier (system from its assigning authority).
	Patient fhir.Identifier `json:"patient"`
	// PatientRef is the stored Patient, "Patient/<id>".
	PatientRef string `json:"patientRef,omitempty"`
	// Resources are the stored resources concerned, "Type/id".
	Resources []string `json:"resources,omitempty"`
	// Replaced is, for Merged, the identifier of the retired patient.
	Replaced *fhir.Identifier `json:"replaced,omitempty"`
}

// Subscriber receives published events. Notify must not block (queue the
// event or drop it) and must be safe for concurrent use.
type Subscriber interface {
	Notify(e Event)
}

// SubscriberFunc adapts a non-blocking function to Subscriber.
type SubscriberFunc func(e Event)

// Notify calls f.
func (f SubscriberFunc) Notify(e Event) { f(e) }

// DefaultRingSize is how many recent events a Bus keeps for resume.
const DefaultRingSize = 1024

// BusOptions configure a Bus. The zero value is usable.
type BusOptions struct {
	RingSize int              // recent events kept for Since (default DefaultRingSize)
	Clock    func() time.Time // default time.Now
	// Log, when set, makes the bus durable: Publish writes each event to
	// it first and the event's ID is its position there (see durable.go).
	Log Log
	// OnError hears events that could not be written to Log (they are
	// still announced in this process, without an ID).
	OnError func(error)
}

// Bus is an in-process publish/subscribe hub with a ring buffer of recent
// events. It is safe for concurrent use.
type Bus struct {
	clock   func() time.Time
	log     Log
	onError func(error)
	wake    chan struct{} // closed and replaced on each publish (durable readers wait on it)

	mu     sync.Mutex
	nextID uint64
	ring   []Event // circular, len == cap once full
	start  int     // index of the oldest event in ring
	subs   map[*subEntry]struct{}
}

type subEntry struct{ s Subscriber }

// NewBus returns an empty bus.
func NewBus(o BusOptions) *Bus {
	if o.RingSize <= 0 {
		o.RingSize = DefaultRingSize
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return &Bus{clock: o.Clock, log: o.Log, onError: o.OnError, wake: make(chan struct{}),
		ring: make([]Event, 0, o.RingSize), subs: map[*subEntry]struct{}{}}
}

// Publish assigns e its ID (and Time when zero), keeps it in the ring
// buffer and hands it to every subscriber, in that order, under one lock:
// subscribers see events in ID order. It returns the published event.
//
// A durable bus (BusOptions.Log) writes the event to the log first, and
// its ID is its position there; when that fails, the event is announced
// in this process with ID 0 and OnError hears why.
func (b *Bus) Publish(e Event) Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e.Time.IsZero() {
		e.Time = b.clock().UTC()
	}
	if b.log != nil {
		e, se, err := b.Prepare(e)
		var seqs []int64
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
			seqs, err = b.log.AppendEvents(ctx, se.Recorded, se.Body)
			cancel()
		}
		if err != nil {
			if b.onError != nil {
				b.onError(fmt.Errorf("event not written to the log: %w", err))
			}
		} else {
			e.ID = uint64(seqs[0])
		}
		b.announceLocked(e)
		return e
	}
	b.nextID++
	e.ID = b.nextID
	if len(b.ring) < cap(b.ring) {
		b.ring = append(b.ring, e)
	} else {
		b.ring[b.start] = e
		b.start = (b.start + 1) % len(b.ring)
	}
	for s := range b.subs {
		s.s.Notify(e)
	}
	return e
}

// Durable reports whether the bus writes its events to a log
// (BusOptions.Log). A writer that stores events in its own transaction
// (store.HL7Message.Events) does so only for a durable bus, with
// Prepare, and then calls Announce.
func (b *Bus) Durable() bool { return b.log != nil }

// Prepare stamps e (Time, when zero) and returns it with the log entry
// that records it, for a writer that appends the entry to the event log in
// its own transaction; after that commits it announces the event with
// Announce, its ID set to the entry's Seq.
func (b *Bus) Prepare(e Event) (Event, store.StoredEvent, error) {
	if e.Time.IsZero() {
		e.Time = b.clock().UTC()
	}
	e.ID = 0
	body, err := json.Marshal(e)
	if err != nil {
		return e, store.StoredEvent{}, fmt.Errorf("encoding event: %w", err)
	}
	return e, store.StoredEvent{Recorded: e.Time, Body: body}, nil
}

// Announce hands subscribers in this process an event already written to
// the durable log (e.ID is its position there), and wakes the log's
// readers. Other processes read it from the log.
func (b *Bus) Announce(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.announceLocked(e)
}

func (b *Bus) announceLocked(e Event) {
	if e.ID > b.nextID {
		b.nextID = e.ID
	}
	close(b.wake)
	b.wake = make(chan struct{})
	for s := range b.subs {
		s.s.Notify(e)
	}
}

// Subscribe registers s until the returned function is called.
func (b *Bus) Subscribe(s Subscriber) (unsubscribe func()) {
	ent := &subEntry{s}
	b.mu.Lock()
	b.subs[ent] = struct{}{}
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		delete(b.subs, ent)
		b.mu.Unlock()
	}
}

// Since returns the kept events with ID > after, oldest first. complete is
// false when events after `after` have already left the ring buffer (the
// caller missed some).
func (b *Bus) Since(after uint64) (evs []Event, complete bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sinceLocked(after)
}

func (b *Bus) sinceLocked(after uint64) ([]Event, bool) {
	n := len(b.ring)
	if n == 0 {
		return nil, after >= b.nextID
	}
	oldest := b.ring[b.start].ID
	complete := after+1 >= oldest
	var out []Event
	for i := 0; i < n; i++ {
		e := b.ring[(b.start+i)%n]
		if e.ID > after {
			out = append(out, e)
		}
	}
	return out, complete
}

// subscribeSince atomically takes the kept events after `after` and
// subscribes s, so that nothing published in between is missed.
func (b *Bus) subscribeSince(after uint64, s Subscriber) ([]Event, bool, func()) {
	ent := &subEntry{s}
	b.mu.Lock()
	evs, complete := b.sinceLocked(after)
	b.subs[ent] = struct{}{}
	b.mu.Unlock()
	return evs, complete, func() {
		b.mu.Lock()
		delete(b.subs, ent)
		b.mu.Unlock()
	}
}

// LastID is the ID of the most recent event (0 before the first).
func (b *Bus) LastID() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.nextID
}

// woken returns a channel closed at the next publish in this process.
func (b *Bus) woken() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.wake
}
