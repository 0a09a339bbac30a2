package clients

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// GenerateKey makes an ES384 key pair for a backend-services client: the
// private JWK (for the client to keep) and the public JWKS (to register).
func GenerateKey() (private []byte, publicJWKS []byte, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating a key: %w", err)
	}
	var id [8]byte
	rand.Read(id[:])
	kid := hex.EncodeToString(id[:])
	priv, err := json.Marshal(jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: string(jose.ES384), Use: "sig"})
	if err != nil {
		return nil, nil, err
	}
	pub, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: kid, Algorithm: string(jose.ES384), Use: "sig"}}})
	if err != nil {
		return nil, nil, err
	}
	return priv, pub, nil
}

// Token is an access token a backend-services client obtained.
type Token struct {
	AccessToken string    `json:"access_token"`
	Scope       string    `json:"scope"`
	Expiry      time.Time `json:"expiry"`
}

// RequestToken obtains an access token as a SMART Backend Services client
// (client_credentials with a private_key_jwt assertion signed by
// privateJWK) from the token endpoint of the authorization server that
// fhirBase's SMART discovery names.
func RequestToken(ctx context.Context, hc *http.Client, fhirBase, clientID string, privateJWK []byte, scopes []string) (Token, error) {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	var key jose.JSONWebKey
	if err := key.UnmarshalJSON(privateJWK); err != nil || key.IsPublic() {
		return Token{}, errors.New("the key is not a private JWK (make one with `ehrgate clients add NAME --generate-key FILE`)")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fhirBase+"/.well-known/smart-configuration", nil)
	if err != nil {
		return Token{}, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return Token{}, fmt.Errorf("SMART discovery: %w", err)
	}
	defer resp.Body.Close()
	var disc struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&disc) != nil || disc.TokenEndpoint == "" {
		return Token{}, fmt.Errorf("SMART discovery at %s: no token endpoint (status %d)", fhirBase, resp.StatusCode)
	}
	alg := jose.SignatureAlgorithm(key.Algorithm)
	if alg == "" {
		alg = jose.ES384
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key.Key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", key.KeyID))
	if err != nil {
		return Token{}, fmt.Errorf("signing the client assertion: %w", err)
	}
	var jti [16]byte
	rand.Read(jti[:])
	now := time.Now()
	assertion, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: clientID, Subject: clientID, Audience: jwt.Audience{disc.TokenEndpoint},
		ID: hex.EncodeToString(jti[:]), IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(4 * time.Minute))}).Serialize()
	if err != nil {
		return Token{}, fmt.Errorf("signing the client assertion: %w", err)
	}
	cc := clientcredentials.Config{ClientID: clientID, TokenURL: disc.TokenEndpoint, Scopes: scopes, AuthStyle: oauth2.AuthStyleInParams,
		EndpointParams: url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion": {assertion}}}
	tok, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, hc))
	if err != nil {
		return Token{}, fmt.Errorf("token request: %w", err)
	}
	scope, _ := tok.Extra("scope").(string)
	return Token{AccessToken: tok.AccessToken, Scope: scope, Expiry: tok.Expiry}, nil
}
