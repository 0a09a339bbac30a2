package gateway

import (
	"fmt"

	"ehrgate/apiauth"
	"ehrgate/config"
	"ehrgate/fhirapi"
	"ehrgate/server"
)

// newAPIAuth returns the verifier of the API's bearer tokens the
// configuration names (nil: none, the API refuses every request).
func newAPIAuth(cfg config.API) (fhirapi.Authenticator, error) {
	x := cfg.External
	if x == nil {
		return nil, nil
	}
	aud := x.Audience
	if aud == "" {
		aud = cfg.BaseURL
	}
	v, err := apiauth.NewVerifier(apiauth.Options{Issuer: x.Issuer, Audience: aud, JWKSURL: x.JWKSURL,
		ScopeClaim: x.ScopeClaim, PatientClaim: x.PatientClaim})
	if err != nil {
		return nil, fmt.Errorf("api.external: %w", err)
	}
	return v, nil
}

// apiRoutes are the FHIR API's routes over the connections known now (the
// configured ones, those added later, and the HL7 feed's).
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
	api, err := fhirapi.New(fhirapi.Options{
		Store:        g.store,
		Connections:  conns,
		Auth:         auth,
		Audit:        g.audit,
		Trail:        g.store,
		BaseURL:      g.cfg.API.BaseURL,
		DefaultCount: g.cfg.API.DefaultCount,
		MaxCount:     g.cfg.API.MaxCount,
		Logger:       g.log,
		RequestID:    server.RequestIDFrom,
	})
	if err != nil {
		return nil, err
	}
	return api.Routes(), nil
}

// SetAPIAuth sets the verifier of the API's bearer tokens (an embedding
// program's own, or ehrgate's authorization server's), replacing the one
// the configuration named. Handlers built before keep theirs.
func (g *Gateway) SetAPIAuth(a fhirapi.Authenticator) {
	g.mu.Lock()
	g.apiAuth = a
	g.mu.Unlock()
}
