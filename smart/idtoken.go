package smart

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// ClockSkew is the leeway allowed on id_token exp, iat and nbf.
const ClockSkew = 2 * time.Minute

// IDClaims are the verified claims of an OpenID Connect id_token.
type IDClaims struct {
	Issuer   string
	Subject  string
	FHIRUser string // fhirUser claim (SMART), e.g. "Practitioner/123" or an absolute URL
	Expiry   time.Time
}

var idTokenAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512, jose.PS256, jose.PS384}

// verifyIDToken checks an id_token: signature by a key of the server's
// JWKS (jwks_uri from its configuration), iss, aud containing clientID,
// exp/iat/nbf within ClockSkew of now, and nonce.
func verifyIDToken(ctx context.Context, d *Discoverer, cfg *Configuration, fhirBase, raw, clientID, nonce string, now time.Time) (*IDClaims, error) {
	tok, err := jwt.ParseSigned(raw, idTokenAlgs)
	if err != nil {
		return nil, fmt.Errorf("%w: not a signed JWT with an accepted algorithm", ErrIDToken)
	}
	iss, jwksURI, err := d.oidcKeys(ctx, cfg, fhirBase)
	if err != nil {
		return nil, err
	}
	kid := tok.Headers[0].KeyID
	candidates, err := idTokenKeys(ctx, d, jwksURI, kid)
	if err != nil {
		return nil, err
	}
	if len(candidates) == 0 {
		// The server rotated its signing key after we cached its JWKS
		// (EHRs serve it with max-age): fetch it once more, bypassing the
		// cache, before refusing the id_token.
		d.forget(jwksURI)
		if candidates, err = idTokenKeys(ctx, d, jwksURI, kid); err != nil {
			return nil, err
		}
	}
	if len(candidates) == 0 {
		return nil, fmt.Errorf("%w: no key %q in the server's JWKS", ErrIDToken, kid)
	}
	var c jwt.Claims
	var extra struct {
		Nonce    string `json:"nonce"`
		FHIRUser string `json:"fhirUser"`
	}
	verified := false
	for _, k := range candidates {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if err := tok.Claims(k.Key, &c, &extra); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, fmt.Errorf("%w: bad signature", ErrIDToken)
	}
	if c.Expiry == nil {
		return nil, fmt.Errorf("%w: no exp", ErrIDToken)
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: iss, AnyAudience: jwt.Audience{clientID}, Time: now}, ClockSkew); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIDToken, err)
	}
	if nonce == "" || extra.Nonce != nonce {
		return nil, fmt.Errorf("%w: nonce does not match the one sent", ErrIDToken)
	}
	return &IDClaims{Issuer: c.Issuer, Subject: c.Subject, FHIRUser: extra.FHIRUser, Expiry: c.Expiry.Time()}, nil
}

// idTokenKeys returns the keys of the JWKS at jwksURI (through the
// discovery cache) that may have signed a token with kid (all when kid is
// empty).
func idTokenKeys(ctx context.Context, d *Discoverer, jwksURI, kid string) ([]jose.JSONWebKey, error) {
	body, status, err := d.get(ctx, jwksURI)
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS for id_token: %w", err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("fetching JWKS for id_token: HTTP %d", status)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decoding JWKS for id_token: %w", err)
	}
	if kid != "" {
		return set.Key(kid), nil
	}
	return set.Keys, nil
}

const oidcDiscoverySuffix = "/.well-known/openid-configuration"

// oidcKeys returns the expected id_token issuer and the JWKS URL to verify
// it with. The SMART configuration's issuer and jwks_uri are used when both
// are there. Otherwise the issuer's OpenID Connect discovery document
// (OpenID Connect Discovery 1.0 §4) supplies them.
//
// Quirk (Oracle Health/Cerner, fixture
// smart-config/well-known/cerner-r4-tenant-ec2458f2.smart-configuration.json):
// "issuer" is the discovery document's URL, ending in
// /.well-known/openid-configuration, and there is no jwks_uri. The suffix is
// stripped to get the issuer, and the document is fetched from that URL.
func (d *Discoverer) oidcKeys(ctx context.Context, cfg *Configuration, fhirBase string) (issuer, jwksURI string, err error) {
	issuer = strings.TrimSuffix(cfg.Issuer, oidcDiscoverySuffix)
	if cfg.JWKSURI != "" {
		if issuer == "" {
			issuer = strings.TrimRight(fhirBase, "/")
		}
		return issuer, cfg.JWKSURI, nil
	}
	if issuer == "" {
		return "", "", fmt.Errorf("%w: the server's configuration has neither jwks_uri nor issuer to verify it with", ErrIDToken)
	}
	u := strings.TrimRight(issuer, "/") + oidcDiscoverySuffix
	if err := checkEndpoint(u); err != nil {
		return "", "", fmt.Errorf("%w: issuer: %v", ErrIDToken, err)
	}
	body, status, err := d.get(ctx, u)
	if err != nil {
		return "", "", fmt.Errorf("fetching OpenID configuration: %w", err)
	}
	if status != http.StatusOK {
		return "", "", fmt.Errorf("fetching OpenID configuration %s: HTTP %d", u, status)
	}
	var oc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &oc); err != nil || oc.JWKSURI == "" {
		return "", "", fmt.Errorf("%w: OpenID configuration at %s has no jwks_uri", ErrIDToken, u)
	}
	if err := checkEndpoint(oc.JWKSURI); err != nil {
		return "", "", fmt.Errorf("%w: jwks_uri: %v", ErrIDToken, err)
	}
	if oc.Issuer != "" {
		issuer = oc.Issuer
	}
	return issuer, oc.JWKSURI, nil
}
