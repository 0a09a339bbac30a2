// Package gateway is ehrgate's running service, built from a configuration
// and a store: connections with their vendor adapters and SMART
// authorization, syncs (on demand and scheduled), compatibility probes,
// SMART launches, the HL7 v2 listener, events, and the HTTP routes
// (dashboard, metrics, JWKS, SMART endpoints, event stream).
//
// The CLI (cmd/ehrgate) builds one from flags and files; a Go program can
// embed one with its own store and routes (see Example). Lifecycle: New
// checks the configuration against the store and prepares the shared
// machinery (token vault, signing keys, metrics); Sync, Probe and the other
// methods may then be called from any goroutine; Run (or Serve and the
// Start* methods) serves until its context ends. The gateway does not own
// the store: the caller closes it after the gateway has stopped.
//
// State the gateway remembers between runs (connection state, probe
// reports, pending launches, tokens) lives in the store, so several
// processes on one store (replicas on one PostgreSQL) see the same.
package gateway

import (
	"context"
	"ehrgate/subscriptions"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"ehrgate/cdshooks"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"net/http"

	"ehrgate/audit"
	"ehrgate/authz"
	"ehrgate/config"
	"ehrgate/dashboard"
	"ehrgate/ehr"
	"ehrgate/events"
	"ehrgate/fhir"
	"ehrgate/fhirapi"
	"ehrgate/login"
	"ehrgate/metrics"
	"ehrgate/normalize"
	"ehrgate/probe"
	"ehrgate/refresh"
	"ehrgate/secrets"
	"ehrgate/server"
	"ehrgate/smart"
	"ehrgate/store"
	"ehrgate/terminology"
)

// Options build a Gateway.
type Options struct {
	// Config is the configuration: connections, schedules, HL7 and events
	// settings. Its Data directory is only read for state older versions
	// kept in files.
	Config config.Config
	// Store holds everything the gateway keeps; it is shared by every
	// gateway process on it.
	Store store.Backend
	// Keyring encrypts tokens, signing keys and pending launches at rest;
	// every process on one store must hold the same key-encryption keys.
	Keyring *secrets.Keyring
	// Logger receives operational logs (never tokens or patient data).
	// Nil discards.
	Logger *slog.Logger
	// Getenv reads the environment variables the configuration names
	// (client secrets, webhook secrets). Nil is os.Getenv.
	Getenv func(string) string
	// Registry receives the gateway's metrics. Nil creates one with the
	// Go and process collectors.
	Registry *prometheus.Registry
	// LoginClock is the clock of sessions and lockouts (tests); nil is
	// time.Now.
	LoginClock func() time.Time
	// LoginParams is the password hashing cost of new local accounts
	// (tests make it cheap); nil is login.DefaultParams.
	LoginParams *login.Params
}

// Gateway is the running service. Its methods are safe for concurrent use.
type Gateway struct {
	cfg     config.Config
	store   store.Backend
	log     *slog.Logger
	getenv  func(string) string
	reg     *prometheus.Registry
	metrics *metrics.Metrics

	keys     *smart.KeyManager
	vault    *smart.Vault
	discover *smart.Discoverer

	mu       sync.Mutex
	conns    []config.Connection
	status   map[string]dashboard.ConnectionStatus
	runtimes map[string]*Runtime
	subs     map[string]*subscriptions.Manager // running subscriptions, by connection
	owner    string                            // this gateway's name on store leases (leaseOwner)
	webhooks *events.Webhooks                  // the configured webhooks (StartEvents), or nil
	launcher *smart.Launcher
	mounts   map[string]server.Route // extra HTTP routes, by pattern
	bus      *events.Bus             // this process's events (StartEvents), or nil
	hl7opts  map[string]MLLPOptions  // the listeners' options, by connection

	jobs    jobState
	audit   *audit.Log                               // the trail every access to patient data is recorded in
	apiAuth fhirapi.Authenticator                    // verifies the API's bearer tokens; nil refuses them all
	appSubs *fhirapi.API                             // the API whose app Subscriptions the event deliverer serves (set by apiRoutes)
	authz   *authz.Server                            // ehrgate's own authorization server, or nil
	cds     bool                                     // the CDS Hooks services are mounted
	person  func(*http.Request) (authz.Person, bool) // who is signed in (people login)
	login   *login.Service                           // dashboard sign-in; nil when login is off

	keyring *secrets.Keyring // seals the write-back outbox
	writes  writeState       // the write-back outbox and writer (writejobs.go)
}

