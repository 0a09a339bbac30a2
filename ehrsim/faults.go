package ehrsim

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"ehrgate/fhir"
)

// FaultKind is a kind of failure the simulator injects into responses.
type FaultKind string

// The fault kinds. Each injected fault replaces one whole response.
const (
	// Fault429 answers 429 Too Many Requests with Retry-After and an
	// OperationOutcome (code throttled).
	Fault429 FaultKind = "429"
	// Fault500 answers 500 Internal Server Error with an OperationOutcome
	// (code exception).
	Fault500 FaultKind = "500"
	// Fault503 answers 503 Service Unavailable with Retry-After and an
	// OperationOutcome (code transient).
	Fault503 FaultKind = "503"
	// FaultSlow waits SlowDelay, then serves the request normally. A client
	// that gives up first (request context cancelled) gets nothing.
	FaultSlow FaultKind = "slow"
	// FaultMalformedBody answers 200 with content-type application/fhir+json
	// and the first half of the real body, which is never valid JSON.
	FaultMalformedBody FaultKind = "malformed-body"
)

// AllFaultKinds lists every fault kind, in the order used when
// Faults.Kinds is empty.
var AllFaultKinds = []FaultKind{Fault429, Fault500, Fault503, FaultSlow, FaultMalformedBody}

// ParseFaultKind returns the kind named s ("429", "500", "503", "slow",
// "malformed-body").
func ParseFaultKind(s string) (FaultKind, error) {
	for _, k := range AllFaultKinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown fault kind %q (want one of %v)", s, AllFaultKinds)
}

// Faults configures fault injection. Faults are drawn per request, except on
// /fhir/metadata, which always answers.
type Faults struct {
	Rate       float64       // probability per request (0..1) that a fault is injected
	Kinds      []FaultKind   // kinds to draw from uniformly; empty = AllFaultKinds
	RetryAfter time.Duration // Retry-After of 429 and 503, whole seconds rounded up ("0" allowed)
	SlowDelay  time.Duration // delay of FaultSlow (default 300ms)
	Seed       int64         // seeds the fault sequence: the n-th request decides the same way on every run
}

// validate reports the problems of the fault settings.
func (f Faults) validate() []error {
	var errs []error
	if f.Rate < 0 || f.Rate > 1 {
		errs = append(errs, fmt.Errorf("fault rate %v is not within 0..1", f.Rate))
	}
	for _, k := range f.Kinds {
		if _, err := ParseFaultKind(string(k)); err != nil {
			errs = append(errs, err)
		}
	}
	if f.RetryAfter < 0 || f.SlowDelay < 0 {
		errs = append(errs, fmt.Errorf("fault durations must not be negative"))
	}
	return errs
}

// faulter draws faults from a seeded generator. Draws are serialized, so the
// sequence of decisions is fixed by the seed; which request gets which
// decision depends on arrival order.
type faulter struct {
	cfg   Faults
	kinds []FaultKind
	mu    sync.Mutex
	rng   *rand.Rand
}

func newFaulter(cfg Faults) *faulter {
	kinds := cfg.Kinds
	if len(kinds) == 0 {
		kinds = AllFaultKinds
	}
	if cfg.SlowDelay == 0 {
		cfg.SlowDelay = 300 * time.Millisecond
	}
	seed := uint64(cfg.Seed)
	return &faulter{cfg: cfg, kinds: kinds, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// draw returns the fault for the next request, or "" for none.
func (f *faulter) draw() FaultKind {
	if f.cfg.Rate <= 0 {
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rng.Float64() >= f.cfg.Rate {
		return ""
	}
	return f.kinds[f.rng.IntN(len(f.kinds))]
}

func (f *faulter) retryAfter() string {
	secs := (f.cfg.RetryAfter + time.Second - 1) / time.Second
	return strconv.FormatInt(int64(secs), 10)
}

// inject serves r with the given fault, calling next where the fault lets
// the request through.
func (f *faulter) inject(kind FaultKind, w http.ResponseWriter, r *http.Request, next http.Handler) {
	switch kind {
	case Fault429:
		w.Header().Set("Retry-After", f.retryAfter())
		fhir.WriteOutcome(w, http.StatusTooManyRequests, "error", "throttled", "simulated rate limit: retry later")
	case Fault503:
		w.Header().Set("Retry-After", f.retryAfter())
		fhir.WriteOutcome(w, http.StatusServiceUnavailable, "error", "transient", "simulated outage: retry later")
	case Fault500:
		fhir.WriteOutcome(w, http.StatusInternalServerError, "fatal", "exception", "simulated internal error")
	case FaultSlow:
		t := time.NewTimer(f.cfg.SlowDelay)
		defer t.Stop()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
		next.ServeHTTP(w, r)
	case FaultMalformedBody:
		var buf bufferedResponse
		buf.header = make(http.Header)
		next.ServeHTTP(&buf, r)
		body := buf.body.Bytes()
		if len(body) < 2 {
			body = []byte(`{"resourceType":"Bundle","entry":[`)
		}
		body = body[:len(body)/2]
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	}
}

// bufferedResponse collects a response in memory.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedResponse) WriteHeader(status int)      { b.status = status }

var _ http.ResponseWriter = (*bufferedResponse)(nil)
