// Package bulk is ehrgate's FHIR Bulk Data Access ($export) client and its
// streaming NDJSON reader.
//
// A population export is: Kickoff (system, Patient or Group level, with
// Prefer: respond-async), Wait (poll the status URL, honouring Retry-After
// and reporting X-Progress, with capped exponential backoff when the server
// gives no hint), Open each output file (parallel downloads bounded per
// server, gzip accepted, retried on 429/5xx, the access token sent only when
// the manifest requires it and only to the server's origin unless allowed),
// then Delete the job. Cancelling is the same DELETE on the status URL.
//
// Reading a file is done by the caller (package ingest) with Reader, in
// bounded memory. Open takes a byte offset so that a broken transfer or a
// killed process resumes where it stopped.
package bulk

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"ehrgate/fhir"
)

// Request is what to export.
type Request struct {
	Patient      bool      // Patient/$export (every patient's compartment)
	Group        string    // Group/[id]/$export; wins over Patient
	Types        []string  // _type
	Since        time.Time // _since (zero = everything)
	TypeFilters  []string  // _typeFilter, each "Type?search"
	OutputFormat string    // _outputFormat (default: not sent, the server's NDJSON)
}

// Scope names the export's population for incremental state: "system",
// "patient" or "group/<id>".
func (r Request) Scope() string {
	switch {
	case r.Group != "":
		return "group/" + r.Group
	case r.Patient:
		return "patient"
	}
	return "system"
}

func (r Request) path() []string {
	switch {
	case r.Group != "":
		return []string{"Group", r.Group, "$export"}
	case r.Patient:
		return []string{"Patient", "$export"}
	}
	return []string{"$export"}
}

func (r Request) query() url.Values {
	q := url.Values{}
	if len(r.Types) > 0 {
		q.Set("_type", strings.Join(r.Types, ","))
	}
	if !r.Since.IsZero() {
		q.Set("_since", r.Since.UTC().Format(time.RFC3339Nano))
	}
	for _, f := range r.TypeFilters {
		q.Add("_typeFilter", f)
	}
	if r.OutputFormat != "" {
		q.Set("_outputFormat", r.OutputFormat)
	}
	return q
}

// Options configure a Client. The zero value works.
type Options struct {
	HTTPClient *http.Client // default: no overall timeout (files are large); ctx bounds each call
	Connection string
	Authorizer fhir.Authorizer // optional; a fhir.Reauthorizer is asked once after a 401
	Header     http.Header     // extra headers on every request
	// Retry governs kick-off, status and download retries on 429/5xx and
	// network errors (MaxAttempts, BaseDelay, MaxDelay, MaxRetryAfter).
	Retry fhir.RetryPolicy
	// MaxDownloads caps concurrent file downloads from this server
	// (default 4). Some servers answer 429 or 502 to more than one at a
	// time: set 1 for them.
	MaxDownloads int
	// PollMin and PollMax bound the status polling interval used when the
	// server sends no Retry-After: it starts at PollMin (default 1s) and
	// doubles up to PollMax (default 1m).
	PollMin, PollMax time.Duration
	// TokenToOtherOrigins allows sending the access token to file URLs on
	// another origin than the FHIR base when the manifest requires a token
	// (for example a vendor's storage host). Off by default.
	TokenToOtherOrigins bool
	// OnProgress receives each X-Progress the server sends while the job runs.
	OnProgress func(progress string)
	Logger     *slog.Logger                                     // identifiers and statuses only
	Sleep      func(ctx context.Context, d time.Duration) error // injectable for tests
}

// Client talks Bulk Data to one FHIR server. It is safe for concurrent use.
type Client struct {
	base *url.URL
	opts Options
	log  *slog.Logger
	lim  *limiter
}

// limiter bounds concurrent downloads. Its limit starts at
// Options.MaxDownloads and drops (never below 1) each time the server
// answers 429 to a download, for servers that allow fewer parallel
// downloads than configured.
type limiter struct {
	mu     sync.Mutex
	limit  int
	active int
	wake   chan struct{}
}

func newLimiter(n int) *limiter { return &limiter{limit: n, wake: make(chan struct{})} }

