package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRoutesAndMiddleware(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "ehrgate_test_total", Help: "t"})
	reg.MustRegister(c)
	c.Inc()
	dash := http.NewServeMux()
	dash.HandleFunc("GET /patients/{conn}/{id}", func(w http.ResponseWriter, r *http.Request) {
		if RequestIDFrom(r.Context()) == "" {
			t.Error("handler saw no request id in its context")
		}
		io.WriteString(w, "chart")
	})
	dash.HandleFunc("GET /boom", func(w http.ResponseWriter, r *http.Request) { panic("kaboom with secret detail") })
	s := New(Options{Dashboard: dash, Gatherer: reg, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	tests := []struct {
		path   string
		status int
		body   string
	}{
		{"/healthz", 200, "ok"},
		{"/readyz", 200, "ready"},
		{"/metrics", 200, "ehrgate_test_total 1"},
		{"/patients/demo/p1?q=Jane+Doe", 200, "chart"},
		{"/boom", 500, "OperationOutcome"},
		{"/nope", 404, ""},
	}
	for _, tc := range tests {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.body) {
			t.Errorf("GET %s = %d %q, want %d containing %q", tc.path, resp.StatusCode, b, tc.status, tc.body)
		}
		if resp.Header.Get(RequestIDHeader) == "" {
			t.Errorf("GET %s: no %s header", tc.path, RequestIDHeader)
		}
	}
	out := logs.String()
	if strings.Contains(out, "Jane") || strings.Contains(out, "p1") {
		t.Errorf("access log contains path or query data:\n%s", out)
	}
	if !strings.Contains(out, `"route":"GET /patients/{conn}/{id}"`) {
		t.Errorf("access log lacks the route pattern:\n%s", out)
	}
	// Every line is valid JSON: the panic was logged, not printed raw.
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("log line is not JSON: %s", line)
		}
	}
}

func TestReadinessFailure(t *testing.T) {
	s := New(Options{Ready: func(context.Context) error { return io.ErrUnexpectedEOF }})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || strings.Contains(rec.Body.String(), "EOF") {
		t.Errorf("/readyz = %d %q; want 503 without internal detail", rec.Code, rec.Body.String())
	}
}

func TestServeShutsDownGracefully(t *testing.T) {
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, "done")
	})
	s := New(Options{Dashboard: slow})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v, want nil after cancel", err)
	}
	if body := <-got; body != "done" {
		t.Errorf("in-flight request got %q, want it to finish", body)
	}
}

func TestRouteWithoutAccessIsRefused(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New accepted a route that declares no access rule")
		}
	}()
	New(Options{Routes: []Route{{Pattern: "GET /x", Handler: http.NotFoundHandler()}}})
}

// Patient-data routes answer only under loopback names and the configured
// hosts (DNS rebinding); public and operator routes answer under any.
func TestPatientDataRoutesRefuseUnknownHosts(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("chart")) })
	s := New(Options{Dashboard: ok, Hosts: []string{"ehrgate.example.org"},
		Routes: []Route{{Pattern: "GET /jwks", Access: Public, Handler: ok}}})
	tests := []struct {
		path, host string
		want       int
	}{
		{"/patients/x", "127.0.0.1:8080", http.StatusOK},
		{"/patients/x", "localhost:8080", http.StatusOK},
		{"/patients/x", "[::1]:8080", http.StatusOK},
		{"/patients/x", "EHRGATE.example.org", http.StatusOK},
		{"/patients/x", "ehrgate.example.org:443", http.StatusOK},
		{"/patients/x", "rebind.attacker.example:8080", http.StatusMisdirectedRequest},
		{"/patients/x", "10.0.0.5:8080", http.StatusMisdirectedRequest},
		{"/healthz", "rebind.attacker.example", http.StatusOK},
		{"/jwks", "rebind.attacker.example", http.StatusOK},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("GET", tc.path, nil)
		r.Host = tc.host
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("GET %s with Host %s = %d, want %d", tc.path, tc.host, w.Code, tc.want)
		}
		if w.Code == http.StatusMisdirectedRequest && (strings.Contains(w.Body.String(), "chart") || !strings.Contains(w.Body.String(), "OperationOutcome")) {
			t.Errorf("refusal body %q: want an OperationOutcome and no data", w.Body.String())
		}
	}
	var patterns []string
	for _, r := range s.Routes() {
		patterns = append(patterns, r.Pattern+" "+string(r.Access))
	}
	if got := strings.Join(patterns, ", "); got != "/ patient-data, GET /healthz public, GET /jwks public, GET /readyz public" {
		t.Errorf("Routes() = %s", got)
	}
}

