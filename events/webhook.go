package events

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Webhook headers. The signature is hex HMAC-SHA256 over
// "<timestamp>.<body>" with the hook's secret, as "sha256=<hex>"; receivers
// recompute it and reject stale timestamps (replay protection).
const (
	HeaderSignature = "X-Ehrgate-Signature"
	HeaderTimestamp = "X-Ehrgate-Timestamp"
	HeaderEvent     = "X-Ehrgate-Event"
	HeaderDelivery  = "X-Ehrgate-Delivery"
)

// Sign returns the X-Ehrgate-Signature value for body sent at timestamp
// (Unix seconds, as in X-Ehrgate-Timestamp).
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature in constant time.
func Verify(secret []byte, timestamp string, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, timestamp, body)), []byte(signature))
}

// Webhook is one configured endpoint.
type Webhook struct {
	URL    string
	Secret []byte
	Kinds  []Kind // empty = every kind
}

// WebhookOptions configure Webhooks. Zero values select the defaults.
type WebhookOptions struct {
	Hooks          []Webhook
	Client         *http.Client     // default: 10 s timeout
	MaxAttempts    int              // per delivery (default 6)
	InitialBackoff time.Duration    // default 500 ms; doubles, full jitter
	MaxBackoff     time.Duration    // default 1 min
	QueueSize      int              // deliveries waiting (default 1024); beyond, dropped and logged
	Workers        int              // concurrent deliveries (default 4)
	LogSize        int              // delivery-log entries kept (default 1000)
	Clock          func() time.Time // default time.Now
	Logger         *slog.Logger
	// Sleep waits between attempts (tests make it instant); default a
	// context-aware timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Delivery is one attempt in the delivery log.
type Delivery struct {
	EventID uint64    `json:"eventId"`
	Kind    Kind      `json:"kind"`
	URL     string    `json:"url"`
	Attempt int       `json:"attempt"`
	Status  int       `json:"status,omitempty"` // HTTP status, 0 on a network error
	Error   string    `json:"error,omitempty"`
	At      time.Time `json:"at"`
	// Outcome: "delivered", "retrying", "failed" (gave up or not retryable)
	// or "dropped" (queue full, never attempted).
	Outcome string `json:"outcome"`
}

// Webhooks is a Subscriber that POSTs each event as JSON to the configured
// URLs, with retries (exponential backoff with full jitter, bounded) on
// network errors, 408, 429 and 5xx. It never blocks the publisher.
type Webhooks struct {
	o     WebhookOptions
	queue chan job

	mu  sync.Mutex
	log []Delivery
	seq atomic.Uint64
}

type job struct {
	hook Webhook
	ev   Event
	body []byte
}

// NewWebhooks returns the subscriber; call Run to deliver.
func NewWebhooks(o WebhookOptions) *Webhooks {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 6
	}
	if o.InitialBackoff <= 0 {
		o.InitialBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Minute
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.LogSize <= 0 {
		o.LogSize = 1000
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Sleep == nil {
		o.Sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		}
	}
	return &Webhooks{o: o, queue: make(chan job, o.QueueSize)}
}

// Notify implements Subscriber.
func (w *Webhooks) Notify(e Event) {
	body, err := json.Marshal(e)
	if err != nil {
		return
	}
	for _, h := range w.o.Hooks {
		if !wants(h.Kinds, e.Kind) {
			continue
		}
		select {
		case w.queue <- job{h, e, body}:
		default:
			w.record(Delivery{EventID: e.ID, Kind: e.Kind, URL: h.URL, Outcome: "dropped", Error: "queue full", At: w.o.Clock()})
			w.o.Logger.Warn("webhook queue full; delivery dropped", "url", h.URL, "event", e.ID)
		}
	}
}

func wants(kinds []Kind, k Kind) bool {
	if len(kinds) == 0 {
		return true
	}
	for _, x := range kinds {
		if x == k {
			return true
		}
	}
	return false
}

// Run delivers until ctx is done.
func (w *Webhooks) Run(ctx context.Context) error {
	return runWorkers(ctx, w.o.Workers, w.queue, func(ctx context.Context, j job) { w.deliver(ctx, j) })
}

// deliver posts one event to one hook, retrying, and reports whether it
// was delivered.
func (w *Webhooks) deliver(ctx context.Context, j job) bool {
	delivery := strconv.FormatUint(w.seq.Add(1), 10)
	backoff := w.o.InitialBackoff
	for attempt := 1; ; attempt++ {
		status, err := w.post(ctx, j, delivery)
		d := Delivery{EventID: j.ev.ID, Kind: j.ev.Kind, URL: j.hook.URL, Attempt: attempt, Status: status, At: w.o.Clock()}
		if err != nil {
			d.Error = err.Error()
		}
		switch {
		case err == nil && status >= 200 && status < 300:
			d.Outcome = "delivered"
			w.record(d)
			return true
		case !retryable(status, err) || attempt >= w.o.MaxAttempts || ctx.Err() != nil:
			d.Outcome = "failed"
			w.record(d)
			w.o.Logger.Warn("webhook delivery failed", "url", w.redact(j.hook.URL), "event", j.ev.ID, "attempts", attempt, "status", status)
			return false
		}
		d.Outcome = "retrying"
		w.record(d)
		// Full jitter: a uniformly random wait in [0, backoff].
		wait := time.Duration(rand.Int64N(int64(backoff) + 1))
		if err := w.o.Sleep(ctx, wait); err != nil {
			return false
		}
		backoff = min(backoff*2, w.o.MaxBackoff)
	}
}

func retryable(status int, err error) bool {
	if err != nil {
		return true
	}
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

func (w *Webhooks) post(ctx context.Context, j job, delivery string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.hook.URL, bytes.NewReader(j.body))
	if err != nil {
		return 0, fmt.Errorf("building request: %w", err)
	}
	ts := strconv.FormatInt(w.o.Clock().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderEvent, string(j.ev.Kind))
	req.Header.Set(HeaderDelivery, delivery)
	req.Header.Set(HeaderTimestamp, ts)
	if len(j.hook.Secret) > 0 {
		req.Header.Set(HeaderSignature, Sign(j.hook.Secret, ts, j.body))
	}
	resp, err := w.o.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("posting event: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (w *Webhooks) record(d Delivery) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.log) >= w.o.LogSize {
		copy(w.log, w.log[1:])
		w.log = w.log[:len(w.log)-1]
	}
	w.log = append(w.log, d)
}

// Log returns the delivery log, oldest first (at most LogSize entries).
func (w *Webhooks) Log() []Delivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Delivery(nil), w.log...)
}

// LogHandler serves the delivery log as JSON (for an admin route such as
// GET /events/webhooks). It holds URLs and outcomes, never event bodies.
func (w *Webhooks) LogHandler() http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(struct {
			Deliveries []Delivery `json:"deliveries"`
		}{w.Log()})
	})
}

var _ Subscriber = (*Webhooks)(nil)
