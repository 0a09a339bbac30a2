// Package cdsclient is the simulated EHR's CDS Hooks 2.0 client: what an
// EHR such as Epic does when a clinician opens a chart or picks a
// medication. It discovers a CDS server's services, fills their prefetch
// templates from the simulator's FHIR server, calls a hook with a JWT
// signed by its own key (ES384; its public JWKS is what the CDS server
// registers), and sends feedback on the cards.
//
// It is written independently of ehrgate's cdshooks package (it imports
// nothing of ehrgate's server side), so the tests that run the loop
// simulator -> ehrgate -> card exercise the protocol, not shared code.
package cdsclient

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Options configure a Client.
type Options struct {
	// Issuer is the JWT iss and sub (the client's id at the CDS server).
	Issuer string
	// Key signs the JWTs (ES384); nil generates one. KeyID is its kid
	// (default derived from the key).
	Key   *ecdsa.PrivateKey
	KeyID string
	// FHIRServer is the simulator's FHIR base URL, sent as fhirServer and
	// used to fill prefetch templates.
	FHIRServer string
	// HTTPClient calls the CDS server and the FHIR server (default: 10 s
	// timeout).
	HTTPClient *http.Client
	// FHIRClient, if set, fills prefetch templates instead of HTTPClient:
	// an EHR reads its own data with its own privileges (the simulator's
	// ordering screen serves it in process, past the SMART layer).
	FHIRClient *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// TokenLifetime is how long a JWT is valid (default 5 minutes).
	TokenLifetime time.Duration
}

// Client is the simulated EHR's CDS client. It is safe for concurrent use.
type Client struct {
	o      Options
	signer jose.Signer
	jwk    jose.JSONWebKey
}

// New returns a Client.
func New(o Options) (*Client, error) {
	if o.Issuer == "" {
		return nil, errors.New("cdsclient: an Issuer is required")
	}
	if o.Key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			return nil, err
		}
		o.Key = k
	}
	pub := jose.JSONWebKey{Key: o.Key.Public(), Algorithm: string(jose.ES384), Use: "sig"}
	if o.KeyID == "" {
		tp, err := pub.Thumbprint(cryptoSHA256)
		if err != nil {
			return nil, err
		}
		o.KeyID = hex.EncodeToString(tp[:8])
	}
	pub.KeyID = o.KeyID
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.FHIRClient == nil {
		o.FHIRClient = o.HTTPClient
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = 5 * time.Minute
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: jose.JSONWebKey{Key: o.Key, KeyID: o.KeyID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	return &Client{o: o, signer: signer, jwk: pub}, nil
}

// JWKS returns the client's public key set as JSON (what the CDS server
// registers: ehrgate clients add NAME --cds-client --jwks FILE).
func (c *Client) JWKS() []byte {
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{c.jwk}})
	return b
}

// Issuer returns the iss the client's JWTs carry.
func (c *Client) Issuer() string { return c.o.Issuer }

// Token returns a fresh JWT for a call to aud (the service's URL).
func (c *Client) Token(aud string) (string, error) {
	now := c.o.Now()
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	claims := jwt.Claims{Issuer: c.o.Issuer, Subject: c.o.Issuer, Audience: jwt.Audience{aud},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(c.o.TokenLifetime)), ID: hex.EncodeToString(jti[:])}
	return jwt.Signed(c.signer).Claims(claims).Serialize()
}

// Service is one service of a discovery response.
type Service struct {
	Hook        string            `json:"hook"`
	ID          string            `json:"id"`
	Title       string            `json:"title"`
	Description string            `json:"description"`
	Prefetch    map[string]string `json:"prefetch"`
}

