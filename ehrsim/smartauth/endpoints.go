package smartauth

import (
	"log/slog"
	"net/http"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// capabilities are the SMART capabilities the server implements.
var capabilities = []string{
	"launch-ehr", "launch-standalone",
	"client-public", "client-confidential-symmetric", "client-confidential-asymmetric",
	"context-ehr-patient", "context-ehr-encounter", "context-standalone-patient",
	"context-banner", "context-style",
	"permission-v1", "permission-v2", "permission-patient", "permission-user", "permission-offline", "permission-online",
	"sso-openid-connect", "authorize-post",
}

// discovery is the .well-known/smart-configuration document (SMART App
// Launch 2.x, "SMART on FHIR OAuth authorization Endpoints and
// Capabilities").
type discovery struct {
	Issuer                            string   `json:"issuer"`
	JWKSURI                           string   `json:"jwks_uri"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgs      []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	Capabilities                      []string `json:"capabilities"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
}

// serveDiscovery answers GET <fhir>/.well-known/smart-configuration.
func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	writeJSON(w, http.StatusOK, discovery{
		Issuer:                            s.opts.Issuer,
		JWKSURI:                           s.jwksURL(),
		AuthorizationEndpoint:             s.authorizeURL(),
		TokenEndpoint:                     s.tokenURL(),
		TokenEndpointAuthMethodsSupported: []string{AuthClientSecretBasic, AuthClientSecretPost, AuthPrivateKeyJWT, AuthNone},
		TokenEndpointAuthSigningAlgs:      []string{"RS384", "ES384"},
		GrantTypesSupported:               []string{"authorization_code", "refresh_token", "client_credentials"},
		ScopesSupported: append(append([]string{}, plainScopes...),
			"patient/*.rs", "patient/*.cruds", "user/*.rs", "user/*.cruds", "system/*.rs", "system/*.cruds",
			"patient/*.read", "user/*.read", "system/*.read", "patient/*.*", "user/*.*", "system/*.*"),
		ResponseTypesSupported:           []string{"code"},
		IntrospectionEndpoint:            s.introspectURL(),
		RevocationEndpoint:               s.revokeURL(),
		CodeChallengeMethodsSupported:    []string{"S256"},
		Capabilities:                     capabilities,
		IDTokenSigningAlgValuesSupported: []string{string(s.signingAlg())},
	})
}

// serveJWKS answers GET /auth/jwks: the id_token signing key.
func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: s.signer.Public(), KeyID: s.kid, Algorithm: string(s.signingAlg()), Use: "sig",
	}}})
}

// serveStyle answers GET /auth/smart-style.json (the smart_style_url).
func (s *Server) serveStyle(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"color_background": "#edeae3", "color_error": "#9e2d2d", "color_highlight": "#69b5ce",
		"color_modal_backdrop": "", "color_success": "#498e49", "color_text": "#303030",
		"dim_border_radius": "6px", "dim_font_size": "13px", "dim_spacing_size": "20px",
		"font_family_body": "sans-serif", "font_family_heading": "sans-serif",
	})
}

// introspection is an RFC 7662 response.
type introspection struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Username  string `json:"username,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	Exp       int64  `json:"exp,omitempty"`
	Iat       int64  `json:"iat,omitempty"`
	Sub       string `json:"sub,omitempty"`
	Aud       string `json:"aud,omitempty"`
	Iss       string `json:"iss,omitempty"`
	Patient   string `json:"patient,omitempty"`
	Encounter string `json:"encounter,omitempty"`
	FhirUser  string `json:"fhirUser,omitempty"`
}

// serveIntrospect answers POST /auth/introspect (RFC 7662). The caller
// authenticates as a client (any method the token endpoint takes, public
// clients with client_id) or with an active access token as Bearer.
func (s *Server) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	form, e := parseForm(w, r)
	if e != nil {
		writeError(w, e)
		return
	}
	if bearer, ok := bearerToken(r); ok {
		if _, desc := s.activeAccess(bearer); desc != "" {
			writeError(w, &Error{Code: ErrInvalidToken, Description: "the Bearer credential is not an active access token", Status: http.StatusUnauthorized})
			return
		}
	} else if _, _, e := s.authenticateClient(r.Context(), r, form); e != nil {
		writeError(w, e)
		return
	}
	tok := form.Get("token")
	if tok == "" {
		writeError(w, oauthErr(ErrInvalidRequest, "token is required"))
		return
	}
	t, ok := s.st.lookup(tok)
	now := s.now()
	if !ok || t.revoked || !now.Before(t.expires) ||
		(t.kind == kindAccess && s.fail(t.clientID, func(f Failures) bool { return f.InvalidAccessToken })) {
		writeJSON(w, http.StatusOK, introspection{Active: false})
		return
	}
	out := introspection{
		Active: true, Scope: strings.Join(t.scopes, " "), ClientID: t.clientID, Username: t.user,
		TokenType: "Bearer", Exp: t.expires.Unix(), Iat: t.issued.Unix(), Sub: t.user,
		Aud: s.opts.Issuer, Iss: s.opts.Issuer, Patient: t.patient, Encounter: t.encounter,
	}
	if t.kind == kindRefresh {
		out.TokenType = "refresh_token"
	}
	if out.Sub == "" {
		out.Sub = t.clientID
	}
	if t.fhirUser != "" {
		out.FhirUser = s.opts.Issuer + "/" + t.fhirUser
	}
	writeJSON(w, http.StatusOK, out)
}

// serveRevoke answers POST /auth/revoke (RFC 7009): the client
// authenticates as at the token endpoint; a token of another client, or an
// unknown one, is left alone and still answered 200 (section 2.2).
func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request) {
	form, e := parseForm(w, r)
	if e != nil {
		writeError(w, e)
		return
	}
	c, _, e := s.authenticateClient(r.Context(), r, form)
	if e != nil {
		writeError(w, e)
		return
	}
	tok := form.Get("token")
	if tok == "" {
		writeError(w, oauthErr(ErrInvalidRequest, "token is required"))
		return
	}
	if t, ok := s.st.lookup(tok); ok && t.clientID == c.ID {
		s.st.revoke(tok)
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "smartauth: token revoked", slog.String("client_id", c.ID), slog.String("kind", t.kind))
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// Revoke revokes an access or refresh token (a refresh token with every
// token of its grant), whoever it was issued to. Unknown tokens are
// ignored.
func (s *Server) Revoke(token string) {
	s.st.revoke(token)
}

// bearerToken returns the token of an Authorization: Bearer header.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
