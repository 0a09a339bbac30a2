package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// RequestInfo describes one HTTP exchange, for metrics. It never carries
// URLs with query strings or bodies, which may contain patient data.
type RequestInfo struct {
	Connection   string
	ResourceType string
	Interaction  string // read, search, page, capabilities
	Status       int    // 0 when no response was received
	Duration     time.Duration
	Attempt      int // 1 for the first try
	Err          error
}

// Observer receives one call per HTTP attempt. Implementations must be safe
// for concurrent use and must not block.
type Observer interface {
	ObserveRequest(info RequestInfo)
}

// Authorizer adds credentials to a request (for example a SMART bearer
// token). Implementations must be safe for concurrent use.
type Authorizer interface {
	Authorize(ctx context.Context, req *http.Request) error
}

// Reauthorizer is an optional Authorizer ability: after a 401 the client
// calls Invalidate once and retries the request a single time with fresh
// credentials.
type Reauthorizer interface {
	Invalidate(ctx context.Context, rejected *http.Request) error
}

// RetryPolicy says which failures are retried and how long to wait.
// Only idempotent requests (GET) are retried.
type RetryPolicy struct {
	MaxAttempts   int           // total attempts including the first (default 6)
	BaseDelay     time.Duration // first backoff (default 200ms); doubles per attempt, with full jitter
	MaxDelay      time.Duration // cap on one backoff (default 10s)
	MaxRetryAfter time.Duration // longest Retry-After honoured (default 2m); longer gives up
	Statuses      []int         // retried statuses (default 429, 500, 502, 503, 504)
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 6
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 200 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 10 * time.Second
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = 2 * time.Minute
	}
	if p.Statuses == nil {
		// 500 is included although the Bulk Data and FHIR specs do not call it
		// transient: real EHR gateways return it for overload, and GETs are safe
		// to repeat.
		p.Statuses = []int{429, 500, 502, 503, 504}
	}
	return p
}

func (p RetryPolicy) retries(status int) bool {
	for _, s := range p.Statuses {
		if s == status {
			return true
		}
	}
	return false
}

// Options configure a Client. The zero value works.
type Options struct {
	HTTPClient   *http.Client // default: a client with sane timeouts
	Connection   string       // connection name, for metrics and errors
	Retry        RetryPolicy
	Observer     Observer
	Authorizer   Authorizer
	Header       http.Header                                      // extra headers sent on every request (vendor requirements)
	MaxPages     int                                              // paging loop guard (default 10,000)
	MaxBodyBytes int64                                            // largest response body accepted (default 256 MiB)
	Logger       *slog.Logger                                     // logs resource types and statuses only
	Sleep        func(ctx context.Context, d time.Duration) error // injectable for tests
}

// Client is a FHIR R4 REST client bound to one server base URL. It is safe
// for concurrent use.
type Client struct {
	base *url.URL
	opts Options
	log  *slog.Logger
}

// NewClient returns a client for the FHIR server at baseURL
// (e.g. https://ehr.example.org/fhir).
func NewClient(baseURL string, opts Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("fhir: base URL %q is not an absolute http(s) URL", baseURL)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 2 * time.Minute}
	}
	opts.Retry = opts.Retry.withDefaults()
	if opts.MaxPages <= 0 {
		opts.MaxPages = 10000
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 256 << 20
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{base: u, opts: opts, log: log}, nil
}

// BaseURL returns the server base URL without a trailing slash.
func (c *Client) BaseURL() string { return c.base.String() }

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

// Response is a successful raw response.
type Response struct {
	Status       int
	Body         []byte
	ETag         string
	LastModified string
	Location     string
}

// ErrMalformedBody is returned (wrapped) when a 2xx response body is not the
// JSON it should be. GETs that hit it are retried: it is usually a truncated
// transfer.
var ErrMalformedBody = errors.New("fhir: malformed response body")

// ErrPagingLoop is returned when a search's next links revisit a page.
var ErrPagingLoop = errors.New("fhir: paging loop")

// ErrForeignLink is returned when a server's next link points at another
// origin; following it could leak credentials.
var ErrForeignLink = errors.New("fhir: next link points outside the server")

