package smart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// OAuthURIsExtension is the CapabilityStatement extension SMART servers used
// before .well-known/smart-configuration (SMART App Launch 1.0, and still
// the only source on many DSTU2 servers).
const OAuthURIsExtension = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"

// Configuration is a server's SMART configuration
// (<FHIR base>/.well-known/smart-configuration, SMART App Launch 2.x §
// "SMART on FHIR Configuration"). Unknown members are ignored.
type Configuration struct {
	Issuer                                     string   `json:"issuer,omitempty"`
	JWKSURI                                    string   `json:"jwks_uri,omitempty"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint,omitempty"`
	TokenEndpoint                              string   `json:"token_endpoint,omitempty"`
	RegistrationEndpoint                       string   `json:"registration_endpoint,omitempty"`
	ManagementEndpoint                         string   `json:"management_endpoint,omitempty"`
	IntrospectionEndpoint                      string   `json:"introspection_endpoint,omitempty"`
	RevocationEndpoint                         string   `json:"revocation_endpoint,omitempty"`
	GrantTypesSupported                        []string `json:"grant_types_supported,omitempty"`
	ResponseTypesSupported                     []string `json:"response_types_supported,omitempty"`
	ScopesSupported                            []string `json:"scopes_supported,omitempty"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported,omitempty"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	TokenEndpointAuthSigningAlgValuesSupported []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	Capabilities                               []string `json:"capabilities,omitempty"`

	// FromCapabilityStatement is true when the configuration was built from
	// the CapabilityStatement's oauth-uris extension (no capabilities list).
	FromCapabilityStatement bool `json:"-"`
}

// Has reports whether the server declares a SMART capability
// ("permission-v2", "client-confidential-asymmetric", ...).
func (c *Configuration) Has(capability string) bool {
	return slices.Contains(c.Capabilities, capability)
}

// ScopeStyle is the scope syntax to request from this server: V2 when it
// declares permission-v2, V1 otherwise.
func (c *Configuration) ScopeStyle() Style {
	if c.Has("permission-v2") {
		return V2
	}
	return V1
}

// ErrNoConfiguration is matched by a discovery that found neither a
// smart-configuration document nor an oauth-uris extension.
var ErrNoConfiguration = errors.New("smart: no SMART configuration")

// ParseConfiguration decodes and checks a smart-configuration document: it
// must be a JSON object with an absolute token_endpoint; every endpoint
// present must be an https URL (http only on loopback hosts, for tests and
// the simulator). Errors name the offending member.
func ParseConfiguration(b []byte) (*Configuration, error) {
	var c Configuration
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("decoding smart-configuration: %w", err)
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Configuration) check() error {
	if c.TokenEndpoint == "" {
		return fmt.Errorf("smart-configuration: token_endpoint is missing: %w", ErrNoConfiguration)
	}
	for _, f := range []struct{ name, v string }{
		{"token_endpoint", c.TokenEndpoint}, {"authorization_endpoint", c.AuthorizationEndpoint},
		{"jwks_uri", c.JWKSURI}, {"registration_endpoint", c.RegistrationEndpoint},
		{"management_endpoint", c.ManagementEndpoint}, {"introspection_endpoint", c.IntrospectionEndpoint},
		{"revocation_endpoint", c.RevocationEndpoint},
	} {
		if f.v == "" {
			continue
		}
		if err := checkEndpoint(f.v); err != nil {
			return fmt.Errorf("smart-configuration: %s: %w", f.name, err)
		}
	}
	return nil
}

// RequireAuthorize returns an error naming what is missing for an
// authorization-code launch.
func (c *Configuration) RequireAuthorize() error {
	if c.AuthorizationEndpoint == "" {
		return fmt.Errorf("smart-configuration: authorization_endpoint is missing, so no user launch is possible: %w", ErrNoConfiguration)
	}
	if len(c.CodeChallengeMethodsSupported) > 0 && !slices.Contains(c.CodeChallengeMethodsSupported, "S256") {
		return fmt.Errorf("smart-configuration: code_challenge_methods_supported %v lacks S256, which ehrgate requires", c.CodeChallengeMethodsSupported)
	}
	return nil
}

func checkEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
	}
	return fmt.Errorf("%q is not an https URL", s)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ParseCapabilityOAuthURIs builds a Configuration from a CapabilityStatement
// (or DSTU2 Conformance) rest[].security oauth-uris extension. It returns an
// error wrapping ErrNoConfiguration when the extension is absent.
func ParseCapabilityOAuthURIs(b []byte) (*Configuration, error) {
	type ext struct {
		URL       string `json:"url"`
		ValueURI  string `json:"valueUri"`
		Extension []struct {
			URL      string `json:"url"`
			ValueURI string `json:"valueUri"`
		} `json:"extension"`
	}
	var cs struct {
		ResourceType string `json:"resourceType"`
		Rest         []struct {
			Security struct {
				Extension []ext `json:"extension"`
			} `json:"security"`
		} `json:"rest"`
	}
	if err := json.Unmarshal(b, &cs); err != nil {
		return nil, fmt.Errorf("decoding CapabilityStatement: %w", err)
	}
	for _, r := range cs.Rest {
		for _, e := range r.Security.Extension {
			if e.URL != OAuthURIsExtension {
				continue
			}
			c := &Configuration{FromCapabilityStatement: true}
			for _, sub := range e.Extension {
				switch sub.URL {
				case "authorize":
					c.AuthorizationEndpoint = sub.ValueURI
				case "token":
					c.TokenEndpoint = sub.ValueURI
				case "register":
					c.RegistrationEndpoint = sub.ValueURI
				case "manage":
					c.ManagementEndpoint = sub.ValueURI
				case "introspect":
					c.IntrospectionEndpoint = sub.ValueURI
				case "revoke":
					c.RevocationEndpoint = sub.ValueURI
				}
			}
			if err := c.check(); err != nil {
				return nil, fmt.Errorf("CapabilityStatement oauth-uris: %w", err)
			}
			return c, nil
		}
	}
	return nil, fmt.Errorf("CapabilityStatement has no %s extension: %w", OAuthURIsExtension, ErrNoConfiguration)
}

// Discoverer fetches SMART configurations, caching each as its response's
// Cache-Control allows (max-age; nothing cached on no-store, no-cache or
// without max-age). It is safe for concurrent use.
type Discoverer struct {
	hc  *http.Client
	now func() time.Time

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	body    []byte
	status  int
	expires time.Time
}

// NewDiscoverer returns a Discoverer using hc (nil: a client with a 30s
// timeout) and the clock now (nil: time.Now).
func NewDiscoverer(hc *http.Client, now func() time.Time) *Discoverer {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	if now == nil {
		now = time.Now
	}
	return &Discoverer{hc: hc, now: now, cache: map[string]cached{}}
}

// maxDocBytes bounds discovery, metadata and JWKS bodies.
const maxDocBytes = 8 << 20

// Discover returns the SMART configuration of the FHIR server at fhirBase:
// <fhirBase>/.well-known/smart-configuration, or, only when that answers 404
// or 410, the oauth-uris extension of <fhirBase>/metadata.
func (d *Discoverer) Discover(ctx context.Context, fhirBase string) (*Configuration, error) {
	base := strings.TrimRight(fhirBase, "/")
	wk := base + "/.well-known/smart-configuration"
	body, status, err := d.get(ctx, wk)
	if err != nil {
		return nil, fmt.Errorf("discovering SMART configuration: %w", err)
	}
	switch {
	case status == http.StatusOK:
		c, err := ParseConfiguration(body)
		if err != nil {
			return nil, fmt.Errorf("discovering SMART configuration from %s: %w", wk, err)
		}
		return c, nil
	case status == http.StatusNotFound || status == http.StatusGone:
	default:
		return nil, fmt.Errorf("discovering SMART configuration: %s answered HTTP %d", wk, status)
	}
	md := base + "/metadata"
	body, status, err = d.get(ctx, md)
	if err != nil {
		return nil, fmt.Errorf("discovering SMART configuration (fallback): %w", err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("discovering SMART configuration: %s answered HTTP %d and %s answered HTTP %d: %w", wk, 404, md, status, ErrNoConfiguration)
	}
	c, err := ParseCapabilityOAuthURIs(body)
	if err != nil {
		return nil, fmt.Errorf("discovering SMART configuration: %s is absent and %s: %w", wk, md, err)
	}
	return c, nil
}

// get fetches a JSON document through the cache. Non-200 answers are cached
// too when the server allows it (a 404 smart-configuration is stable).
func (d *Discoverer) get(ctx context.Context, u string) ([]byte, int, error) {
	now := d.now()
	d.mu.Lock()
	c, ok := d.cache[u]
	d.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.body, c.status, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("fetching %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json, application/fhir+json")
	resp, err := d.hc.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("fetching %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("reading %s: %w", u, err)
	}
	if len(body) > maxDocBytes {
		return nil, 0, fmt.Errorf("reading %s: larger than %d bytes", u, maxDocBytes)
	}
	if age, ok := maxAge(resp.Header.Get("Cache-Control")); ok {
		d.mu.Lock()
		d.cache[u] = cached{body: body, status: resp.StatusCode, expires: now.Add(age)}
		d.mu.Unlock()
	} else {
		d.mu.Lock()
		delete(d.cache, u)
		d.mu.Unlock()
	}
	return body, resp.StatusCode, nil
}

// forget drops u from the cache, so the next get fetches it.
func (d *Discoverer) forget(u string) {
	d.mu.Lock()
	delete(d.cache, u)
	d.mu.Unlock()
}

// maxAge returns the freshness lifetime a Cache-Control header allows a
// shared cache; false when the response must not be reused.
func maxAge(cc string) (time.Duration, bool) {
	var age time.Duration
	found := false
	for _, part := range strings.Split(cc, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(strings.ToLower(part)), "=")
		switch k {
		case "no-store", "no-cache":
			return 0, false
		case "max-age":
			n, err := strconv.Atoi(strings.Trim(v, `"`))
			if err != nil || n <= 0 {
				return 0, false
			}
			age, found = time.Duration(n)*time.Second, true
		}
	}
	return age, found
}