// New builds a gateway over o.Store. The local code map named in the
// configuration is watched for edits until ctx ends.
func New(ctx context.Context, o Options) (*Gateway, error) {
	if o.Store == nil {
		return nil, errors.New("gateway: no store")
	}
	if o.Keyring == nil {
		return nil, errors.New("gateway: no keyring")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	g := &Gateway{
		cfg: o.Config, store: o.Store, log: log, getenv: getenv, reg: reg, metrics: metrics.New(reg),
		keys:     smart.NewKeyManager(o.Store, o.Keyring, smart.KeyOptions{}),
		vault:    smart.NewVault(o.Store, o.Keyring, nil),
		discover: smart.NewDiscoverer(nil, nil),
		status:   map[string]dashboard.ConnectionStatus{},
		runtimes: map[string]*Runtime{},
		mounts:   map[string]server.Route{},
		hl7opts:  map[string]MLLPOptions{},
		keyring:  o.Keyring,
	}
	reg.MustRegister(metrics.NewHL7Feeds(o.Store, func() []string { return g.hl7Feeds(context.Background()) }, nil, log))
	host, _ := os.Hostname()
	g.audit = audit.NewLog(o.Store, audit.Source{InstanceID: fmt.Sprintf("%s-%d", host, os.Getpid())}, nil)
	if o.Config.Login.On() {
		svc, err := newLogin(o.Config.Login, o.Store, g.audit, log, getenv, o.LoginClock, o.LoginParams)
		if err != nil {
			return nil, err
		}
		g.login = svc
		// Who authorizes apps at ehrgate's own authorization server.
		g.person = func(r *http.Request) (authz.Person, bool) {
			p, ok := svc.SignedIn(r)
			return authz.Person{ID: p.ID, Name: p.DisplayName(), MayAudit: p.Can(login.SeeAudit)}, ok
		}
		if host, _, err := net.SplitHostPort(o.Config.HTTPAddr); err == nil && !o.Config.Login.SecureCookies && !isLoopbackHost(host) {
			log.Warn("login: http_addr is not a loopback address and secure_cookies is off: session cookies are not marked Secure; serve the dashboard over TLS (a TLS proxy in front) and set login.secure_cookies")
		}
		if o.Config.Login.Mode == config.LoginLocal {
			if list, err := svc.Accounts().List(ctx); err == nil && len(list) == 0 {
				log.Warn("login.mode is local but there are no accounts yet: no one can sign in; add one with `ehrgate users add NAME --role admin`")
			}
		}
	}
	g.AddConnections(o.Config.Connections...)
	if err := g.setupAPIAuth(ctx, o.Keyring); err != nil {
		return nil, err
	}
	if err := g.setupNormalizer(ctx); err != nil {
		return nil, err
	}
	if c := o.Config.CDS; c.BaseURL != "" {
		if _, err := g.MountCDS(cdshooks.Options{BaseURL: strings.TrimSuffix(c.BaseURL, "/"), JKUAllowList: c.JKUAllowList}); err != nil {
			return nil, fmt.Errorf("CDS Hooks services: %w", err)
		}
		g.cds = true
	}
	if o.Config.Data != "" {
		if err := importLegacyState(ctx, o.Store, o.Config.Data); err != nil {
			log.Warn("could not import connection state kept in files by an older ehrgate", "error", err)
		}
	}
	return g, nil
}

// Close releases what the gateway opened besides the store (the job
// queue's database handle); call it after Run returned.
func (g *Gateway) Close() error {
	if g.jobs.close != nil {
		return g.jobs.close()
	}
	return nil
}

// Store returns the gateway's store.
func (g *Gateway) Store() store.Backend { return g.store }

// Audit returns the recorder of accesses to patient data (fail closed:
// when Record fails, the access must not happen).
func (g *Gateway) Audit() audit.Recorder { return g.audit }

// Keys returns the client-assertion signing key manager.
func (g *Gateway) Keys() *smart.KeyManager { return g.keys }

// Vault returns the token vault.
func (g *Gateway) Vault() *smart.Vault { return g.vault }

// Metrics returns the gateway's metrics.
func (g *Gateway) Metrics() *metrics.Metrics { return g.metrics }

// Logger returns the gateway's logger.
func (g *Gateway) Logger() *slog.Logger { return g.log }

// AddConnections adds connections to those the configuration named (the
// demo adds its simulated EHR's); a connection with a known name replaces
// it.
func (g *Gateway) AddConnections(conns ...config.Connection) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range conns {
		replaced := false
		for i, old := range g.conns {
			if old.Name == c.Name {
				g.conns[i], replaced = c, true
			}
		}
		if !replaced {
			g.conns = append(g.conns, c)
		}
		if _, ok := g.status[c.Name]; !ok {
			g.status[c.Name] = dashboard.ConnectionStatus{Name: c.Name, BaseURL: c.BaseURL, Vendor: vendorLabel(c), State: "not yet synced"}
		}
	}
}

