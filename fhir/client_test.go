package fhir

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type recorder struct {
	mu    sync.Mutex
	infos []RequestInfo
}

func (r *recorder) ObserveRequest(i RequestInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.infos = append(r.infos, i)
}

func newTestClient(t *testing.T, h http.Handler, opts Options) (*Client, *[]time.Duration) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	var sleeps []time.Duration
	var mu sync.Mutex
	opts.Sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		sleeps = append(sleeps, d)
		mu.Unlock()
		return ctx.Err()
	}
	c, err := NewClient(srv.URL+"/fhir", opts)
	if err != nil {
		t.Fatal(err)
	}
	return c, &sleeps
}

func TestReadRetriesTransientStatuses(t *testing.T) {
	for _, status := range []int{429, 500, 502, 503, 504} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			var calls atomic.Int32
			c, sleeps := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) < 3 {
					w.Header().Set("Retry-After", "2")
					WriteOutcome(w, status, "error", "transient", "try later")
					return
				}
				w.Header().Set("ETag", `W/"3"`)
				fmt.Fprint(w, `{"resourceType":"Patient","id":"p1","meta":{"versionId":"3"}}`)
			}), Options{})
			resp, err := c.Read(context.Background(), "Patient", "p1")
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if resp.ETag != `W/"3"` || calls.Load() != 3 {
				t.Errorf("Read() etag %q after %d calls, want W/\"3\" after 3", resp.ETag, calls.Load())
			}
			if len(*sleeps) != 2 || (*sleeps)[0] != 2*time.Second {
				t.Errorf("sleeps = %v, want two waits of the server's Retry-After (2s)", *sleeps)
			}
		})
	}
}

func TestReadDoesNotRetryClientErrors(t *testing.T) {
	var calls atomic.Int32
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		WriteOutcome(w, 404, "error", "not-found", "Patient/p9 is not known")
	}), Options{})
	_, err := c.Read(context.Background(), "Patient", "p9")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Read error = %v, want ErrNotFound", err)
	}
	var fe *Error
	if !errors.As(err, &fe) || fe.Outcome == nil || fe.Outcome.Issue[0].Code != "not-found" {
		t.Errorf("error %v does not carry the decoded OperationOutcome", err)
	}
	if calls.Load() != 1 {
		t.Errorf("server called %d times, want 1 (404 is not retried)", calls.Load())
	}
}

func TestErrorSentinels(t *testing.T) {
	tests := []struct {
		status int
		code   string
		want   error
	}{
		{401, "login", ErrUnauthorized},
		{403, "forbidden", ErrForbidden},
		{400, "not-supported", ErrNotSupported},
		{400, "invalid", ErrBadRequest},
		{501, "not-supported", ErrNotSupported},
		{410, "deleted", ErrGone},
		{412, "conflict", ErrPreconditionFailed},
		{429, "throttled", ErrRateLimited},
		{503, "transient", ErrServer},
	}
	for _, tc := range tests {
		e := &Error{Op: "x", StatusCode: tc.status, Outcome: NewOutcome("error", tc.code, "d")}
		if !errors.Is(e, tc.want) {
			t.Errorf("errors.Is(HTTP %d %s, %v) = false, want true", tc.status, tc.code, tc.want)
		}
	}
	if errors.Is(&Error{StatusCode: 400, Outcome: NewOutcome("error", "invalid", "")}, ErrNotSupported) {
		t.Error("a plain 400 matched ErrNotSupported")
	}
}

func TestGiveUpAfterMaxAttempts(t *testing.T) {
	var calls atomic.Int32
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(503)
	}), Options{Retry: RetryPolicy{MaxAttempts: 4}})
	_, err := c.Read(context.Background(), "Patient", "p1")
	if !errors.Is(err, ErrServer) {
		t.Fatalf("error = %v, want ErrServer", err)
	}
	if calls.Load() != 4 {
		t.Errorf("calls = %d, want 4", calls.Load())
	}
}

func TestRetryAfterBeyondLimitFailsFast(t *testing.T) {
	c, sleeps := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(429)
	}), Options{Retry: RetryPolicy{MaxRetryAfter: time.Minute}})
	_, err := c.Read(context.Background(), "Patient", "p1")
	if !errors.Is(err, ErrRateLimited) || len(*sleeps) != 0 {
		t.Errorf("error = %v after %d sleeps; want ErrRateLimited without sleeping", err, len(*sleeps))
	}
}