func (l *limiter) acquire(ctx context.Context) error {
	for {
		l.mu.Lock()
		if l.active < l.limit {
			l.active++
			l.mu.Unlock()
			return nil
		}
		ch := l.wake
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (l *limiter) release() {
	l.mu.Lock()
	l.active--
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
}

// throttled lowers the limit below the current number of downloads and
// reports whether it changed.
func (l *limiter) throttled() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := max(1, min(l.limit, l.active-1))
	changed := n < l.limit
	l.limit = n
	return changed
}

// Limit returns the current download concurrency limit.
func (c *Client) Limit() int {
	c.lim.mu.Lock()
	defer c.lim.mu.Unlock()
	return c.lim.limit
}

// NewClient returns a client for the FHIR server at baseURL.
func NewClient(baseURL string, opts Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("bulk: base URL %q is not an absolute http(s) URL", baseURL)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	if opts.Retry.MaxAttempts <= 0 {
		opts.Retry.MaxAttempts = 6
	}
	if opts.Retry.BaseDelay <= 0 {
		opts.Retry.BaseDelay = 200 * time.Millisecond
	}
	if opts.Retry.MaxDelay <= 0 {
		opts.Retry.MaxDelay = 10 * time.Second
	}
	if opts.Retry.MaxRetryAfter <= 0 {
		opts.Retry.MaxRetryAfter = 2 * time.Minute
	}
	if opts.MaxDownloads <= 0 {
		opts.MaxDownloads = 4
	}
	if opts.PollMin <= 0 {
		opts.PollMin = time.Second
	}
	if opts.PollMax <= 0 {
		opts.PollMax = time.Minute
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{base: u, opts: opts, log: log, lim: newLimiter(opts.MaxDownloads)}, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Job is a kicked-off export.
type Job struct {
	StatusURL string // Content-Location of the kick-off response
}

// Kickoff starts an export and returns its job.
func (c *Client) Kickoff(ctx context.Context, r Request) (*Job, error) {
	u := c.base.JoinPath(r.path()...)
	u.RawQuery = r.query().Encode()
	resp, err := c.do(ctx, http.MethodGet, u.String(), "kick-off", true, func(h http.Header) {
		h.Set("Accept", "application/fhir+json")
		h.Set("Prefer", "respond-async")
	})
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusAccepted {
		return nil, fmt.Errorf("bulk: kick-off: HTTP %d, want 202 Accepted", resp.StatusCode)
	}
	loc := resp.Header.Get("Content-Location")
	if loc == "" {
		return nil, errors.New("bulk: kick-off: 202 without Content-Location")
	}
	su, err := u.Parse(loc)
	if err != nil || (su.Scheme != "http" && su.Scheme != "https") {
		return nil, errors.New("bulk: kick-off: Content-Location is not an http(s) URL")
	}
	return &Job{StatusURL: su.String()}, nil
}

// Wait polls the job's status URL until the manifest is ready and returns it.
// A 429 while polling is throttling, not failure: the poll waits as told.
func (c *Client) Wait(ctx context.Context, job *Job) (*Manifest, error) {
	delay := c.opts.PollMin
	failures := 0
	for {
		resp, err := c.send(ctx, http.MethodGet, job.StatusURL, true, func(h http.Header) {
			h.Set("Accept", "application/json")
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("bulk: polling status: %w", ctx.Err())
			}
			failures++
			if failures >= c.opts.Retry.MaxAttempts {
				return nil, fmt.Errorf("bulk: polling status: %w", err)
			}
			if err := c.opts.Sleep(ctx, c.jitter(failures)); err != nil {
				return nil, fmt.Errorf("bulk: polling status: %w", err)
			}
			continue
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
			resp.Body.Close()
			if err != nil {
				return nil, fmt.Errorf("bulk: reading manifest: %w", err)
			}
			return DecodeManifest(body)
		case resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusTooManyRequests:
			if p := resp.Header.Get("X-Progress"); p != "" && c.opts.OnProgress != nil && resp.StatusCode == http.StatusAccepted {
				c.opts.OnProgress(p)
			}
			wait, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now())
			drain(resp)
			if !ok {
				wait = delay
				delay = min(delay*2, c.opts.PollMax)
			}
			if wait > c.opts.Retry.MaxRetryAfter {
				wait = c.opts.Retry.MaxRetryAfter
			}
			failures = 0
			if err := c.opts.Sleep(ctx, wait); err != nil {
				return nil, fmt.Errorf("bulk: polling status: %w", err)
			}
		case c.retryable(resp.StatusCode):
			wait, _ := retryAfter(resp.Header.Get("Retry-After"), time.Now())
			failures++
			if failures >= c.opts.Retry.MaxAttempts {
				// The last answer, with its OperationOutcome: a job the
				// server reports failed is told from a transient outage.
				return nil, fmt.Errorf("bulk: polling status: %w (gave up after %d attempts)", c.fail("export job", resp), failures)
			}
			drain(resp)
			if wait <= 0 {
				wait = c.jitter(failures)
			}
			if err := c.opts.Sleep(ctx, wait); err != nil {
				return nil, fmt.Errorf("bulk: polling status: %w", err)
			}
		default:
			return nil, c.fail("export job", resp)
		}
	}
}

// Delete deletes the job on the server: after a complete export (so the
// server may free the files) or to cancel one still running. A job the
// server no longer knows (404) is not an error.
func (c *Client) Delete(ctx context.Context, job *Job) error {
	resp, err := c.do(ctx, http.MethodDelete, job.StatusURL, "delete job", true, nil)
	if err != nil {
		var fe *fhir.Error
		if errors.As(err, &fe) && (fe.StatusCode == http.StatusNotFound || fe.StatusCode == http.StatusGone) {
			return nil
		}
		return err
	}
	drain(resp)
	return nil
}

// Open starts downloading one file of the manifest and returns its
// decompressed content from byte offset on (the bytes before it are read and
// discarded). It holds one of the server's download slots until Close.
// 429 and 5xx answers are retried with backoff, a 401 once after
// re-authorization.
func (c *Client) Open(ctx context.Context, m *Manifest, f OutputFile, offset int64) (io.ReadCloser, error) {
	if err := c.lim.acquire(ctx); err != nil {
		return nil, fmt.Errorf("bulk: waiting for a download slot: %w", err)
	}
	held := true
	release := func() {
		if held {
			held = false
			c.lim.release()
		}
	}
	u, err := url.Parse(f.URL)
	if err != nil {
		release()
		return nil, fmt.Errorf("bulk: file URL: %w", err)
	}
	auth := m.RequiresAccessToken && (c.sameOrigin(u) || c.opts.TokenToOtherOrigins)
	resp, err := c.doThrottled(ctx, http.MethodGet, f.URL, "download "+f.Type, auth, func(h http.Header) {
		h.Set("Accept", "application/fhir+ndjson")
		h.Set("Accept-Encoding", "gzip")
	}, func(ctx context.Context) (bool, error) {
		// Give the slot back, lower the limit and queue again.
		lowered := c.lim.throttled()
		release()
		if err := c.lim.acquire(ctx); err != nil {
			return lowered, err
		}
		held = true
		return lowered, nil
	})
	if err != nil {
		release()
		return nil, err
	}
	var body io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" || strings.HasSuffix(u.Path, ".gz") {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			drain(resp)
			release()
			return nil, fmt.Errorf("bulk: download %s: opening gzip: %w", f.Type, err)
		}
		body = zr
	}
	if offset > 0 {
		if _, err := io.CopyN(io.Discard, body, offset); err != nil {
			drain(resp)
			release()
			return nil, fmt.Errorf("bulk: download %s: skipping to offset %d: %w", f.Type, offset, err)
		}
	}
	return &fileBody{r: body, resp: resp, release: release}, nil
}