// SetStatus sets what the dashboard shows for a connection until its next
// sync.
func (g *Gateway) SetStatus(s dashboard.ConnectionStatus) {
	g.mu.Lock()
	g.status[s.Name] = s
	g.mu.Unlock()
}

// Connections returns the gateway's connections.
func (g *Gateway) Connections() []config.Connection {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]config.Connection(nil), g.conns...)
}

// Connection returns the connection named name.
func (g *Gateway) Connection(name string) (config.Connection, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.conns {
		if c.Name == name {
			return c, true
		}
	}
	return config.Connection{}, false
}

// setupNormalizer configures the terminology chain: the local-code map
// (watched for edits until ctx ends) and the stale-medication period.
func (g *Gateway) setupNormalizer(ctx context.Context) error {
	var opts []normalize.Option
	if p := g.cfg.LocalCodeMap; p != "" {
		m, err := terminology.OpenLocalMap(p)
		if err != nil {
			return fmt.Errorf("local code map: %w", err)
		}
		go m.Watch(ctx, 5*time.Second, func(err error) {
			g.log.Warn("local code map reload failed; keeping the previous map", "file", p, "error", err)
		})
		opts = append(opts, normalize.WithLocalCodes(m))
	}
	if d := time.Duration(g.cfg.StaleAfter); d > 0 {
		opts = append(opts, normalize.WithStaleAfter(d))
	}
	if len(opts) > 0 {
		normalize.SetDefault(normalize.New(opts...))
	}
	return nil
}

func vendorLabel(c config.Connection) string {
	if c.Vendor == "" {
		return "auto-detect"
	}
	return c.Vendor
}

// EnsureSigningKey creates the first client-assertion signing key when
// there is none, so backend services work on a fresh store.
func (g *Gateway) EnsureSigningKey(ctx context.Context) error {
	keys, err := g.keys.List(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.State == smart.KeyActive {
			return nil
		}
	}
	if _, err := g.keys.Rotate(ctx, smart.ES384); err != nil {
		return err
	}
	g.log.Info("created the first client-assertion signing key; publish /.well-known/jwks.json to the EHR")
	return nil
}

// clientConfig turns a connection's auth settings into a SMART client.
func (g *Gateway) clientConfig(c config.Connection, launch bool) (smart.ClientConfig, error) {
	a := c.Auth
	cc := smart.ClientConfig{Connection: c.Name, FHIRBaseURL: c.BaseURL, ClientID: a.ClientID, RedirectURL: a.RedirectURL}
	switch a.Method {
	case "", "private_key_jwt":
		cc.AuthMethod = smart.AuthPrivateKeyJWT
	case "client_secret_basic":
		cc.AuthMethod = smart.AuthClientSecretBasic
	case "client_secret_post":
		cc.AuthMethod = smart.AuthClientSecretPost
	case "none":
		cc.AuthMethod = smart.AuthNone
	}
	if a.ClientSecretEnv != "" {
		secret := g.getenv(a.ClientSecretEnv)
		if secret == "" {
			return cc, fmt.Errorf("connection %s: environment variable %s (the client secret) is empty", c.Name, a.ClientSecretEnv)
		}
		cc.ClientSecret = smart.Secret(secret)
	}
	cc.Scopes = smart.ScopeRequest{Context: smart.ContextSystem, Types: TypesOf(c), Extra: a.Scopes, Writes: WritesOf(c)}
	if launch {
		cc.Scopes.Writes = nil // write-back runs as the system, never in a user's launch
		cc.Scopes.Context = smart.ContextPatient
		if a.Context == "user" {
			cc.Scopes.Context = smart.ContextUser
		}
		// "launch" is added by the launcher for EHR launches only.
		cc.Scopes.Extra = append([]string{"openid", "fhirUser", "offline_access"}, a.Scopes...)
	}
	return cc, nil
}

