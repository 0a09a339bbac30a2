package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"ehrgate/apiauth"
	"ehrgate/authz"
	"ehrgate/clients"
	"ehrgate/fhirapi"
	"ehrgate/jobs"
	"ehrgate/secrets"
	"ehrgate/server"
)

// setupAPIAuth sets up who verifies the API's bearer tokens: the site's
// authorization server (api.external, resource-server mode), or ehrgate's
// own (authz) when api.base_url names the API. With neither, the API
// refuses every request.
func (g *Gateway) setupAPIAuth(ctx context.Context, ring *secrets.Keyring) error {
	cfg := g.cfg.API
	if x := cfg.External; x != nil {
		aud := x.Audience
		if aud == "" {
			aud = cfg.BaseURL
		}
		v, err := apiauth.NewVerifier(apiauth.Options{Issuer: x.Issuer, Audience: aud, JWKSURL: x.JWKSURL,
			ScopeClaim: x.ScopeClaim, PatientClaim: x.PatientClaim})
		if err != nil {
			return fmt.Errorf("api.external: %w", err)
		}
		g.apiAuth = v
		return nil
	}
	if cfg.BaseURL == "" {
		return nil
	}
	issuer := cfg.Issuer
	if issuer == "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil {
			return fmt.Errorf("api.base_url: %w", err)
		}
		issuer = u.Scheme + "://" + u.Host
	}
	az, err := authz.New(ctx, authz.Options{
		Issuer: issuer, Audience: cfg.BaseURL,
		Docs: g.store, Patients: g.store, Clients: clients.NewRegistry(g.store), Keyring: ring,
		Person:   g.signedInPerson,
		LoginURL: "/login",
		Audit:    g.audit,
		TokenTTL: time.Duration(cfg.TokenTTL), RefreshTTL: time.Duration(cfg.RefreshTTL),
		Logger: g.log,
	})
	if err != nil {
		return fmt.Errorf("ehrgate's authorization server: %w", err)
	}
	g.authz = az
	g.apiAuth = az.Verifier()
	return nil
}

// signedInPerson is who is signed in to ehrgate on r, for the
// authorization server's patient picker (nobody until people log in).
func (g *Gateway) signedInPerson(r *http.Request) (authz.Person, bool) {
	g.mu.Lock()
	f := g.person
	g.mu.Unlock()
	if f == nil {
		return authz.Person{}, false
	}
	return f(r)
}

// appAuthorized reports, for app Subscriptions, whether an app's
// authorization still stands on ehrgate's own authorization server: its
// client registered and the creating token (jti) not revoked.
func appAuthorized(reg *clients.Registry, az *authz.Server) func(ctx context.Context, clientID, tokenID string) (bool, error) {
	return func(ctx context.Context, clientID, tokenID string) (bool, error) {
		if clientID != "" {
			_, err := reg.Get(ctx, clientID)
			if errors.Is(err, clients.ErrNotFound) {
				return false, nil
			}
			if err != nil {
				return false, err
			}
		}
		if tokenID == "" {
			return true, nil
		}
		revoked, err := az.Revoked(ctx, tokenID)
		return !revoked, err
	}
}

// AuthorizationServer returns ehrgate's own authorization server, or nil
// when the API's tokens come from elsewhere (or the API is off).
func (g *Gateway) AuthorizationServer() *authz.Server { return g.authz }

// apiRoutes are the FHIR API's routes over the connections known now (the
// configured ones, those added later, and the HL7 feed's), and the
// authorization server's.
func (g *Gateway) apiRoutes() ([]server.Route, error) {
	g.mu.Lock()
	conns := map[string]string{}
	for _, c := range g.conns {
		conns[c.Name] = c.BaseURL
	}
	for name := range g.hl7opts {
		if _, ok := conns[name]; !ok {
			conns[name] = ""
		}
	}
	auth := g.apiAuth
	g.mu.Unlock()
	hl7 := g.cfg.HL7.Connection
	if hl7 == "" {
		hl7 = "hl7"
	}
	if _, ok := conns[hl7]; !ok {
		conns[hl7] = ""
	}
	o := fhirapi.Options{
		Store:                 g.store,
		Connections:           conns,
		Auth:                  auth,
		Audit:                 g.audit,
		Trail:                 g.store,
		Docs:                  g.store,
		Events:                g.store,
		BaseURL:               g.cfg.API.BaseURL,
		DefaultCount:          g.cfg.API.DefaultCount,
		MaxCount:              g.cfg.API.MaxCount,
		Logger:                g.log,
		AllowPrivateEndpoints: g.cfg.API.AllowPrivateSubscriptionEndpoints,
		RequestID:             server.RequestIDFrom,
	}
	var routes []server.Route
	if az := g.authz; az != nil {
		if v, ok := auth.(*apiauth.Verifier); ok && v == az.Verifier() {
			// Tokens are its own: app Subscriptions stop when their token is
			// revoked or their client removed.
			o.Authorized = appAuthorized(clients.NewRegistry(g.store), az)
		}
		d := az.Discovery()
		o.SMART = &fhirapi.SMARTEndpoints{Authorize: d.AuthorizationEndpoint, Token: d.TokenEndpoint,
			Introspect: d.IntrospectionEndpoint, Revoke: d.RevocationEndpoint}
		routes = append(routes, az.Routes()...)
	}
	api, err := fhirapi.New(o)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.appSubs = api
	g.mu.Unlock()
	return append(routes, api.Routes()...), nil
}

// SetAPIAuth sets the verifier of the API's bearer tokens (an embedding
// program's own), replacing the one the configuration named. Handlers
// built before keep theirs.
func (g *Gateway) SetAPIAuth(a fhirapi.Authenticator) {
	g.mu.Lock()
	g.apiAuth = a
	g.mu.Unlock()
}

// AuthzPurgeJob removes the authorization server's expired codes, tokens
// and replay records.
type AuthzPurgeJob struct{}

// Kind implements jobs.Args.
func (AuthzPurgeJob) Kind() string { return "authz_purge" }

func (g *Gateway) runAuthzPurgeJob(ctx context.Context, _ AuthzPurgeJob) error {
	if g.authz == nil {
		return nil
	}
	_, err := g.authz.Purge(ctx)
	return err
}

// scheduleAuthz purges the authorization server's expired state hourly.
func (g *Gateway) scheduleAuthz(q *jobs.Queue) error {
	if g.authz == nil {
		return nil
	}
	return q.AddPeriodic(jobs.Periodic{ID: "authz-purge", Every: time.Hour,
		Args: func() jobs.Args { return AuthzPurgeJob{} }})
}