type fileBody struct {
	r       io.Reader
	resp    *http.Response
	release func()
	closed  bool
}

func (b *fileBody) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *fileBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	err := b.resp.Body.Close()
	b.release()
	return err
}

func (c *Client) sameOrigin(u *url.URL) bool {
	return u.Scheme == c.base.Scheme && u.Host == c.base.Host
}

// send performs a request with the configured headers and credentials; after
// a 401 it asks a fhir.Reauthorizer for fresh credentials and tries once more.
func (c *Client) send(ctx context.Context, method, u string, auth bool, hdr func(http.Header)) (*http.Response, error) {
	resp, req, err := c.sendOnce(ctx, method, u, auth, hdr)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized && auth {
		if ra, ok := c.opts.Authorizer.(fhir.Reauthorizer); ok {
			drain(resp)
			if err := ra.Invalidate(ctx, req); err != nil {
				return nil, fmt.Errorf("re-authorizing after 401: %w", err)
			}
			resp, _, err = c.sendOnce(ctx, method, u, auth, hdr)
			return resp, err
		}
	}
	return resp, nil
}

func (c *Client) sendOnce(ctx context.Context, method, u string, auth bool, hdr func(http.Header)) (*http.Response, *http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("building request: %w", err)
	}
	for k, vs := range c.opts.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if hdr != nil {
		hdr(req.Header)
	}
	if auth && c.opts.Authorizer != nil {
		if err := c.opts.Authorizer.Authorize(ctx, req); err != nil {
			return nil, nil, fmt.Errorf("authorizing: %w", err)
		}
	}
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = fmt.Errorf("%s: %w", ue.Op, ue.Err)
		}
		return nil, nil, err
	}
	return resp, req, nil
}