func TestBackoffRespectsDeadline(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(503)
	}))
	defer srv.Close()
	c, _ := NewClient(srv.URL, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Read(ctx, "Patient", "p1")
	if err == nil {
		t.Fatal("Read succeeded, want an error")
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Read took %s; a Retry-After past the deadline must not be waited out", time.Since(start))
	}
}

func TestMalformedBodyIsRetried(t *testing.T) {
	var calls atomic.Int32
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			fmt.Fprint(w, `{"resourceType":"Bundle","type":"searchset","entry":[{"resou`)
			return
		}
		fmt.Fprint(w, `{"resourceType":"Bundle","type":"searchset"}`)
	}), Options{})
	if _, err := c.Search(context.Background(), "Observation", NewQuery().Patient("1")); err != nil {
		t.Fatalf("Search: %v", err)
	}
	if calls.Load() != 2 {
		t.Errorf("calls = %d, want 2", calls.Load())
	}
}

func TestNetworkErrorIsRetried(t *testing.T) {
	var calls atomic.Int32
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			conn.Close()
			return
		}
		fmt.Fprint(w, `{"resourceType":"Patient","id":"p1"}`)
	}), Options{})
	if _, err := c.Read(context.Background(), "Patient", "p1"); err != nil {
		t.Fatalf("Read: %v", err)
	}
}

// pagingServer serves Observation pages; next builds page n's next link.
func pagingServer(pages int, next func(base string, n int) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("page"))
		base := "http://" + r.Host + "/fhir/Observation"
		links := fmt.Sprintf(`{"relation":"self","url":"%s?page=%d"}`, base, n)
		if n+1 < pages {
			links += fmt.Sprintf(`,{"relation":"next","url":"%s"}`, next(base, n))
		}
		fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","link":[%s],"entry":[{"resource":{"resourceType":"Observation","id":"o%d"}}]}`, links, n)
	}
}

func TestSearchAllFollowsNextLinks(t *testing.T) {
	rec := &recorder{}
	c, _ := newTestClient(t, pagingServer(5, func(base string, n int) string {
		return fmt.Sprintf("%s?page=%d", base, n+1)
	}), Options{Observer: rec, Connection: "c1"})
	var ids []string
	err := c.SearchAll(context.Background(), "Observation", NewQuery().Patient("1"), func(_ context.Context, b *Bundle, _ string) error {
		for _, e := range b.Entry {
			h, _ := ParseHeader(e.Resource)
			ids = append(ids, h.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ids, ","); got != "o0,o1,o2,o3,o4" {
		t.Errorf("ids = %s, want o0..o4", got)
	}
	if len(rec.infos) != 5 || rec.infos[0].Interaction != "search" || rec.infos[1].Interaction != "page" ||
		rec.infos[0].Connection != "c1" || rec.infos[0].ResourceType != "Observation" || rec.infos[0].Status != 200 {
		t.Errorf("observed %+v, want 5 requests labelled by connection, type and interaction", rec.infos)
	}
}

func TestSearchAllLoopProtection(t *testing.T) {
	t.Run("revisit", func(t *testing.T) {
		c, _ := newTestClient(t, pagingServer(100, func(base string, n int) string {
			return fmt.Sprintf("%s?page=%d", base, (n+1)%3)
		}), Options{})
		err := c.SearchAll(context.Background(), "Observation", nil, func(context.Context, *Bundle, string) error { return nil })
		if !errors.Is(err, ErrPagingLoop) {
			t.Errorf("error = %v, want ErrPagingLoop", err)
		}
	})
	t.Run("next equals self ends the search", func(t *testing.T) {
		pages := 0
		c, _ := newTestClient(t, pagingServer(100, func(base string, n int) string {
			return fmt.Sprintf("%s?page=%d", base, n)
		}), Options{})
		err := c.SearchAll(context.Background(), "Observation", NewQuery().Set("page", "0"), func(context.Context, *Bundle, string) error {
			pages++
			return nil
		})
		if err != nil || pages != 1 {
			t.Errorf("SearchAll = %v after %d pages, want nil after 1", err, pages)
		}
	})
	t.Run("max pages", func(t *testing.T) {
		c, _ := newTestClient(t, pagingServer(100, func(base string, n int) string {
			return fmt.Sprintf("%s?page=%d", base, n+1)
		}), Options{MaxPages: 10})
		err := c.SearchAll(context.Background(), "Observation", nil, func(context.Context, *Bundle, string) error { return nil })
		if !errors.Is(err, ErrPagingLoop) {
			t.Errorf("error = %v, want ErrPagingLoop after MaxPages", err)
		}
	})
	t.Run("foreign next link", func(t *testing.T) {
		c, _ := newTestClient(t, pagingServer(3, func(base string, n int) string {
			return "http://attacker.example/fhir/Observation?page=1"
		}), Options{})
		err := c.SearchAll(context.Background(), "Observation", nil, func(context.Context, *Bundle, string) error { return nil })
		if !errors.Is(err, ErrForeignLink) {
			t.Errorf("error = %v, want ErrForeignLink", err)
		}
	})
}

func TestSearchAllReportsMidPagingFailure(t *testing.T) {
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("page") == "2" {
			WriteOutcome(w, 403, "error", "forbidden", "no")
			return
		}
		pagingServer(5, func(base string, n int) string { return fmt.Sprintf("%s?page=%d", base, n+1) })(w, r)
	}), Options{})
	pages := 0
	err := c.SearchAll(context.Background(), "Observation", nil, func(context.Context, *Bundle, string) error {
		pages++
		return nil
	})
	if !errors.Is(err, ErrForbidden) || pages != 2 {
		t.Errorf("SearchAll = %v after %d pages; want ErrForbidden after 2 pages", err, pages)
	}
}

