package ehr

import (
	"net/http"
	"sync"
	"time"
)

// rateLimitedTransport delays requests so that no more than rps start per
// second on average, with bursts up to burst. It is a token bucket.
type rateLimitedTransport struct {
	next  http.RoundTripper
	every time.Duration
	burst int

	mu    sync.Mutex
	next0 time.Time // earliest start of the next request when the bucket is empty
}

// NewRateLimitedTransport wraps next (nil = http.DefaultTransport) so that
// requests start at no more than rps per second, allowing bursts of burst
// (minimum 1). Waiting honours the request's context. It is safe for
// concurrent use.
func NewRateLimitedTransport(next http.RoundTripper, rps float64, burst int) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	if burst < 1 {
		burst = 1
	}
	return &rateLimitedTransport{next: next, every: time.Duration(float64(time.Second) / rps), burst: burst}
}

// RoundTrip implements http.RoundTripper.
func (t *rateLimitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	now := time.Now()
	t.mu.Lock()
	// The bucket holds burst tokens; next0 - burst*every is when it was full.
	floor := now.Add(-time.Duration(t.burst-1) * t.every)
	if t.next0.Before(floor) {
		t.next0 = floor
	}
	start := t.next0
	t.next0 = t.next0.Add(t.every)
	t.mu.Unlock()
	if wait := start.Sub(now); wait > 0 {
		timer := time.NewTimer(wait)
		select {
		case <-req.Context().Done():
			timer.Stop()
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, req.Context().Err()
		case <-timer.C:
		}
	}
	return t.next.RoundTrip(req)
}

// Interface guard.
var _ http.RoundTripper = (*rateLimitedTransport)(nil)
