package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"ehrgate/config"
	"ehrgate/dashboard"
	"ehrgate/ehr"
	"ehrgate/fhir"
	"ehrgate/metrics"
	"ehrgate/normalize"
	"ehrgate/probe"
	"ehrgate/refresh"
	"ehrgate/secrets"
	"ehrgate/server"
	"ehrgate/smart"
	"ehrgate/store"
	"ehrgate/store/sqlite"
	"ehrgate/terminology"
)

// gateway is the running service: store, secrets, SMART machinery,
// metrics and per-connection runtime state.
type gateway struct {
	a       *app
	store   *sqlite.Store
	reg     *prometheus.Registry
	metrics *metrics.Metrics

	keyring  *secrets.Source
	keys     *smart.KeyManager
	vault    *smart.Vault
	discover *smart.Discoverer

	mu       sync.Mutex
	status   map[string]dashboard.ConnectionStatus
	conns    map[string]*connRuntime
	launcher *smart.Launcher
	mounts   map[string]http.Handler // extra HTTP routes (events)
}

// connRuntime is what a connection needs at run time, built once.
type connRuntime struct {
	conn     config.Connection
	adapter  *ehr.Adapter
	detected string
	tokens   *smart.TokenSource // nil without authorization
	client   *fhir.Client
}

func (a *app) openGateway(ctx context.Context) (*gateway, error) {
	st, err := sqlite.OpenDir(ctx, a.cfg.Data)
	if err != nil {
		return nil, fmt.Errorf("opening the store in %s: %w", a.cfg.Data, err)
	}
	src, err := openKeyring(a)
	if err != nil {
		st.Close()
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	g := &gateway{
		a: a, store: st, reg: reg, metrics: metrics.New(reg),
		keyring:  src,
		keys:     smart.NewKeyManager(st, src.Ring, smart.KeyOptions{}),
		vault:    smart.NewVault(st, src.Ring, nil),
		discover: smart.NewDiscoverer(nil, nil),
		status:   map[string]dashboard.ConnectionStatus{},
		conns:    map[string]*connRuntime{},
	}
	for _, c := range a.cfg.Connections {
		g.status[c.Name] = dashboard.ConnectionStatus{Name: c.Name, BaseURL: c.BaseURL, Vendor: vendorLabel(c), State: "not yet synced"}
	}
	if err := g.setupNormalizer(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return g, nil
}

// setupNormalizer configures the terminology chain: the local-code map
// (watched for edits until ctx ends) and the stale-medication period.
func (g *gateway) setupNormalizer(ctx context.Context) error {
	var opts []normalize.Option
	if p := g.a.cfg.LocalCodeMap; p != "" {
		m, err := terminology.OpenLocalMap(p)
		if err != nil {
			return fmt.Errorf("local code map: %w", err)
		}
		go m.Watch(ctx, 5*time.Second, func(err error) {
			g.a.log.Warn("local code map reload failed; keeping the previous map", "file", p, "error", err)
		})
		opts = append(opts, normalize.WithLocalCodes(m))
	}
	if d := time.Duration(g.a.cfg.StaleAfter); d > 0 {
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

func (g *gateway) Close() error { return g.store.Close() }

// ensureSigningKey creates the first client-assertion signing key when
// there is none, so backend services work on a fresh data directory.
func (g *gateway) ensureSigningKey(ctx context.Context) error {
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
	g.a.log.Info("created the first client-assertion signing key; publish /.well-known/jwks.json to the EHR")
	return nil
}

// clientConfig turns a connection's auth settings into a SMART client.
func (g *gateway) clientConfig(c config.Connection, launch bool) (smart.ClientConfig, error) {
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
		secret := keysEnv(g.a.env)(a.ClientSecretEnv)
		if secret == "" {
			secret = os.Getenv(a.ClientSecretEnv)
		}
		if secret == "" {
			return cc, fmt.Errorf("connection %s: environment variable %s (the client secret) is empty", c.Name, a.ClientSecretEnv)
		}
		cc.ClientSecret = smart.Secret(secret)
	}
	types := c.Types
	if len(types) == 0 {
		types = refresh.ChartTypes
	}
	cc.Scopes = smart.ScopeRequest{Context: smart.ContextSystem, Types: types, Extra: a.Scopes}
	if launch {
		cc.Scopes.Context = smart.ContextPatient
		if a.Context == "user" {
			cc.Scopes.Context = smart.ContextUser
		}
		// "launch" is added by the launcher for EHR launches only.
		cc.Scopes.Extra = append([]string{"openid", "fhirUser", "offline_access"}, a.Scopes...)
	}
	return cc, nil
}

// runtime returns (building once) the connection's adapter, token source
// and FHIR client.
func (g *gateway) runtime(ctx context.Context, c config.Connection) (*connRuntime, error) {
	g.mu.Lock()
	rt := g.conns[c.Name]
	g.mu.Unlock()
	if rt != nil {
		return rt, nil
	}
	rt = &connRuntime{conn: c}
	opts := fhir.Options{Connection: c.Name, Observer: g.metrics, Logger: g.a.log}
	if c.Auth != nil && c.Auth.Type == config.AuthBackendServices {
		cc, err := g.clientConfig(c, false)
		if err != nil {
			return nil, err
		}
		if cc.AuthMethod == smart.AuthPrivateKeyJWT {
			if err := g.ensureSigningKey(ctx); err != nil {
				return nil, fmt.Errorf("connection %s: signing key: %w", c.Name, err)
			}
		}
		ts, err := smart.NewTokenSource(smart.TokenSourceOptions{Client: cc, Grant: smart.GrantClientCredentials,
			Vault: g.vault, Discoverer: g.discover, Keys: g.keys, Logger: g.a.log})
		if err != nil {
			return nil, fmt.Errorf("connection %s: %w", c.Name, err)
		}
		rt.tokens = ts
		opts.Authorizer = ts
	}
	adapter, detected, err := resolveAdapter(ctx, c.BaseURL, c.Vendor, c.SiteProfile, opts)
	if err != nil {
		return nil, fmt.Errorf("connection %s: %w", c.Name, err)
	}
	adapter = adapter.WithPageSize(c.PageSize)
	for _, w := range adapter.Warnings() {
		g.a.log.Warn("site profile", "connection", c.Name, "warning", w)
	}
	client, err := fhir.NewClient(c.BaseURL, adapter.ClientOptions(opts))
	if err != nil {
		return nil, err
	}
	rt.adapter, rt.detected, rt.client = adapter, detected, client
	g.mu.Lock()
	g.conns[c.Name] = rt
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

// syncConnection runs one full sync of conn and records its status.
func (g *gateway) syncConnection(ctx context.Context, conn config.Connection) (refresh.Summary, error) {
	sum, err := g.doSync(ctx, conn)
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
	if rt := g.conns[conn.Name]; rt != nil {
		vendor = rt.detected
	}
	g.mu.Unlock()
	serr := updateConnectionState(g.a.cfg.Data, conn.Name, func(saved *connectionState) {
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
		g.a.log.Warn("could not save connection state", "connection", conn.Name, "error", serr)
	}
	return sum, err
}

// recordGrants remembers which of a connection's types the EHR did not
// grant, for `ehrgate status` and the dashboard.
func (g *gateway) recordGrants(conn string, notGranted []string) {
	err := updateConnectionState(g.a.cfg.Data, conn, func(st *connectionState) {
		st.NotGranted, st.ScopesCheckedAt = notGranted, time.Now().UTC()
	})
	if err != nil {
		g.a.log.Warn("could not save connection state", "connection", conn, "error", err)
	}
	g.mu.Lock()
	s := g.status[conn]
	s.NotGranted, s.ScopesCheckedAt = notGranted, time.Now().UTC()
	g.status[conn] = s
	g.mu.Unlock()
}

func (g *gateway) doSync(ctx context.Context, conn config.Connection) (refresh.Summary, error) {
	rt, err := g.runtime(ctx, conn)
	if err != nil {
		return refresh.Summary{}, err
	}
	planner := rt.adapter.Planner()
	if rt.tokens != nil {
		// A token granted for fewer types than the connection now reads is
		// renewed first; what the EHR still does not grant is recorded.
		notGranted, err := rt.tokens.EnsureTypes(ctx, typesOf(conn))
		if err != nil {
			g.metrics.AuthorizationFailed(conn.Name, errors.Is(err, smart.ErrNeedsReauthorization))
			return refresh.Summary{}, fmt.Errorf("authorizing %s: %w", conn.Name, err)
		}
		g.recordGrants(conn.Name, notGranted)
		tok, err := rt.tokens.Token(ctx)
		if err != nil {
			g.metrics.AuthorizationFailed(conn.Name, errors.Is(err, smart.ErrNeedsReauthorization))
			return refresh.Summary{}, fmt.Errorf("authorizing %s: %w", conn.Name, err)
		}
		g.metrics.Authorized(conn.Name)
		granted, err := smart.ParseScopes(tok.Scope)
		if err == nil && len(granted) > 0 {
			planner = grantedPlanner{Planner: planner, granted: granted, context: smart.ContextSystem}
			for _, typ := range typesOf(conn) {
				if ok, _ := granted.CanSearch(smart.ContextSystem, typ); !ok {
					g.a.log.Warn("scope not granted; the type will be skipped", "connection", conn.Name, "type", typ)
				}
			}
		}
	}
	syncer, err := refresh.New(rt.client, g.store, refresh.Options{
		Connection: conn.Name,
		Types:      conn.Types,
		Workers:    rt.adapter.Workers(conn.Workers),
		PageSize:   rt.adapter.PageSize(),
		Planner:    planner,
		Logger:     g.a.log,
		Recorder:   g.metrics,
	})
	if err != nil {
		return refresh.Summary{}, err
	}
	return syncer.Run(ctx)
}

// probeConnection runs the compatibility probe on a connection and saves
// the report where `ehrgate status` and the dashboard find it.
func (g *gateway) probeConnection(ctx context.Context, conn config.Connection) (*probe.Report, error) {
	rt, err := g.runtime(ctx, conn)
	if err != nil {
		return nil, err
	}
	rep, err := probe.Run(ctx, rt.client, probe.Options{Types: conn.Types, Adapter: rt.adapter})
	if err != nil {
		return nil, err
	}
	rep.Connection = conn.Name
	if _, err := probe.Save(g.a.cfg.Data, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

func typesOf(c config.Connection) []string {
	if len(c.Types) > 0 {
		return c.Types
	}
	return refresh.ChartTypes
}

func (g *gateway) connectionStatus(ctx context.Context) []dashboard.ConnectionStatus {
	g.mu.Lock()
	out := make([]dashboard.ConnectionStatus, 0, len(g.status))
	for _, s := range g.status {
		out = append(out, s)
	}
	g.mu.Unlock()
	for i, s := range out {
		// Bulk exports (and scope checks) may run in other processes: the
		// saved state is the record.
		if saved, ok := loadConnectionState(g.a.cfg.Data, s.Name); ok {
			out[i] = withSavedState(s, saved)
		}
	}
	for i, s := range out {
		if vs, err := g.vault.Status(ctx, s.Name); err == nil && vs.State == store.TokenNeedsReauthorization {
			out[i].State = "needs re-authorization"
			out[i].Detail = "The EHR refused ehrgate's credentials (" + vs.Reason + "); authorize the connection again."
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// setupLaunches registers the connections that accept SMART user launches.
func (g *gateway) setupLaunches(conns []config.Connection) error {
	var clients []smart.ClientConfig
	for _, c := range conns {
		if c.Auth == nil || c.Auth.Type != config.AuthLaunch {
			continue
		}
		cc, err := g.clientConfig(c, true)
		if err != nil {
			return err
		}
		clients = append(clients, cc)
	}
	if len(clients) == 0 {
		return nil
	}
	l, err := smart.NewLauncher(smart.LauncherOptions{
		Clients: clients, Vault: g.vault, Discoverer: g.discover, Keys: g.keys, Logger: g.a.log,
		Launches:   g.store, // pending authorizations shared by every process on this store
		OnComplete: g.launchComplete,
	})
	if err != nil {
		return fmt.Errorf("setting up SMART launches: %w", err)
	}
	g.launcher = l
	return nil
}

// launchComplete refreshes the launched patient's chart with the user's
// token and shows it: the launched view, with the patient in context.
func (g *gateway) launchComplete(w http.ResponseWriter, r *http.Request, res *smart.LaunchResult) {
	name := res.Connection
	var conn config.Connection
	for _, c := range g.a.cfg.Connections {
		if c.Name == name {
			conn = c
		}
	}
	patient := ""
	if res.Token != nil {
		patient = res.Token.Context.Patient
	}
	if patient == "" || conn.Name == "" {
		http.Error(w, "The launch completed without a patient in context.", http.StatusBadRequest)
		return
	}
	if len(res.Scopes.NotGranted) > 0 {
		g.a.log.Warn("launch granted fewer scopes than requested", "connection", name, "not_granted", len(res.Scopes.NotGranted))
	}
	if err := g.refreshLaunchedPatient(r.Context(), conn, res, patient); err != nil {
		g.a.log.Warn("refreshing the launched patient failed; showing stored data", "connection", name, "error", err)
	}
	http.Redirect(w, r, "/patients/"+name+"/"+patient+"?launched=1", http.StatusSeeOther)
}

func (g *gateway) refreshLaunchedPatient(ctx context.Context, conn config.Connection, res *smart.LaunchResult, patient string) error {
	cc, err := g.clientConfig(conn, true)
	if err != nil {
		return err
	}
	ts, err := smart.NewTokenSource(smart.TokenSourceOptions{Client: cc, Grant: smart.GrantRefreshToken,
		Vault: g.vault, Discoverer: g.discover, Keys: g.keys, Logger: g.a.log})
	if err != nil {
		return err
	}
	adapter, err := connectionAdapter(conn.Vendor, conn.SiteProfile)
	if err != nil {
		return err
	}
	client, err := fhir.NewClient(conn.BaseURL, adapter.ClientOptions(fhir.Options{Connection: conn.Name, Authorizer: ts, Observer: g.metrics, Logger: g.a.log}))
	if err != nil {
		return err
	}
	var planner refresh.Planner = adapter.Planner()
	if granted, err := smart.ParseScopes(res.Token.Scope); err == nil && len(granted) > 0 {
		planner = grantedPlanner{Planner: planner, granted: granted, context: cc.Scopes.Context}
	}
	syncer, err := refresh.New(client, g.store, refresh.Options{Connection: conn.Name, Types: conn.Types,
		PageSize: adapter.PageSize(), Planner: planner, Logger: g.a.log})
	if err != nil {
		return err
	}
	_, err = syncer.Patient(ctx, patient)
	return err
}

// serveHTTP serves the dashboard, metrics, JWKS and SMART endpoints on addr
// until ctx ends.
func (g *gateway) serveHTTP(ctx context.Context, addr string, ready func()) error {
	dash := dashboard.New(g.store, dashboard.Options{
		Logger:    g.a.log,
		Status:    g.connectionStatus,
		RequestID: server.RequestIDFrom,
		Probe: func(_ context.Context, conn string) (*probe.Report, error) {
			rep, err := probe.Load(probe.Path(g.a.cfg.Data, conn))
			if errors.Is(err, fs.ErrNotExist) {
				return nil, nil
			}
			return rep, err
		},
	})
	mounts := map[string]http.Handler{
		"GET /.well-known/jwks.json": g.keys.JWKSHandler(),
	}
	g.mu.Lock()
	for k, v := range g.mounts {
		mounts[k] = v
	}
	g.mu.Unlock()
	if g.launcher != nil {
		mounts["GET /smart/launch"] = g.launcher.LaunchHandler()
		mounts["GET /smart/login"] = g.launcher.StandaloneHandler()
		mounts["GET /smart/callback"] = g.launcher.CallbackHandler()
	}
	srv := server.New(server.Options{
		Dashboard: dash.Handler(),
		Gatherer:  g.reg,
		Logger:    g.a.log,
		Mounts:    mounts,
		Ready: func(ctx context.Context) error {
			_, err := g.store.Stats(ctx)
			return err
		},
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	if ready != nil {
		ready()
	}
	fmt.Fprintf(g.a.stdout, "dashboard: http://%s/  (metrics at /metrics)\n", ln.Addr())
	return srv.Serve(ctx, ln)
}

// scheduleSyncs re-syncs every connection every interval until ctx ends.
func (g *gateway) scheduleSyncs(ctx context.Context, conns []config.Connection, every time.Duration) {
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
				if _, err := g.syncConnection(ctx, c); err != nil && ctx.Err() == nil {
					g.a.log.Error("scheduled sync failed", "connection", c.Name, "error", err)
				}
			}
		}
	}
}

func printSummary(w io.Writer, conn string, s refresh.Summary, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(s)
	}
	types := make([]string, 0, len(s.Resources))
	total := 0
	for t, n := range s.Resources {
		types = append(types, t)
		total += n
	}
	sort.Strings(types)
	fmt.Fprintf(w, "synced %s: %d patients, %d resources in %.1fs\n", conn, s.Patients, total, float64(s.DurationMS)/1000)
	for _, t := range types {
		fmt.Fprintf(w, "  %-20s %7d\n", t, s.Resources[t])
	}
	fmt.Fprintf(w, "new %d, updated %d, unchanged %d, errors %d, quarantined %d\n", s.New, s.Updated, s.Unchanged, s.Errors, s.Quarantined)
	return nil
}