func (c *Client) retryable(status int) bool {
	statuses := c.opts.Retry.Statuses
	if statuses == nil {
		statuses = []int{429, 500, 502, 503, 504}
	}
	for _, s := range statuses {
		if s == status {
			return true
		}
	}
	return false
}

// do sends a request, retrying network errors and retryable statuses with
// backoff (honouring Retry-After), and returns a 2xx response or an error
// (*fhir.Error for HTTP failures).
func (c *Client) do(ctx context.Context, method, u, op string, auth bool, hdr func(http.Header)) (*http.Response, error) {
	return c.doThrottled(ctx, method, u, op, auth, hdr, nil)
}

// doThrottled is do with a hook run on each 429: it may give back resources
// and report whether it adapted (then the attempt is not counted).
func (c *Client) doThrottled(ctx context.Context, method, u, op string, auth bool, hdr func(http.Header),
	on429 func(ctx context.Context) (bool, error)) (*http.Response, error) {
	var lastErr error
	for attempt := 1; attempt <= c.opts.Retry.MaxAttempts; attempt++ {
		resp, err := c.send(ctx, method, u, auth, hdr)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("bulk: %s: %w", op, ctx.Err())
			}
			lastErr = fmt.Errorf("bulk: %s: %w", op, err)
			if err := c.wait(ctx, attempt, 0); err != nil {
				return nil, lastErr
			}
			continue
		}
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return resp, nil
		}
		ferr := c.fail(op, resp)
		lastErr = ferr
		if !c.retryable(resp.StatusCode) {
			return nil, ferr
		}
		ra, _ := retryAfter(resp.Header.Get("Retry-After"), time.Now())
		if ra > c.opts.Retry.MaxRetryAfter {
			return nil, fmt.Errorf("%w (server asked to retry after %s)", ferr, ra)
		}
		if resp.StatusCode == http.StatusTooManyRequests && on429 != nil {
			adapted, err := on429(ctx)
			if err != nil {
				return nil, fmt.Errorf("bulk: %s: %w", op, err)
			}
			if adapted {
				attempt-- // the server's limit was learnt, not a failure
			}
		}
		c.log.DebugContext(ctx, "bulk request retried", "connection", c.opts.Connection, "op", op,
			"status", resp.StatusCode, "attempt", attempt)
		if err := c.wait(ctx, attempt, ra); err != nil {
			return nil, ferr
		}
	}
	return nil, fmt.Errorf("%w (gave up after %d attempts)", lastErr, c.opts.Retry.MaxAttempts)
}

func (c *Client) wait(ctx context.Context, attempt int, retryAfter time.Duration) error {
	if attempt >= c.opts.Retry.MaxAttempts {
		return errors.New("no attempts left")
	}
	d := retryAfter
	if d <= 0 {
		d = c.jitter(attempt)
	}
	return c.opts.Sleep(ctx, d)
}

// jitter is exponential backoff with full jitter for the given attempt.
func (c *Client) jitter(attempt int) time.Duration {
	attempt = max(attempt, 1)
	ceil := c.opts.Retry.BaseDelay << (attempt - 1)
	if ceil > c.opts.Retry.MaxDelay || ceil <= 0 {
		ceil = c.opts.Retry.MaxDelay
	}
	return time.Duration(rand.Int64N(int64(ceil)) + 1)
}

// fail reads an error response (an OperationOutcome when there is one) and
// closes it.
func (c *Client) fail(op string, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	var oo fhir.OperationOutcome
	e := &fhir.Error{Op: op, StatusCode: resp.StatusCode}
	if json.Unmarshal(body, &oo) == nil && oo.ResourceType == "OperationOutcome" {
		e.Outcome = &oo
	}
	return e
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP-date.
func retryAfter(h string, now time.Time) (time.Duration, bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(h, 64); err == nil && secs >= 0 {
		return time.Duration(secs * float64(time.Second)), true
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
