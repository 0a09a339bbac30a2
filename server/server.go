// Package server is ehrgate's HTTP service: it mounts the dashboard, the
// Prometheus metrics endpoint and health checks behind middleware that
// assigns request ids, recovers panics and logs each request by route
// pattern (never by path or query, which carry patient identifiers).
//
// Lifecycle: New builds the handler tree; Serve runs until its context is
// cancelled, then shuts down gracefully, letting in-flight requests finish
// for up to ShutdownTimeout.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"ehrgate/fhir"
)

// RequestIDHeader carries the request id back to clients.
const RequestIDHeader = "X-Request-Id"

type requestIDKey struct{}

// RequestIDFrom returns the request id the middleware assigned, or "".
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// Access says who may call a route. Every route declares one (deny by
// default: New refuses a route without); the table of routes and their
// access is what a security review reads (Server.Routes).
type Access string

// The access rules.
const (
	// Public routes serve no patient data and may be called by anyone:
	// health checks, the JWKS that EHRs fetch.
	Public Access = "public"
	// Operator routes serve operational data without patient data
	// (/metrics), for the network the operator exposes them on.
	Operator Access = "operator"
	// PatientData routes show or lead to patient data (the dashboard, the
	// event stream, SMART launches). They are served only under a Host the
	// operator named (or a loopback name), which keeps web pages on other
	// (DNS-rebinding) domains from reading them through a user's browser.
	// With login on (Options.SignedIn) each also requires a signed-in
	// person; with it off the listener is loopback-only (config).
	PatientData Access = "patient-data"
	// SignIn routes are the login pages (login form, OpenID redirect and
	// callback, logout): served under the same host names as PatientData
	// routes, without a session.
	SignIn Access = "sign-in"
	// Token routes are ehrgate's API for apps: each request carries a
	// SMART bearer access token, verified (issuer, audience, expiry,
	// signature, revocation) and whose scopes the handler enforces per
	// resource type, interaction and patient compartment. They are served
	// under any Host: a token, not the browser's origin, grants access.
	Token Access = "smart-token"
	// OAuth routes are ehrgate's authorization server endpoints; each
	// authenticates its caller as OAuth and SMART require (a client
	// assertion or PKCE at the token endpoint, a signed-in person at the
	// authorization endpoint).
	OAuth Access = "oauth"
)

func (a Access) valid() bool {
	return a == Public || a == Operator || a == PatientData || a == SignIn || a == Token || a == OAuth
}

// Route is one HTTP route: a ServeMux pattern, its handler, who may call
// it, and what it serves (one line, for the route table).
type Route struct {
	Pattern string
	Handler http.Handler
	Access  Access
	Serves  string
}

// RouteInfo describes a route in the table.
type RouteInfo struct {
	Pattern string `json:"pattern"`
	Access  Access `json:"access"`
	Serves  string `json:"serves"`
}

// Options configure a Server.
type Options struct {
	Dashboard       http.Handler                    // mounted at "/" (patient data); nil serves 404s there
	Gatherer        prometheus.Gatherer             // served at /metrics; nil disables it
	Ready           func(ctx context.Context) error // readiness check for /readyz; nil = always ready
	Logger          *slog.Logger
	ShutdownTimeout time.Duration // default 10s
	// Routes are the extra routes; each must declare its Access.
	Routes []Route
	// Hosts are the host names (without port) under which patient-data
	// and sign-in routes are served, besides localhost and loopback
	// addresses.
	Hosts []string
	// SignedIn, when set (login on), wraps every PatientData route (the
	// dashboard included): it admits only requests with a signed-in
	// person (login.Service.Require). Nil: no login; the listener must
	// then be loopback-only.
	SignedIn func(http.Handler) http.Handler
}

// Server is the HTTP service.
type Server struct {
	opts    Options
	log     *slog.Logger
	handler http.Handler
	routes  []RouteInfo
	hosts   map[string]bool
	mux     *http.ServeMux
	access  map[string]Access // by pattern
}