// Runtime is what a connection needs at run time, built once per gateway:
// its vendor adapter (configured or detected), its token source and its
// FHIR client.
type Runtime struct {
	Conn     config.Connection
	Adapter  *ehr.Adapter
	Detected string             // e.g. "epic November 2025 (detected, confidence 1.00)"
	Tokens   *smart.TokenSource // nil without authorization
	Client   *fhir.Client
}

// Runtime returns (building once) the connection's adapter, token source
// and FHIR client.
func (g *Gateway) Runtime(ctx context.Context, c config.Connection) (*Runtime, error) {
	g.mu.Lock()
	rt := g.runtimes[c.Name]
	g.mu.Unlock()
	if rt != nil {
		return rt, nil
	}
	rt = &Runtime{Conn: c}
	opts := fhir.Options{Connection: c.Name, Observer: g.metrics, Logger: g.log}
	if c.Auth != nil && c.Auth.Type == config.AuthBackendServices {
		cc, err := g.clientConfig(c, false)
		if err != nil {
			return nil, err
		}
		if cc.AuthMethod == smart.AuthPrivateKeyJWT {
			if err := g.EnsureSigningKey(ctx); err != nil {
				return nil, fmt.Errorf("connection %s: signing key: %w", c.Name, err)
			}
		}
		ts, err := smart.NewTokenSource(smart.TokenSourceOptions{Client: cc, Grant: smart.GrantClientCredentials,
			Vault: g.vault, Discoverer: g.discover, Keys: g.keys, Logger: g.log})
		if err != nil {
			return nil, fmt.Errorf("connection %s: %w", c.Name, err)
		}
		rt.Tokens = ts
		opts.Authorizer = ts
	}
	adapter, detected, err := ResolveAdapter(ctx, c.BaseURL, c.Vendor, c.SiteProfile, opts)
	if err != nil {
		return nil, fmt.Errorf("connection %s: %w", c.Name, err)
	}
	adapter = adapter.WithPageSize(c.PageSize)
	for _, w := range adapter.Warnings() {
		g.log.Warn("site profile", "connection", c.Name, "warning", w)
	}
	client, err := fhir.NewClient(c.BaseURL, adapter.ClientOptions(opts))
	if err != nil {
		return nil, err
	}
	rt.Adapter, rt.Detected, rt.Client = adapter, detected, client
	g.mu.Lock()
	g.runtimes[c.Name] = rt
	st := g.status[c.Name]
	st.Name, st.BaseURL, st.Vendor = c.Name, c.BaseURL, detected
	g.status[c.Name] = st
	g.mu.Unlock()
	return rt, nil
}

// grantedPlanner skips resource types the authorization server did not
// grant, with a clear reason, instead of failing on 403s.
type grantedPlanner struct {
	refresh.Planner
	granted smart.Scopes
	context string
}

func (p grantedPlanner) Plan(typ, patientID string) ([]*fhir.Query, string) {
	if ok, _ := p.granted.CanSearch(p.context, typ); !ok {
		return nil, "ehrgate was not granted access to " + typ + " on this connection."
	}
	return p.Planner.Plan(typ, patientID)
}

// Sync runs one full sync of conn and records its outcome (dashboard,
// connection state in the store).
func (g *Gateway) Sync(ctx context.Context, conn config.Connection) (refresh.Summary, error) {
	return g.sync(ctx, conn, time.Time{})
}

