package gateway

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"ehrgate/audit"
	"ehrgate/config"
	"ehrgate/fhir"
	"ehrgate/refresh"
	"ehrgate/server"
	"ehrgate/smart"
)

// SetupLaunches registers the connections among conns that accept SMART
// user launches (auth type launch); Handler then serves /smart/launch,
// /smart/login and /smart/callback. Pending authorizations live in the
// store, so a launch begun on one process completes on any other.
func (g *Gateway) SetupLaunches(conns []config.Connection) error {
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
	proxies, err := g.cfg.SMART.TrustedProxyPrefixes()
	if err != nil {
		return fmt.Errorf("smart.trusted_proxies: %w", err)
	}
	l, err := smart.NewLauncher(smart.LauncherOptions{
		Clients: clients, Vault: g.vault, Discoverer: g.discover, Keys: g.keys, Logger: g.log,
		Launches:             g.store,
		OnComplete:           g.launchComplete,
		StateTTL:             time.Duration(g.cfg.SMART.LaunchTTL),
		MaxPendingPerAddress: g.cfg.SMART.MaxPendingPerAddress,
		MaxPending:           g.cfg.SMART.MaxPending,
		TrustedProxies:       proxies,
	})
	if err != nil {
		return fmt.Errorf("setting up SMART launches: %w", err)
	}
	g.mu.Lock()
	g.launcher = l
	g.mu.Unlock()
	return nil
}

// launchComplete refreshes the launched patient's chart with the user's
// token and shows it: the launched view, with the patient in context.
func (g *Gateway) launchComplete(w http.ResponseWriter, r *http.Request, res *smart.LaunchResult) {
	name := res.Connection
	conn, _ := g.Connection(name)
	patient := ""
	if res.Token != nil {
		patient = res.Token.Context.Patient
	}
	if patient == "" || conn.Name == "" {
		http.Error(w, "The launch completed without a patient in context.", http.StatusBadRequest)
		return
	}
	// The launch gives the user's session this patient: recorded before
	// anything of the patient is fetched or shown (fail closed).
	who := audit.Agent{ClientID: conn.Auth.ClientID, Address: audit.Address(r.RemoteAddr)}
	if res.Token != nil {
		who.UserID = res.Token.Context.FHIRUser
	}
	ev := audit.Launch(who, audit.PatientRef{Connection: name, ID: patient})
	ev.Outcome, ev.RequestID = audit.OutcomeSuccess, server.RequestIDFrom(r.Context())
	if err := g.audit.Record(r.Context(), ev); err != nil {
		g.log.Error("recording the launch in the audit trail; the patient is not shown", "connection", name, "error", err)
		http.Error(w, "The launch could not be recorded in the audit trail, so the patient is not shown. Please try again.", http.StatusServiceUnavailable)
		return
	}
	if len(res.Scopes.NotGranted) > 0 {
		g.log.Warn("launch granted fewer scopes than requested", "connection", name, "not_granted", len(res.Scopes.NotGranted))
	}
	if err := g.refreshLaunchedPatient(r.Context(), conn, res, patient); err != nil {
		g.log.Warn("refreshing the launched patient failed; showing stored data", "connection", name, "error", err)
	}
	http.Redirect(w, r, "/patients/"+name+"/"+patient+"?launched=1", http.StatusSeeOther)
}

func (g *Gateway) refreshLaunchedPatient(ctx context.Context, conn config.Connection, res *smart.LaunchResult, patient string) error {
	cc, err := g.clientConfig(conn, true)
	if err != nil {
		return err
	}
	ts, err := smart.NewTokenSource(smart.TokenSourceOptions{Client: cc, Grant: smart.GrantRefreshToken,
		Vault: g.vault, Discoverer: g.discover, Keys: g.keys, Logger: g.log})
	if err != nil {
		return err
	}
	adapter, err := Adapter(conn.Vendor, conn.SiteProfile)
	if err != nil {
		return err
	}
	client, err := fhir.NewClient(conn.BaseURL, adapter.ClientOptions(fhir.Options{Connection: conn.Name, Authorizer: ts, Observer: g.metrics, Logger: g.log}))
	if err != nil {
		return err
	}
	var planner refresh.Planner = adapter.Planner()
	if granted, err := smart.ParseScopes(res.Token.Scope); err == nil && len(granted) > 0 {
		planner = grantedPlanner{Planner: planner, granted: granted, context: cc.Scopes.Context}
	}
	syncer, err := refresh.New(client, g.store, refresh.Options{Connection: conn.Name, Types: conn.Types,
		PageSize: adapter.PageSize(), Planner: planner, Logger: g.log})
	if err != nil {
		return err
	}
	_, err = syncer.Patient(ctx, patient)
	return err
}