// Discover reads the CDS server's services (GET base/cds-services).
func (c *Client) Discover(ctx context.Context, base string) ([]Service, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/cds-services", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.o.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("cdsclient: discovery answered %d", resp.StatusCode)
	}
	var d struct {
		Services []Service `json:"services"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		return nil, fmt.Errorf("cdsclient: decoding discovery: %w", err)
	}
	return d.Services, nil
}

// Call is one hook invocation.
type Call struct {
	Hook    string
	Context map[string]any
	// Prefetch is sent as is; with FillPrefetch the service's templates
	// are filled from the FHIR server first (keys already here are kept).
	Prefetch     map[string]json.RawMessage
	FillPrefetch bool
	// FHIRAuthorization, if set, is sent so the service can fetch what
	// the prefetch lacks.
	FHIRAuthorization map[string]any
	// OmitToken sends the call without a JWT (to test refusals).
	OmitToken bool
}

// Response is a CDS service's answer, cards kept as decoded.
type Response struct {
	Status int
	Cards  []Card `json:"cards"`
	// Body is the raw answer.
	Body []byte `json:"-"`
}

// Card is the part of a card the simulator shows and acts on.
type Card struct {
	UUID              string                 `json:"uuid"`
	Summary           string                 `json:"summary"`
	Detail            string                 `json:"detail"`
	Indicator         string                 `json:"indicator"`
	Source            struct{ Label string } `json:"source"`
	Suggestions       []Suggestion           `json:"suggestions"`
	SelectionBehavior string                 `json:"selectionBehavior"`
	OverrideReasons   []Coding               `json:"overrideReasons"`
	Links             []struct {
		Label, URL, Type string
	} `json:"links"`
}

// Suggestion is a card's suggested set of actions.
type Suggestion struct {
	Label   string `json:"label"`
	UUID    string `json:"uuid"`
	Actions []struct {
		Type        string          `json:"type"`
		Description string          `json:"description"`
		Resource    json.RawMessage `json:"resource"`
		ResourceID  string          `json:"resourceId"`
	} `json:"actions"`
}

// Coding is a CDS Hooks Coding.
type Coding struct {
	Code    string `json:"code"`
	System  string `json:"system,omitempty"`
	Display string `json:"display,omitempty"`
}

// Invoke calls svc on the CDS server at base and returns its answer
// (any status; Response.Status says which).
func (c *Client) Invoke(ctx context.Context, base string, svc Service, call Call) (*Response, error) {
	body := map[string]any{
		"hook":         call.Hook,
		"hookInstance": newUUID(),
		"context":      call.Context,
	}
	if call.Hook == "" {
		body["hook"] = svc.Hook
	}
	if c.o.FHIRServer != "" {
		body["fhirServer"] = c.o.FHIRServer
	}
	if call.FHIRAuthorization != nil {
		body["fhirAuthorization"] = call.FHIRAuthorization
	}
	prefetch := map[string]json.RawMessage{}
	for k, v := range call.Prefetch {
		prefetch[k] = v
	}
	if call.FillPrefetch {
		for key, tmpl := range svc.Prefetch {
			if _, ok := prefetch[key]; ok {
				continue
			}
			v, ok, err := c.prefetch(ctx, tmpl, call.Context)
			if err != nil {
				return nil, err
			}
			if ok {
				prefetch[key] = v
			}
		}
	}
	if len(prefetch) > 0 {
		body["prefetch"] = prefetch
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	u := strings.TrimRight(base, "/") + "/cds-services/" + svc.ID
	raw, status, err := c.post(ctx, u, u, b, call.OmitToken)
	if err != nil {
		return nil, err
	}
	r := &Response{Status: status, Body: raw}
	if status == http.StatusOK {
		if err := json.Unmarshal(raw, r); err != nil {
			return nil, fmt.Errorf("cdsclient: decoding the cards: %w", err)
		}
	}
	return r, nil
}

// Feedback sends what the user did with a card: accepted (with the
// accepted suggestions' uuids) or overridden (with a reason, or none).
func (c *Client) Feedback(ctx context.Context, base, serviceID, cardUUID string, accepted []string, reason *Coding) (int, error) {
	f := map[string]any{"card": cardUUID, "outcomeTimestamp": c.o.Now().UTC().Format(time.RFC3339)}
	if len(accepted) > 0 {
		f["outcome"] = "accepted"
		var ids []map[string]string
		for _, id := range accepted {
			ids = append(ids, map[string]string{"id": id})
		}
		f["acceptedSuggestions"] = ids
	} else {
		f["outcome"] = "overridden"
		if reason != nil {
			f["overrideReason"] = map[string]any{"reason": reason}
		}
	}
	b, _ := json.Marshal(map[string]any{"feedback": []any{f}})
	svcURL := strings.TrimRight(base, "/") + "/cds-services/" + serviceID
	_, status, err := c.post(ctx, svcURL+"/feedback", svcURL, b, false)
	return status, err
}

func (c *Client) post(ctx context.Context, u, aud string, body []byte, omitToken bool) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if !omitToken {
		tok, err := c.Token(aud)
		if err != nil {
			return nil, 0, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.o.HTTPClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, 0, err
	}
	return raw, resp.StatusCode, nil
}

var tokenRE = regexp.MustCompile(`\{\{\s*([^{}]*?)\s*\}\}`)

// prefetch fills a template from context and runs it against the FHIR
// server. A template whose tokens the context cannot fill is not
// satisfied (ok false): the key is left out, as the specification asks.
func (c *Client) prefetch(ctx context.Context, tmpl string, hookCtx map[string]any) (json.RawMessage, bool, error) {
	if c.o.FHIRServer == "" {
		return nil, false, nil
	}
	user, _ := hookCtx["userId"].(string)
	userType, userID, _ := strings.Cut(user, "/")
	missing := false
	filled := tokenRE.ReplaceAllStringFunc(tmpl, func(m string) string {
		name := tokenRE.FindStringSubmatch(m)[1]
		if f, ok := strings.CutPrefix(name, "context."); ok {
			if v, ok := hookCtx[f].(string); ok && v != "" {
				return url.QueryEscape(v)
			}
		}
		want := map[string]string{"userPractitionerId": "Practitioner", "userPractitionerRoleId": "PractitionerRole",
			"userPatientId": "Patient", "userRelatedPersonId": "RelatedPerson"}[name]
		if want != "" && want == userType && userID != "" {
			return userID
		}
		missing = true
		return m
	})
	if missing {
		return nil, false, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.o.FHIRServer, "/")+"/"+filled, nil)
	if err != nil {
		return nil, false, err
	}
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := c.o.FHIRClient.Do(req)
	if err != nil {
		return nil, false, nil // not satisfied: the key is omitted
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, false, nil
	}
	return raw, true, nil
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

const cryptoSHA256 = crypto.SHA256