type flakyAuth struct {
	token       atomic.Value
	invalidated atomic.Int32
}

func (a *flakyAuth) Authorize(_ context.Context, r *http.Request) error {
	r.Header.Set("Authorization", "Bearer "+a.token.Load().(string))
	return nil
}

func (a *flakyAuth) Invalidate(context.Context, *http.Request) error {
	a.invalidated.Add(1)
	a.token.Store("fresh")
	return nil
}

func TestReauthorizeOnceAfter401(t *testing.T) {
	auth := &flakyAuth{}
	auth.token.Store("stale")
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer fresh" {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			WriteOutcome(w, 401, "error", "login", "expired")
			return
		}
		fmt.Fprint(w, `{"resourceType":"Patient","id":"p1"}`)
	}), Options{Authorizer: auth})
	if _, err := c.Read(context.Background(), "Patient", "p1"); err != nil {
		t.Fatalf("Read: %v", err)
	}
	if auth.invalidated.Load() != 1 {
		t.Errorf("Invalidate called %d times, want 1", auth.invalidated.Load())
	}
	auth.token.Store("revoked-forever")
	c2, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteOutcome(w, 401, "error", "login", "expired")
	}), Options{Authorizer: auth})
	if _, err := c2.Read(context.Background(), "Patient", "p1"); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("Read against a server that always answers 401 = %v, want ErrUnauthorized", err)
	}
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"5", 5 * time.Second, true},
		{"0", 0, true},
		{"0.5", 500 * time.Millisecond, true},
		{now.Add(10 * time.Second).Format(http.TimeFormat), 10 * time.Second, true},
		{"soon", 0, false},
	}
	for _, tc := range tests {
		got, ok := retryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestQueryEncoding(t *testing.T) {
	q := NewQuery().Patient("123").Token("category", SystemObsCat, "vital-signs", "laboratory").
		Date("date", GE, time.Date(2024, 5, 6, 0, 0, 0, 0, time.UTC), time.DateOnly).Count(50)
	want := "_count=50&category=http%3A%2F%2Fterminology.hl7.org%2FCodeSystem%2Fobservation-category%7Cvital-signs%2Chttp%3A%2F%2Fterminology.hl7.org%2FCodeSystem%2Fobservation-category%7Claboratory&date=ge2024-05-06&patient=123"
	if got := q.Encode(); got != want {
		t.Errorf("Encode() = %s\nwant %s", got, want)
	}
	c := q.Clone().Del("patient")
	if q.Get("patient") != "123" || c.Has("patient") {
		t.Error("Clone is not independent")
	}
}

func TestLinkURLPrevAliases(t *testing.T) {
	b := &Bundle{Link: []BundleLink{{Relation: "prev", URL: "a"}, {Relation: "next", URL: "b"}}}
	if b.LinkURL("previous") != "a" || b.LinkURL("next") != "b" || b.LinkURL("self") != "" {
		t.Errorf("LinkURL aliases wrong: %+v", b.Link)
	}
}

func TestNewClientRejectsBadBase(t *testing.T) {
	for _, u := range []string{"", "ftp://x/fhir", "/fhir", "http://"} {
		if _, err := NewClient(u, Options{}); err == nil {
			t.Errorf("NewClient(%q) succeeded, want an error", u)
		}
	}
}
