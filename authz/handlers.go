package authz

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/ory/fosite"

	"ehrgate/audit"
	"ehrgate/fhir"
	"ehrgate/server"
	"ehrgate/smart"
)

// Discovery is the SMART configuration (SMART App Launch 2,
// .well-known/smart-configuration).
type Discovery struct {
	Issuer                            string   `json:"issuer"`
	JWKSURI                           string   `json:"jwks_uri"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgs      []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	Capabilities                      []string `json:"capabilities"`
}

// Discovery returns the server's SMART configuration.
func (s *Server) Discovery() Discovery {
	return Discovery{
		Issuer:                            s.o.Issuer,
		JWKSURI:                           s.endpoint(PathJWKS),
		AuthorizationEndpoint:             s.endpoint(PathAuthorize),
		TokenEndpoint:                     s.endpoint(PathToken),
		IntrospectionEndpoint:             s.endpoint(PathIntrospect),
		RevocationEndpoint:                s.endpoint(PathRevoke),
		GrantTypesSupported:               []string{"authorization_code", "client_credentials", "refresh_token"},
		TokenEndpointAuthMethodsSupported: []string{"private_key_jwt", "none"},
		TokenEndpointAuthSigningAlgs:      []string{string(assertionAlgs[0]), string(assertionAlgs[1])},
		ScopesSupported: []string{scopeLaunchPatient, scopeOffline, scopeOnline,
			"patient/*.rs", "user/*.rs", "system/*.rs", "patient/*.read", "user/*.read", "system/*.read"},
		ResponseTypesSupported:        []string{"code"},
		CodeChallengeMethodsSupported: []string{"S256"},
		Capabilities: []string{"launch-standalone", "context-standalone-patient", "client-public",
			"client-confidential-asymmetric", "permission-v1", "permission-v2", "permission-patient",
			"permission-user", "permission-offline", "permission-online"},
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*") // browser apps discover the server
	writeJSON(w, http.StatusOK, s.Discovery())
}

func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	set, err := s.keys.publicSet(r.Context())
	if err != nil {
		s.log.Error("serving the JWKS", "error", err)
		http.Error(w, "JWKS unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	json.NewEncoder(w).Encode(set)
}

// systemScopeError refuses a client_credentials scope that names a
// resource type FHIR R4 does not have, or whose system/ scopes all lack
// read access (ehrgate's API is read-only). Requests with no system/
// scope at all are left to the grant (invalid_scope, or invalid_grant for
// a public client).
func systemScopeError(scope string) error {
	reads, system := false, false
	for _, tok := range strings.Fields(scope) {
		sc, err := smart.ParseScope(tok)
		if err != nil || !sc.IsResource() || sc.Context != smart.ContextSystem {
			continue
		}
		system = true
		if sc.Type != "*" && !fhir.IsResourceType(sc.Type) {
			return fosite.ErrInvalidScope.WithHintf("The scope %q names a resource type FHIR R4 does not have.", tok)
		}
		if sc.Perms&(smart.PermRead|smart.PermSearch) != 0 {
			reads = true
		}
	}
	if system && !reads {
		return fosite.ErrInvalidScope.WithHint("No requested system/ scope grants read access; client_credentials grants system/ read scopes only.")
	}
	return nil
}

// serveToken is the token endpoint: fosite authenticates the client and
// runs the grant; this narrows the scopes to the current registration,
// sets the audience, records the patient access, and adds the patient to
// the response.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	// Browser apps call the token endpoint from their own origin; the
	// request carries no cookie, only the code and verifier or a token.
	w.Header().Set("Access-Control-Allow-Origin", "*")
	// A client_credentials scope no client may be granted is refused
	// before the client authenticates, so the refusal does not spend the
	// client assertion's jti (the client may send it again with a scope
	// that can be granted).
	if r.ParseForm() == nil && r.PostForm.Get("grant_type") == "client_credentials" && strings.TrimSpace(r.PostForm.Get("scope")) != "" {
		if err := systemScopeError(r.PostForm.Get("scope")); err != nil {
			s.refused("token", err)
			s.oauth.WriteAccessError(ctx, w, fosite.NewAccessRequest(&session{}), err)
			return
		}
	}
	ar, err := s.oauth.NewAccessRequest(ctx, r, &session{})
	if err != nil {
		s.refused("token", err)
		s.oauth.WriteAccessError(ctx, w, ar, err)
		return
	}
	req, ok := ar.(*fosite.AccessRequest)
	sess, ok2 := ar.GetSession().(*session)
	client, ok3 := ar.GetClient().(*appClient)
	if !ok || !ok2 || !ok3 {
		s.oauth.WriteAccessError(ctx, w, ar, fosite.ErrServerError)
		return
	}
	registered := parseScopes(client.c.Scopes)
	switch {
	case ar.GetGrantTypes().ExactOne("client_credentials"):
		granted := grant(parseScopes(ar.GetRequestedScopes()), registered, flowSystem)
		if !hasResource(granted) {
			s.oauth.WriteAccessError(ctx, w, ar, fosite.ErrInvalidScope.WithHint("None of the requested scopes is registered for this client."))
			return
		}
		req.GrantedScope = scopeStrings(granted)
		req.GrantedAudience = fosite.Arguments{s.o.Audience}
		sess.Subject, sess.ClientID = client.GetID(), client.GetID()
	case ar.GetGrantTypes().ExactOne("refresh_token"):
		// The registration may have shrunk since the grant.
		granted := grant(parseScopes(ar.GetGrantedScopes()), registered, flowPerson)
		if !hasResource(granted) {
			s.oauth.WriteAccessError(ctx, w, ar, fosite.ErrInvalidScope.WithHint("The client is no longer registered for these scopes."))
			return
		}
		req.GrantedScope = scopeStrings(granted)
		s.onlineRefresh(sess)
	case ar.GetGrantTypes().ExactOne("authorization_code"):
		// Scopes were granted at the authorization endpoint; fosite copies
		// them from the code.
		s.onlineRefresh(sess)
	}
	if sess.Patient != "" {
		// Fail closed: no token for a patient's data unless recorded.
		who := audit.Agent{UserID: sess.Subject, ClientID: client.GetID(), Address: audit.Address(r.RemoteAddr)}
		ev := audit.Launch(who, audit.PatientRef{Connection: sess.PatientConnection, ID: sess.PatientID})
		ev.Outcome, ev.RequestID = audit.OutcomeSuccess, server.RequestIDFrom(ctx)
		if err := s.o.Audit.Record(ctx, ev); err != nil {
			s.log.Error("recording a token for patient data in the audit trail; no token issued", "client", client.GetID(), "error", err)
			s.oauth.WriteAccessError(ctx, w, ar, fosite.ErrTemporarilyUnavailable.WithHint("The access could not be recorded in the audit trail; try again."))
			return
		}
	}
	resp, err := s.oauth.NewAccessResponse(ctx, ar)
	if err != nil {
		s.refused("token", err)
		s.oauth.WriteAccessError(ctx, w, ar, err)
		return
	}
	if sess.Patient != "" {
		resp.SetExtra("patient", sess.Patient)
	}
	s.oauth.WriteAccessResponse(ctx, w, ar, resp)
}

// onlineRefresh shortens the refresh token's life when the grant is
// online_access only.
func (s *Server) onlineRefresh(sess *session) {
	if sess.OnlineOnly {
		limit := time.Now().Add(s.o.OnlineRefreshTTL)
		if exp := sess.GetExpiresAt(fosite.RefreshToken); exp.IsZero() || exp.After(limit) {
			sess.SetExpiresAt(fosite.RefreshToken, limit)
		}
	}
}

// refused logs a refused OAuth request by its error code only (never the
// request's parameters, which hold codes and tokens).
func (s *Server) refused(endpoint string, err error) {
	var re *fosite.RFC6749Error
	if errors.As(err, &re) {
		if re.CodeField >= 500 {
			s.log.Error("oauth request failed", "endpoint", endpoint, "error", re.ErrorField, "cause", re.Unwrap())
			return
		}
		s.log.Info("oauth request refused", "endpoint", endpoint, "error", re.ErrorField, "hint", re.HintField)
		return
	}
	s.log.Error("oauth request failed", "endpoint", endpoint, "error", err)
}

// IntrospectionResponse is an RFC 7662 answer.
type IntrospectionResponse struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Subject   string `json:"sub,omitempty"`
	Expiry    int64  `json:"exp,omitempty"`
	IssuedAt  int64  `json:"iat,omitempty"`
	Issuer    string `json:"iss,omitempty"`
	Audience  string `json:"aud,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	Patient   string `json:"patient,omitempty"`
}

