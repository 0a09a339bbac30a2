package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"ehrgate/authz"
	"ehrgate/dashboard"
	"ehrgate/hl7/feedhealth"
	"ehrgate/login"
	"ehrgate/probe"
	"ehrgate/server"
)

// Mount adds an HTTP route (a net/http ServeMux pattern such as
// "GET /my/route", with who may call it) to those Handler serves. Routes
// mounted after Handler was built are not served by that handler.
func (g *Gateway) Mount(rt server.Route) {
	g.mu.Lock()
	g.mounts[rt.Pattern] = rt
	g.mu.Unlock()
}

// Routes returns the route table of the HTTP service as Handler builds it
// now: every route with its access rule.
func (g *Gateway) Routes() []server.RouteInfo { return g.server().Routes() }

// Handler returns the gateway's HTTP service: the dashboard, /metrics,
// /healthz and /readyz, ehrgate's JWKS, the SMART launch endpoints (after
// SetupLaunches), the event routes (after StartEvents) and mounted routes.
func (g *Gateway) Handler() http.Handler { return g.server().Handler() }

func (g *Gateway) server() *server.Server {
	dash := dashboard.New(g.store, dashboard.Options{
		Logger:    g.log,
		Status:    g.ConnectionStatus,
		RequestID: server.RequestIDFrom,
		Audit:     g.audit,
		Trail:     g.store,
		Feeds:     g.store,
		FeedNames: g.hl7Feeds,
		FeedThresholds: feedhealth.Thresholds{SilentAfter: time.Duration(g.cfg.HL7.Alerts.SilentAfter),
			BusyPerHour: g.cfg.HL7.Alerts.BusyPerHour, RejectRatio: g.cfg.HL7.Alerts.RejectRatio,
			MinRejects: g.cfg.HL7.Alerts.MinRejects},
		// The CDS feedback page, when the CDS services are mounted.
		CDSFeedback: g.cdsFeedback(),
		// With login on, the server admits only signed-in people to the
		// dashboard; each page checks the person's roles.
		RequirePerson: g.login != nil,
		Probe: func(ctx context.Context, conn string) (*probe.Report, error) {
			rep, err := LoadProbe(ctx, g.store, conn)
			if errors.Is(err, errNoProbe) {
				return nil, nil
			}
			return rep, err
		},
	})
	routes := []server.Route{{Pattern: "GET /.well-known/jwks.json", Access: server.Public,
		Serves: "ehrgate's public signing keys, for the EHRs it authenticates to", Handler: g.keys.JWKSHandler()}}
	api, err := g.apiRoutes()
	if err != nil {
		// Connection names that would share served ids: config.Validate
		// refuses them, so only an embedding program's AddConnections
		// gets here. Serve everything else, without the API.
		g.log.Error("the FHIR API is not served", "error", err)
	}
	routes = append(routes, api...)
	routes = append(routes, g.writeRoutes(dash)...)
	routes = append(routes, g.identityRoutes(dash)...)
	routes = append(routes, g.pipelineRoutes(dash)...)
	routes = append(routes, g.consumersRoutes(dash)...)
	g.mu.Lock()
	for _, rt := range g.mounts {
		routes = append(routes, rt)
	}
	if l := g.launcher; l != nil {
		routes = append(routes,
			server.Route{Pattern: "GET /smart/launch", Access: server.PatientData, Serves: "SMART EHR launch (starts an authorization)", Handler: l.LaunchHandler()},
			server.Route{Pattern: "GET /smart/login", Access: server.PatientData, Serves: "SMART standalone launch", Handler: l.StandaloneHandler()},
			server.Route{Pattern: "GET /smart/callback", Access: server.PatientData, Serves: "SMART redirect: completes the launch, shows the patient", Handler: l.CallbackHandler()})
	}
	g.mu.Unlock()
	var signedIn func(http.Handler) http.Handler
	if g.login != nil {
		// Patient-data routes besides the dashboard (SMART launches, the
		// event stream, mounted routes) are for people who see patients.
		for i := range routes {
			switch p := routes[i].Pattern; {
			case routes[i].Access == server.PatientData:
				routes[i].Handler = login.Allow(login.SeePatients, routes[i].Handler)
			case p == "GET "+authz.PathAuthorize || p == "POST "+authz.PathPick:
				// Authorizing an app opens patient data to it: the
				// authorization server sends strangers to the login page;
				// people whose roles do not see patients are refused.
				routes[i].Handler = g.login.Optional(login.Allow(login.SeePatients, routes[i].Handler))
			}
		}
		for _, lr := range g.login.Routes() {
			routes = append(routes, server.Route{Pattern: lr.Pattern, Access: server.SignIn, Serves: lr.Serves, Handler: lr.Handler})
		}
		signedIn = g.login.Require
	}
	return server.New(server.Options{
		Dashboard: dash.Handler(),
		Gatherer:  g.reg,
		Logger:    g.log,
		Routes:    routes,
		Hosts:     g.cfg.HTTPHosts,
		SignedIn:  signedIn,
		Ready: func(ctx context.Context) error {
			_, err := g.store.Stats(ctx)
			return err
		},
	})
}

// Serve serves Handler on ln until ctx ends, then shuts down gracefully.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	return g.server().Serve(ctx, ln)
}

// ListenAndServe listens on addr (HOST:PORT) and serves Handler until ctx
// ends; bound, if set, is called with the bound address once listening.
func (g *Gateway) ListenAndServe(ctx context.Context, addr string, bound func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	if bound != nil {
		bound(ln.Addr())
	}
	return g.Serve(ctx, ln)
}
