// Package clients is the registry of the apps and CDS clients allowed to
// call ehrgate: SMART apps of its FHIR API (public browser apps, backend
// services) and CDS Hooks clients (the EHRs that call its services).
//
// Registrations live in the store (store.Documents, kind
// store.DocClient), so every replica sees the same. A registration holds
// no secret: public apps prove themselves with PKCE, confidential ones and
// CDS clients with JWTs signed by keys in their JWKS (inline or by URL).
// What a client may be granted is bounded by its registered scopes.
package clients

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"ehrgate/smart"
	"ehrgate/store"
)

// Client is one registered caller.
type Client struct {
	// ID is the OAuth client_id (apps) or the JWT iss (CDS clients use
	// Issuer when it differs).
	ID string `json:"id"`
	// Public apps run in a browser or on a device: no key, PKCE required,
	// redirect URIs required.
	Public       bool     `json:"public,omitempty"`
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	// JWKS (inline) or JWKSURL holds the keys a confidential app or CDS
	// client signs its JWTs with.
	JWKS    json.RawMessage `json:"jwks,omitempty"`
	JWKSURL string          `json:"jwks_url,omitempty"`
	// Scopes are the most the client may be granted (SMART v1 or v2).
	Scopes []string `json:"scopes,omitempty"`
	// CDS marks a CDS Hooks client; Issuer is the iss its JWTs carry
	// (default ID).
	CDS    bool   `json:"cds,omitempty"`
	Issuer string `json:"issuer,omitempty"`
	// Created is when it was registered.
	Created time.Time `json:"created"`
}

// Errors callers branch on.
var (
	ErrExists   = errors.New("a client with this id is registered already")
	ErrNotFound = errors.New("no client with this id")
)

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$`)

// Validate reports every problem with c at once.
func (c Client) Validate() error {
	var errs []error
	if !idRE.MatchString(c.ID) {
		errs = append(errs, fmt.Errorf("client id %q: letters, digits, '.', '_', '~' or '-', at most 128", c.ID))
	}
	hasKeys := len(c.JWKS) > 0 || c.JWKSURL != ""
	switch {
	case c.Public && hasKeys:
		errs = append(errs, errors.New("a public client has no keys: drop --jwks/--jwks-url, or --public"))
	case c.Public && len(c.RedirectURIs) == 0:
		errs = append(errs, errors.New("a public client needs at least one --redirect-uri"))
	case !c.Public && !hasKeys:
		errs = append(errs, errors.New("a confidential client or CDS client needs its keys: --jwks FILE or --jwks-url URL"))
	}
	if len(c.JWKS) > 0 && c.JWKSURL != "" {
		errs = append(errs, errors.New("give the keys inline (--jwks) or by URL (--jwks-url), not both"))
	}
	if len(c.JWKS) > 0 {
		if err := checkJWKS(c.JWKS); err != nil {
			errs = append(errs, err)
		}
	}
	if c.JWKSURL != "" {
		if err := checkURL(c.JWKSURL, false); err != nil {
			errs = append(errs, fmt.Errorf("jwks url: %w", err))
		}
	}
	for _, u := range c.RedirectURIs {
		if err := checkURL(u, true); err != nil {
			errs = append(errs, fmt.Errorf("redirect uri: %w", err))
		}
	}
	if _, err := smart.ParseScopes(strings.Join(c.Scopes, " ")); err != nil {
		errs = append(errs, fmt.Errorf("scopes: %w", err))
	}
	if c.CDS && c.Public {
		errs = append(errs, errors.New("a CDS client signs its calls: it cannot be public"))
	}
	if c.Issuer != "" && !c.CDS {
		errs = append(errs, errors.New("--iss is for CDS clients (--cds-client)"))
	}
	return errors.Join(errs...)
}

// checkJWKS accepts a JWKS of public signing keys only.
func checkJWKS(raw json.RawMessage) error {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return fmt.Errorf("jwks: not a JSON Web Key Set: %w", err)
	}
	if len(set.Keys) == 0 {
		return errors.New("jwks: no keys")
	}
	for i, k := range set.Keys {
		if !k.Valid() {
			return fmt.Errorf("jwks: key %d is not valid", i)
		}
		if !k.IsPublic() {
			return fmt.Errorf("jwks: key %d holds a private key; register the public keys only", i)
		}
	}
	return nil
}

// checkURL accepts https URLs, and http only for loopback hosts (a
// developer's machine) when loopbackHTTP.
func checkURL(raw string, loopbackHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an absolute URL without a fragment", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		ip := net.ParseIP(host)
		if loopbackHTTP && (host == "localhost" || (ip != nil && ip.IsLoopback())) {
			return nil
		}
	}
	return fmt.Errorf("%q must be https (http only for a loopback redirect)", raw)
}

// Registry is the set of registered clients in a store.
type Registry struct {
	docs store.Documents
	now  func() time.Time
}

// NewRegistry returns the registry kept in docs.
func NewRegistry(docs store.Documents) *Registry {
	return &Registry{docs: docs, now: time.Now}
}

// Add registers c; it fails with ErrExists when its id is taken.
func (r *Registry) Add(ctx context.Context, c Client) (Client, error) {
	if err := c.Validate(); err != nil {
		return c, err
	}
	c.Created = r.now().UTC()
	err := r.docs.UpdateDocument(ctx, store.DocClient, c.ID, func(old []byte) ([]byte, error) {
		if old != nil {
			return nil, ErrExists
		}
		return json.Marshal(c)
	})
	if err != nil {
		return c, fmt.Errorf("registering client %s: %w", c.ID, err)
	}
	return c, nil
}

// Get returns the client with id, or ErrNotFound.
func (r *Registry) Get(ctx context.Context, id string) (Client, error) {
	d, err := r.docs.GetDocument(ctx, store.DocClient, id)
	if errors.Is(err, store.ErrNotFound) {
		return Client{}, fmt.Errorf("client %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Client{}, err
	}
	var c Client
	if err := json.Unmarshal(d.Body, &c); err != nil {
		return Client{}, fmt.Errorf("decoding client %s: %w", id, err)
	}
	return c, nil
}

// List returns every registered client, by id.
func (r *Registry) List(ctx context.Context) ([]Client, error) {
	ids, err := r.docs.ListDocuments(ctx, store.DocClient)
	if err != nil {
		return nil, err
	}
	out := make([]Client, 0, len(ids))
	for _, id := range ids {
		c, err := r.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Remove unregisters the client with id, or returns ErrNotFound.
func (r *Registry) Remove(ctx context.Context, id string) error {
	n, err := r.docs.DeleteDocument(ctx, store.DocClient, id)
	if err != nil {
		return fmt.Errorf("removing client %s: %w", id, err)
	}
	if !n {
		return fmt.Errorf("client %s: %w", id, ErrNotFound)
	}
	return nil
}
