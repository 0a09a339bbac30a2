package events

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// SSEOptions configure SSEHandler.
type SSEOptions struct {
	Heartbeat time.Duration // comment line sent when idle (default 15 s)
	Buffer    int           // events buffered per client (default 256)
	// Done, when closed, ends every stream (http.Server.Shutdown does not
	// cancel request contexts; close this first so it need not wait).
	Done <-chan struct{}
}

// SSEHandler serves the bus as server-sent events (mount it at
// GET /events/stream). Each event is sent as
//
//	id: <ID>
//	event: <kind>
//	data: <Event JSON>
//
// A client reconnecting with a Last-Event-ID header (or ?lastEventId=)
// first gets the events it missed from the bus's ring buffer; when some have
// already left the buffer it gets an "event: reset" first so it knows to
// re-read state. A client too slow to keep up with its buffer is
// disconnected (and resumes with Last-Event-ID), never slowing the bus.
func SSEHandler(b *Bus, o SSEOptions) http.Handler {
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.Buffer <= 0 {
		o.Buffer = 256
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if b.log != nil {
			serveFromLog(w, r, b, o)
			return
		}
		rc := http.NewResponseController(w)
		last := b.LastID()
		resume := r.Header.Get("Last-Event-ID")
		if resume == "" {
			resume = r.URL.Query().Get("lastEventId")
		}
		if resume != "" {
			n, err := strconv.ParseUint(resume, 10, 64)
			if err != nil {
				http.Error(w, "Last-Event-ID must be an event id", http.StatusBadRequest)
				return
			}
			last = n
		}
		ch := make(chan Event, o.Buffer)
		overflow := make(chan struct{})
		var overflowed bool
		sub := SubscriberFunc(func(e Event) {
			if overflowed {
				return
			}
			select {
			case ch <- e:
			default:
				overflowed = true // called under the bus lock: no race
				close(overflow)
			}
		})
		backlog, complete, unsubscribe := b.subscribeSince(last, sub)
		defer unsubscribe()

		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return
		}
		if !complete && resume != "" {
			fmt.Fprintf(w, "event: reset\ndata: {\"reason\":\"events missed; re-read state\"}\n\n")
		}
		sent := last
		write := func(e Event) bool {
			if e.ID <= sent {
				return true
			}
			data, err := json.Marshal(e)
			if err != nil {
				return true
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.ID, e.Kind, data); err != nil {
				return false
			}
			sent = e.ID
			return true
		}
		for _, e := range backlog {
			if !write(e) {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
		tick := time.NewTicker(o.Heartbeat)
		defer tick.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-o.Done:
				return
			case <-overflow:
				// Drain what we have, then end: the client resumes from sent.
				for {
					select {
					case e := <-ch:
						if !write(e) {
							return
						}
					default:
						_ = rc.Flush()
						return
					}
				}
			case e := <-ch:
				if !write(e) {
					return
				}
				if err := rc.Flush(); err != nil {
					return
				}
			case <-tick.C:
				if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
					return
				}
				if err := rc.Flush(); err != nil {
					return
				}
			}
		}
	})
}

// logPoll is how often a stream of a durable bus looks for events other
// processes on the store wrote (this process's wake it at once).
const logPoll = time.Second

// serveFromLog streams a durable bus's events out of its log, from the
// client's Last-Event-ID (or the log's end), so a client resumes where it
// stopped whatever process it reconnects to; events trimmed before it
// came back are announced with "event: reset".
func serveFromLog(w http.ResponseWriter, r *http.Request, b *Bus, o SSEOptions) {
	ctx := r.Context()
	rc := http.NewResponseController(w)
	resume := r.Header.Get("Last-Event-ID")
	if resume == "" {
		resume = r.URL.Query().Get("lastEventId")
	}
	var sent int64
	if resume != "" {
		n, err := strconv.ParseInt(resume, 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "Last-Event-ID must be an event id", http.StatusBadRequest)
			return
		}
		sent = n
	} else {
		n, err := b.log.NewestEvent(ctx)
		if err != nil {
			http.Error(w, "the event log cannot be read now", http.StatusServiceUnavailable)
			return
		}
		sent = n
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if resume != "" {
		if oldest, err := b.log.OldestEvent(ctx); err == nil && oldest > sent+1 {
			fmt.Fprintf(w, "event: reset\ndata: {\"reason\":\"events missed; re-read state\"}\n\n")
		}
	}
	_ = rc.Flush()
	heartbeat := time.NewTicker(o.Heartbeat)
	defer heartbeat.Stop()
	poll := time.NewTicker(logPoll)
	defer poll.Stop()
	for {
		wake := b.woken()
		for {
			evs, err := b.log.EventsSince(ctx, sent, 500)
			if err != nil {
				return // the client resumes from sent
			}
			for _, se := range evs {
				e, err := decodeStored(se)
				if err == nil {
					data, _ := json.Marshal(e)
					if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.ID, e.Kind, data); err != nil {
						return
					}
				}
				sent = se.Seq
			}
			if err := rc.Flush(); err != nil {
				return
			}
			if len(evs) < 500 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-o.Done:
			return
		case <-wake:
		case <-poll.C:
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}