// With login on, every patient-data route (the dashboard and the others)
// passes through SignedIn; sign-in routes do not, but keep the Host check.
func TestSignedInWrapsPatientDataRoutes(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("data")) })
	signedIn := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Cookie") != "session=ok" {
				http.Error(w, "sign in", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	s := New(Options{Dashboard: ok, Hosts: []string{"ehrgate.example.org"}, SignedIn: signedIn,
		Routes: []Route{
			{Pattern: "GET /events/stream", Access: PatientData, Handler: ok},
			{Pattern: "GET /login", Access: SignIn, Handler: ok},
			{Pattern: "GET /fhir/Patient", Access: Token, Handler: ok},
		}})
	tests := []struct {
		path, host, cookie string
		want               int
	}{
		{"/patients/x", "ehrgate.example.org", "", http.StatusUnauthorized},
		{"/patients/x", "ehrgate.example.org", "session=ok", http.StatusOK},
		{"/events/stream", "ehrgate.example.org", "", http.StatusUnauthorized},
		{"/events/stream", "ehrgate.example.org", "session=ok", http.StatusOK},
		{"/patients/x", "rebind.attacker.example", "session=ok", http.StatusMisdirectedRequest},
		{"/login", "ehrgate.example.org", "", http.StatusOK},
		{"/login", "rebind.attacker.example", "", http.StatusMisdirectedRequest},
		{"/fhir/Patient", "api.example.org", "", http.StatusOK},
		{"/healthz", "rebind.attacker.example", "", http.StatusOK},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("GET", tc.path, nil)
		r.Host = tc.host
		if tc.cookie != "" {
			r.Header.Set("Cookie", tc.cookie)
		}
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("GET %s (Host %s, cookie %q) = %d, want %d", tc.path, tc.host, tc.cookie, w.Code, tc.want)
		}
	}
}

func TestCrossOriginOnlyWhereNoCookieOpensTheRoute(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	s := New(Options{Dashboard: ok, Routes: []Route{
		{Pattern: "GET /fhir/{type}", Access: Token, Serves: "api", Handler: ok},
		{Pattern: "POST /oauth/token", Access: OAuth, Serves: "token", Handler: ok},
		{Pattern: "GET /events", Access: PatientData, Serves: "events", Handler: ok},
	}})
	h := s.Handler()
	for _, tc := range []struct {
		method, path, reqMethod string
		wantStatus              int
		wantCORS                bool
	}{
		{"OPTIONS", "/fhir/Patient", "GET", 204, true},
		{"OPTIONS", "/oauth/token", "POST", 204, true},
		{"OPTIONS", "/events", "GET", 403, false},
		{"OPTIONS", "/", "GET", 403, false},
		{"GET", "/fhir/Patient", "", 200, true},
		{"GET", "/events", "", 200, false},
		{"GET", "/", "", 200, false},
	} {
		req := httptest.NewRequest(tc.method, "http://127.0.0.1"+tc.path, nil)
		req.Header.Set("Origin", "https://app.example")
		if tc.reqMethod != "" {
			req.Header.Set("Access-Control-Request-Method", tc.reqMethod)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		cors := rec.Header().Get("Access-Control-Allow-Origin") == "*"
		if rec.Code != tc.wantStatus || cors != tc.wantCORS {
			t.Errorf("%s %s = %d, CORS %v; want %d, %v", tc.method, tc.path, rec.Code, cors, tc.wantStatus, tc.wantCORS)
		}
		if rec.Header().Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("%s %s allows credentials", tc.method, tc.path)
		}
	}
}

// TestAbortedAnswerStaysCutOff: a handler that ends a started answer with
// http.ErrAbortHandler leaves it truncated (the recovery middleware must
// not end it as if complete).
func TestAbortedAnswerStaysCutOff(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("partial line\n"))
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	})
	srv := httptest.NewServer(New(Options{Routes: []Route{{Pattern: "GET /stream", Access: Public, Serves: "test", Handler: h}}}).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("an aborted answer read as complete")
	}
}