// Read fetches one resource.
func (c *Client) Read(ctx context.Context, typ, id string) (*Response, error) {
	if typ == "" || id == "" {
		return nil, fmt.Errorf("fhir: read needs a type and an id")
	}
	u := c.base.JoinPath(typ, id)
	resp, err := c.get(ctx, u.String(), typ, "read", func(b []byte) error { return checkResource(b, typ) })
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// Capabilities fetches the server's CapabilityStatement (GET [base]/metadata).
func (c *Client) Capabilities(ctx context.Context) ([]byte, error) {
	u := c.base.JoinPath("metadata")
	resp, err := c.get(ctx, u.String(), "CapabilityStatement", "capabilities", func(b []byte) error {
		return checkJSON(b)
	})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Search fetches the first page of a type-level search.
func (c *Client) Search(ctx context.Context, typ string, q *Query) (*Bundle, error) {
	u := c.base.JoinPath(typ)
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return c.fetchBundle(ctx, u.String(), typ, "search")
}

// PageFunc is called for each page of a search. Returning an error stops
// the search and is returned by SearchAll.
type PageFunc func(ctx context.Context, page *Bundle, pageURL string) error

// SearchAll runs a search and calls fn for every page, following next links.
// It stops with ErrPagingLoop when a next link revisits a page, and treats a
// next link equal to the page's own URL (a known server quirk) as the end.
// A failure on any page is returned: partial results are never silently
// reported as complete.
func (c *Client) SearchAll(ctx context.Context, typ string, q *Query, fn PageFunc) error {
	u := c.base.JoinPath(typ)
	if q != nil {
		u.RawQuery = q.Encode()
	}
	next := u.String()
	seen := map[string]bool{}
	interaction := "search"
	for page := 0; next != ""; page++ {
		if page >= c.opts.MaxPages {
			return fmt.Errorf("fhir: search %s: more than %d pages: %w", typ, c.opts.MaxPages, ErrPagingLoop)
		}
		seen[next] = true
		b, err := c.fetchBundle(ctx, next, typ, interaction)
		if err != nil {
			return fmt.Errorf("search %s page %d: %w", typ, page+1, err)
		}
		if err := fn(ctx, b, next); err != nil {
			return err
		}
		link := b.LinkURL("next")
		if link == "" {
			return nil
		}
		resolved, err := c.resolveLink(next, link)
		if err != nil {
			return fmt.Errorf("search %s page %d: %w", typ, page+1, err)
		}
		if resolved == next || resolved == b.LinkURL("self") {
			c.log.DebugContext(ctx, "server returned a next link equal to the current page; treating as the last page",
				"connection", c.opts.Connection, "type", typ)
			return nil
		}
		if seen[resolved] {
			return fmt.Errorf("fhir: search %s: next link revisits an earlier page: %w", typ, ErrPagingLoop)
		}
		next = resolved
		interaction = "page"
	}
	return nil
}

// resolveLink resolves a next link against the current page and refuses
// links to another origin.
func (c *Client) resolveLink(current, link string) (string, error) {
	cur, err := url.Parse(current)
	if err != nil {
		return "", fmt.Errorf("parsing page URL: %w", err)
	}
	l, err := url.Parse(link)
	if err != nil {
		return "", fmt.Errorf("parsing next link: %w", err)
	}
	r := cur.ResolveReference(l)
	if r.Scheme != c.base.Scheme || r.Host != c.base.Host {
		return "", fmt.Errorf("fhir: next link host %q: %w", r.Host, ErrForeignLink)
	}
	return r.String(), nil
}

func (c *Client) fetchBundle(ctx context.Context, u, typ, interaction string) (*Bundle, error) {
	var b Bundle
	_, err := c.get(ctx, u, typ, interaction, func(body []byte) error {
		b = Bundle{}
		if err := json.Unmarshal(body, &b); err != nil {
			return fmt.Errorf("decoding Bundle: %w: %w", ErrMalformedBody, err)
		}
		if b.ResourceType != "Bundle" {
			return fmt.Errorf("expected a Bundle, got resourceType %q: %w", b.ResourceType, ErrMalformedBody)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &b, nil
}

func checkJSON(b []byte) error {
	if !json.Valid(b) {
		return fmt.Errorf("invalid JSON: %w", ErrMalformedBody)
	}
	return nil
}

func checkResource(b []byte, typ string) error {
	h, err := ParseHeader(b)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformedBody, err)
	}
	if h.ResourceType != typ {
		return fmt.Errorf("expected %s, got %s: %w", typ, h.ResourceType, ErrMalformedBody)
	}
	return nil
}

// get performs a GET with retries. validate checks a 2xx body; a validation
// failure is retried like a transient error.
func (c *Client) get(ctx context.Context, u, typ, interaction string, validate func([]byte) error) (*Response, error) {
	op := interaction + " " + typ
	pol := c.opts.Retry
	reauthorized := false
	var lastErr error
	for attempt := 1; attempt <= pol.MaxAttempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("fhir: %s: %w", op, err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, fmt.Errorf("fhir: %s: building request: %w", op, err)
		}
		req.Header.Set("Accept", "application/fhir+json")
		for k, vs := range c.opts.Header {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		if c.opts.Authorizer != nil {
			if err := c.opts.Authorizer.Authorize(ctx, req); err != nil {
				return nil, fmt.Errorf("fhir: %s: authorizing: %w", op, err)
			}
		}
		start := time.Now()
		resp, err := c.opts.HTTPClient.Do(req)
		info := RequestInfo{Connection: c.opts.Connection, ResourceType: typ, Interaction: interaction, Attempt: attempt}
		if err != nil {
			info.Duration, info.Err = time.Since(start), err
			c.observe(info)
			if ctx.Err() != nil {
				return nil, fmt.Errorf("fhir: %s: %w", op, ctx.Err())
			}
			lastErr = fmt.Errorf("fhir: %s: %w", op, redactURLError(err))
			if !isTransientNetErr(err) {
				return nil, lastErr
			}
			if err := c.backoff(ctx, attempt, 0); err != nil {
				return nil, lastErr
			}
			continue
		}
		body, readErr := io.ReadAll(io.LimitReader(resp.Body, c.opts.MaxBodyBytes+1))
		resp.Body.Close()
		info.Status, info.Duration = resp.StatusCode, time.Since(start)
		if readErr == nil && int64(len(body)) > c.opts.MaxBodyBytes {
			readErr = fmt.Errorf("response larger than %d bytes", c.opts.MaxBodyBytes)
		}
		if readErr != nil {
			info.Err = readErr
			c.observe(info)
			lastErr = fmt.Errorf("fhir: %s: reading response: %w", op, readErr)
			if err := c.backoff(ctx, attempt, 0); err != nil {
				return nil, lastErr
			}
			continue
		}
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			if err := validate(body); err != nil {
				info.Err = err
				c.observe(info)
				lastErr = fmt.Errorf("fhir: %s: %w", op, err)
				if err := c.backoff(ctx, attempt, 0); err != nil {
					return nil, lastErr
				}
				continue
			}
			c.observe(info)
			return &Response{Status: resp.StatusCode, Body: body, ETag: resp.Header.Get("ETag"),
				LastModified: resp.Header.Get("Last-Modified"), Location: resp.Header.Get("Location")}, nil
		}
		ferr := &Error{Op: op, StatusCode: resp.StatusCode, Outcome: decodeOutcome(body)}
		info.Err = ferr
		c.observe(info)
		lastErr = ferr
		if resp.StatusCode == http.StatusUnauthorized && !reauthorized {
			if ra, ok := c.opts.Authorizer.(Reauthorizer); ok {
				reauthorized = true
				if err := ra.Invalidate(ctx, req); err != nil {
					return nil, fmt.Errorf("fhir: %s: re-authorizing after 401: %w", op, err)
				}
				attempt-- // the retry after re-authorization is free
				continue
			}
		}
		if !pol.retries(resp.StatusCode) {
			return nil, ferr
		}
		wait, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now())
		if ok && wait > pol.MaxRetryAfter {
			return nil, fmt.Errorf("%w (server asked to retry after %s, longer than the %s limit)", ferr, wait, pol.MaxRetryAfter)
		}
		if err := c.backoff(ctx, attempt, wait); err != nil {
			return nil, ferr
		}
	}
	return nil, fmt.Errorf("%w (gave up after %d attempts)", lastErr, pol.MaxAttempts)
}

// backoff waits before the next attempt: the server's Retry-After when given,
// else exponential backoff with full jitter. It fails when no attempt is left
// or the wait would pass the context deadline.
func (c *Client) backoff(ctx context.Context, attempt int, retryAfter time.Duration) error {
	pol := c.opts.Retry
	if attempt >= pol.MaxAttempts {
		return errors.New("no attempts left")
	}
	d := retryAfter
	if d <= 0 {
		ceil := pol.BaseDelay << (attempt - 1)
		if ceil > pol.MaxDelay || ceil <= 0 {
			ceil = pol.MaxDelay
		}
		d = time.Duration(rand.Int64N(int64(ceil)) + 1)
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return context.DeadlineExceeded
	}
	return c.opts.Sleep(ctx, d)
}

func (c *Client) observe(info RequestInfo) {
	if c.opts.Observer != nil {
		c.opts.Observer.ObserveRequest(info)
	}
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
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

func decodeOutcome(body []byte) *OperationOutcome {
	var oo OperationOutcome
	if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" {
		return nil
	}
	return &oo
}

func isTransientNetErr(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "connection refused")
}

// redactURLError drops the URL (whose query may identify a patient) from
// *url.Error values.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