// sync is Sync; a non-zero since resumes a run begun then: patient types
// fetched since are not fetched again.
func (g *Gateway) sync(ctx context.Context, conn config.Connection, since time.Time) (refresh.Summary, error) {
	unmark := g.markRunning(ctx, conn.Name, "sync")
	defer unmark()
	sum, err := g.doSync(ctx, conn, since)
	if sum.New+sum.Updated > 0 {
		g.kickIdentity() // new or changed Patients among them are matched
	}
	g.mu.Lock()
	st := g.status[conn.Name]
	st.Name, st.BaseURL = conn.Name, conn.BaseURL
	var reauth *smart.ReauthorizationError
	switch {
	case errors.As(err, &reauth) || errors.Is(err, smart.ErrNeedsReauthorization):
		st.State, st.Detail = "needs re-authorization", "The EHR refused ehrgate's credentials; an administrator must authorize the connection again."
	case err != nil:
		st.State, st.Detail = "error", "The last sync could not run; see the logs."
	case sum.Errors > 0:
		st.State, st.Detail, st.LastSync = "degraded", fmt.Sprintf("%d fetches failed in the last sync.", sum.Errors), time.Now()
	default:
		st.State, st.Detail, st.LastSync = "ok", "", time.Now()
	}
	g.status[conn.Name] = st
	vendor := ""
	if rt := g.runtimes[conn.Name]; rt != nil {
		vendor = rt.Detected
	}
	g.mu.Unlock()
	serr := UpdateConnectionState(ctx, g.store, conn.Name, func(saved *ConnectionState) {
		saved.BaseURL, saved.Auth, saved.Vendor, saved.Error = conn.BaseURL, config.AuthNone, vendor, ""
		if conn.Auth != nil && conn.Auth.Type != "" {
			saved.Auth = conn.Auth.Type
		}
		if err == nil {
			saved.LastSync, saved.Summary = time.Now().UTC(), &sum
		} else {
			saved.Error = st.Detail
		}
	})
	if serr != nil {
		g.log.Warn("could not save connection state", "connection", conn.Name, "error", serr)
	}
	return sum, err
}

// RecordGrants remembers which of a connection's types the EHR did not
// grant, for `ehrgate status` and the dashboard.
func (g *Gateway) RecordGrants(ctx context.Context, conn string, notGranted []string) {
	err := UpdateConnectionState(ctx, g.store, conn, func(st *ConnectionState) {
		st.NotGranted, st.ScopesCheckedAt = notGranted, time.Now().UTC()
	})
	if err != nil {
		g.log.Warn("could not save connection state", "connection", conn, "error", err)
	}
	g.mu.Lock()
	s := g.status[conn]
	s.NotGranted, s.ScopesCheckedAt = notGranted, time.Now().UTC()
	g.status[conn] = s
	g.mu.Unlock()
}

func (g *Gateway) doSync(ctx context.Context, conn config.Connection, since time.Time) (refresh.Summary, error) {
	rt, err := g.Runtime(ctx, conn)
	if err != nil {
		return refresh.Summary{}, err
	}
	planner := rt.Adapter.Planner()
	if rt.Tokens != nil {
		// A token granted for fewer types than the connection now reads is
		// renewed first; what the EHR still does not grant is recorded.
		notGranted, err := rt.Tokens.EnsureTypes(ctx, TypesOf(conn))
		if err != nil {
			g.metrics.AuthorizationFailed(conn.Name, errors.Is(err, smart.ErrNeedsReauthorization))
			return refresh.Summary{}, fmt.Errorf("authorizing %s: %w", conn.Name, err)
		}
		g.RecordGrants(ctx, conn.Name, notGranted)
		tok, err := rt.Tokens.Token(ctx)
		if err != nil {
			g.metrics.AuthorizationFailed(conn.Name, errors.Is(err, smart.ErrNeedsReauthorization))
			return refresh.Summary{}, fmt.Errorf("authorizing %s: %w", conn.Name, err)
		}
		g.metrics.Authorized(conn.Name)
		granted, err := smart.ParseScopes(tok.Scope)
		if err == nil && len(granted) > 0 {
			planner = grantedPlanner{Planner: planner, granted: granted, context: smart.ContextSystem}
			for _, typ := range TypesOf(conn) {
				if ok, _ := granted.CanSearch(smart.ContextSystem, typ); !ok {
					g.log.Warn("scope not granted; the type will be skipped", "connection", conn.Name, "type", typ)
				}
			}
		}
	}
	syncer, err := refresh.New(rt.Client, g.store, refresh.Options{
		Connection: conn.Name,
		Types:      conn.Types,
		Workers:    rt.Adapter.Workers(conn.Workers),
		PageSize:   rt.Adapter.PageSize(),
		Planner:    planner,
		Logger:     g.log,
		Recorder:   g.metrics,
		Done:       g.fetchedSince(conn.Name, since),
	})
	if err != nil {
		return refresh.Summary{}, err
	}
	return syncer.Run(ctx)
}