// serveIntrospect is RFC 7662 introspection; the caller authenticates
// with a client assertion (fosite's own handler knows only HTTP Basic).
func (s *Server) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		s.oauth.WriteIntrospectionError(ctx, w, fosite.ErrInvalidRequest.WithHint("The body is not a form."))
		return
	}
	if _, err := s.verifyAssertion(ctx, r.PostForm, s.endpoint(PathToken), PathIntrospect); err != nil {
		s.refused("introspect", err)
		s.oauth.WriteIntrospectionError(ctx, w, fosite.ErrRequestUnauthorized.WithHint("Authenticate with a private_key_jwt client assertion."))
		return
	}
	sess := &session{}
	use, ar, err := s.oauth.IntrospectToken(ctx, r.PostForm.Get("token"), fosite.TokenUse(r.PostForm.Get("token_type_hint")), sess)
	if err != nil {
		writeJSON(w, http.StatusOK, IntrospectionResponse{Active: false})
		return
	}
	resp := IntrospectionResponse{Active: true, Scope: strings.Join(ar.GetGrantedScopes(), " "), ClientID: ar.GetClient().GetID(),
		Issuer: s.o.Issuer, Audience: s.o.Audience}
	if rs, ok := ar.GetSession().(*session); ok {
		resp.Subject, resp.Patient = rs.Subject, rs.Patient
		if use == fosite.AccessToken {
			resp.TokenType = "Bearer"
			if exp := rs.GetExpiresAt(fosite.AccessToken); !exp.IsZero() {
				resp.Expiry = exp.Unix()
			}
		} else if exp := rs.GetExpiresAt(fosite.RefreshToken); !exp.IsZero() {
			resp.TokenType = "refresh_token"
			resp.Expiry = exp.Unix()
		}
	}
	resp.IssuedAt = ar.GetRequestedAt().Unix()
	writeJSON(w, http.StatusOK, resp)
}

// serveRevoke is RFC 7009 revocation: an access or refresh token revokes
// its whole grant (every access and refresh token issued under it).
func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Access-Control-Allow-Origin", "*")
	err := s.oauth.NewRevocationRequest(ctx, r)
	if err != nil {
		s.refused("revoke", err)
	}
	s.oauth.WriteRevocationResponse(ctx, w, err)
}
