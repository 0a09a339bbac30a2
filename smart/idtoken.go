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
	if cfg.JWKSURI == "" {
		return nil, fmt.Errorf("%w: the server's configuration has no jwks_uri to verify it with", ErrIDToken)
	}
	body, status, err := d.get(ctx, cfg.JWKSURI)
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
	kid := tok.Headers[0].KeyID
	var candidates []jose.JSONWebKey
	if kid != "" {
		candidates = set.Key(kid)
	} else {
		candidates = set.Keys
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
	iss := cfg.Issuer
	if iss == "" {
		iss = strings.TrimRight(fhirBase, "/")
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