// Probe runs the compatibility probe on a connection and saves the report
// in the store, where `ehrgate status` and the dashboard find it.
func (g *Gateway) Probe(ctx context.Context, conn config.Connection) (*probe.Report, error) {
	rt, err := g.Runtime(ctx, conn)
	if err != nil {
		return nil, err
	}
	rep, err := probe.Run(ctx, rt.Client, probe.Options{Types: conn.Types, Adapter: rt.Adapter})
	if err != nil {
		return nil, err
	}
	rep.Connection = conn.Name
	if err := SaveProbe(ctx, g.store, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// TypesOf returns the resource types a connection reads: its configured
// types, or every chart type.
func TypesOf(c config.Connection) []string {
	if len(c.Types) > 0 {
		return c.Types
	}
	return refresh.ChartTypes
}

// ConnectionStatus returns what the dashboard shows for each connection:
// this process's view, with what the store records (bulk exports and scope
// checks run in other processes, re-authorization needs).
func (g *Gateway) ConnectionStatus(ctx context.Context) []dashboard.ConnectionStatus {
	g.mu.Lock()
	out := make([]dashboard.ConnectionStatus, 0, len(g.status))
	for _, s := range g.status {
		out = append(out, s)
	}
	g.mu.Unlock()
	for i, s := range out {
		if saved, ok, err := LoadConnectionState(ctx, g.store, s.Name); err == nil && ok {
			out[i] = withSavedState(s, saved)
		}
	}
	subs := g.SubscriptionManagers()
	for i, s := range out {
		if m := subs[s.Name]; m != nil {
			out[i].Subscription = subscriptionStatus(m)
		}
		if vs, err := g.vault.Status(ctx, s.Name); err == nil && vs.State == store.TokenNeedsReauthorization {
			out[i].State = "needs re-authorization"
			out[i].Detail = "The EHR refused ehrgate's credentials (" + vs.Reason + "); authorize the connection again."
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ScheduleSyncs re-syncs every connection in conns (except those filled by
// user launches) every interval until ctx ends.
func (g *Gateway) ScheduleSyncs(ctx context.Context, conns []config.Connection, every time.Duration) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, c := range conns {
				if c.Auth != nil && c.Auth.Type == config.AuthLaunch {
					continue // synced per patient when users launch
				}
				if _, err := g.Sync(ctx, c); err != nil && ctx.Err() == nil {
					g.log.Error("scheduled sync failed", "connection", c.Name, "error", err)
				}
			}
		}
	}
}

// fetchedSince returns a refresh.Options.Done that reports the patient
// types of connection fetched (available or not, but not failed) at or
// after since; nil when since is zero.
func (g *Gateway) fetchedSince(connection string, since time.Time) func(ctx context.Context, patientID, typ string) bool {
	if since.IsZero() {
		return nil
	}
	var mu sync.Mutex
	cache := map[string]map[string]bool{} // patient -> types done
	return func(ctx context.Context, patientID, typ string) bool {
		mu.Lock()
		done, ok := cache[patientID]
		mu.Unlock()
		if !ok {
			states, err := g.store.FetchStates(ctx, connection, patientID)
			if err != nil {
				return false // fetch again: harmless
			}
			done = map[string]bool{}
			for _, st := range states {
				if st.Availability != store.Failed && !st.FetchedAt.Before(since) {
					done[st.Type] = true
				}
			}
			mu.Lock()
			cache[patientID] = done
			mu.Unlock()
		}
		return done[typ]
	}
}