// New builds a Server. It panics when a route declares no valid Access
// (a programming error, caught by any test that builds the server).
func New(opts Options) *Server {
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, log: log, hosts: map[string]bool{}, access: map[string]Access{}}
	for _, h := range opts.Hosts {
		s.hosts[strings.ToLower(h)] = true
	}
	routes := []Route{
		{Pattern: "GET /healthz", Access: Public, Serves: "liveness", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintln(w, "ok")
		})},
		{Pattern: "GET /readyz", Access: Public, Serves: "readiness (the store answers)", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if opts.Ready != nil {
				if err := opts.Ready(r.Context()); err != nil {
					log.WarnContext(r.Context(), "not ready", "error", err)
					http.Error(w, "not ready", http.StatusServiceUnavailable)
					return
				}
			}
			fmt.Fprintln(w, "ready")
		})},
	}
	if opts.Gatherer != nil {
		routes = append(routes, Route{Pattern: "GET /metrics", Access: Operator, Serves: "Prometheus metrics (no patient data)",
			Handler: promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{})})
	}
	routes = append(routes, opts.Routes...)
	if opts.Dashboard != nil {
		routes = append(routes, Route{Pattern: "/", Access: PatientData, Serves: "the dashboard: patients, charts, connections, quality, audit trail (pages by role)", Handler: opts.Dashboard})
	}
	mux := http.NewServeMux()
	for _, rt := range routes {
		if !rt.Access.valid() {
			panic(fmt.Sprintf("server: route %q declares no access rule (want public, operator, patient-data, sign-in, smart-token or oauth)", rt.Pattern))
		}
		h := rt.Handler
		if rt.Access == PatientData && opts.SignedIn != nil {
			h = opts.SignedIn(h)
		}
		if rt.Access == PatientData || rt.Access == SignIn {
			h = s.hostGuard(h)
		}
		if rt.Access.crossOrigin() {
			h = allowCrossOrigin(h)
		}
		mux.Handle(rt.Pattern, h)
		s.access[rt.Pattern] = rt.Access
		s.routes = append(s.routes, RouteInfo{Pattern: rt.Pattern, Access: rt.Access, Serves: rt.Serves})
	}
	sort.Slice(s.routes, func(i, j int) bool { return s.routes[i].Pattern < s.routes[j].Pattern })
	s.mux = mux
	s.handler = s.middleware(mux)
	return s
}

// Routes returns the route table: every route with its access rule.
func (s *Server) Routes() []RouteInfo { return append([]RouteInfo(nil), s.routes...) }

// hostGuard refuses requests whose Host is neither a loopback name nor
// one of Options.Hosts: a browser sends the name it resolved, so a page on
// a rebinding domain that resolves to this listener is refused.
func (s *Server) hostGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.allowedHost(r.Host) {
			s.log.WarnContext(r.Context(), "request refused: unknown Host", "route", r.Pattern)
			fhir.WriteOutcome(w, http.StatusMisdirectedRequest, "error", "security",
				"This host name is not one ehrgate serves patient data under; add it to http_hosts.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) allowedHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "localhost" || s.hosts[host] {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Handler returns the root handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves on ln until ctx is cancelled, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down HTTP: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving HTTP: %w", err)
	}
	return nil
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := newRequestID()
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
		w.Header().Set(RequestIDHeader, id)
		sw := &statusWriter{ResponseWriter: w}
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					// A handler ending its answer unfinished on purpose (a
					// stream that failed midway): net/http must cut the
					// connection, so the client sees a truncated answer,
					// not a complete one.
					panic(p)
				}
				s.log.ErrorContext(r.Context(), "handler panic", "request_id", id, "route", r.Pattern, "panic", fmt.Sprint(p))
				if sw.status == 0 {
					fhir.WriteOutcome(sw, http.StatusInternalServerError, "fatal", "exception",
						"Internal error; request id "+id)
				}
			}
			s.log.InfoContext(r.Context(), "http request", "request_id", id, "method", r.Method,
				"route", r.Pattern, "status", sw.status, "duration_ms", time.Since(start).Milliseconds())
		}()
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			s.preflight(sw, r)
			return
		}
		next.ServeHTTP(sw, r)
	})
}

// Cross-origin requests (CORS). Browser apps (SMART apps, CDS clients in
// an EHR's web client) call the API, the token endpoint and discovery from
// their own origins, with bearer tokens or client assertions, never with
// ehrgate's cookies: so the routes that authenticate that way, and public
// ones, answer any origin, without credentials (no
// Access-Control-Allow-Credentials: a browser then sends no cookies and
// reads no cookie-authenticated answer). Patient-data and sign-in routes,
// which a session cookie opens, answer no other origin.
const (
	corsMethods = "GET, POST, PUT, DELETE"
	corsHeaders = "Authorization, Content-Type, Accept, Prefer, If-Match, If-None-Match, Ehrgate-Form"
	corsExpose  = "Content-Location, Location, ETag, Last-Modified, Retry-After, X-Progress, Expires, X-Request-Id"
)

func (a Access) crossOrigin() bool { return a == Public || a == Token || a == OAuth }

func allowCrossOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") != "" {
			w.Header().Set("Access-Control-Allow-Origin", "*")
			w.Header().Set("Access-Control-Expose-Headers", corsExpose)
		}
		next.ServeHTTP(w, r)
	})
}

// preflight answers a CORS preflight for the route the actual request
// would reach: allowed when that route answers other origins.
func (s *Server) preflight(w http.ResponseWriter, r *http.Request) {
	probe := r.Clone(r.Context())
	probe.Method = r.Header.Get("Access-Control-Request-Method")
	_, pattern := s.mux.Handler(probe)
	if a, ok := s.access[pattern]; !ok || !a.crossOrigin() {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", corsMethods)
	h.Set("Access-Control-Allow-Headers", corsHeaders)
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}
