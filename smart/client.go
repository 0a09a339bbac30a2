package smart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// AuthMethod is how a client authenticates to the token endpoint.
type AuthMethod string

// Client authentication methods (SMART App Launch "client types").
const (
	AuthNone              AuthMethod = "none"                // public client
	AuthClientSecretBasic AuthMethod = "client_secret_basic" // confidential symmetric, HTTP Basic
	AuthClientSecretPost  AuthMethod = "client_secret_post"  // confidential symmetric, in the form
	AuthPrivateKeyJWT     AuthMethod = "private_key_jwt"     // confidential asymmetric, JWT assertion
)

// ClientConfig is ehrgate's registration with one EHR for one connection.
type ClientConfig struct {
	Connection   string     // connection name
	FHIRBaseURL  string     // the FHIR base (the launch iss and aud)
	ClientID     string     // client_id issued by the EHR
	ClientSecret Secret     // for client_secret_basic / client_secret_post
	AuthMethod   AuthMethod // default: private_key_jwt when Keys is set, none otherwise
	RedirectURL  string     // ehrgate's callback URL as registered with the EHR
	// Scopes says what to request; a zero Style picks V2 or V1 from the
	// server's permission-v2 capability at each authorization.
	Scopes ScopeRequest
}

// String implements fmt.Stringer without the client secret.
func (c ClientConfig) String() string {
	return fmt.Sprintf("ClientConfig{connection=%s client_id=%s auth=%s}", c.Connection, c.ClientID, c.AuthMethod)
}

// LogValue implements slog.LogValuer without the client secret.
func (c ClientConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("connection", c.Connection), slog.String("client_id", c.ClientID), slog.String("auth", string(c.AuthMethod)))
}

// GoString implements fmt.GoStringer without the client secret.
func (c ClientConfig) GoString() string { return c.String() }

// tokenEndpoint performs token requests (RFC 6749 §4.1.3, §4.4, §6).
type tokenEndpoint struct {
	hc   *http.Client
	keys *KeyManager
	now  func() time.Time
}

// maxTokenBody bounds a token response.
const maxTokenBody = 1 << 20

// request posts form to tokenURL, authenticating as c, and decodes the
// token response. requested is used as the granted scope when the server
// omits scope (RFC 6749 §5.1).
func (te *tokenEndpoint) request(ctx context.Context, c ClientConfig, tokenURL string, form url.Values, requested string) (*Token, error) {
	req, err := te.build(ctx, c, tokenURL, form)
	if err != nil {
		return nil, err
	}
	resp, err := te.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("requesting token: %w", redactURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading token response: %w", err)
	}
	if len(body) > maxTokenBody {
		return nil, fmt.Errorf("reading token response: larger than %d bytes", maxTokenBody)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, decodeOAuthError(resp.StatusCode, body)
	}
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct != "application/json" && ct != "" {
		return nil, fmt.Errorf("token response: content type %q, want application/json", ct)
	}
	return decodeTokenResponse(body, te.now(), requested)
}

func (te *tokenEndpoint) build(ctx context.Context, c ClientConfig, tokenURL string, form url.Values) (*http.Request, error) {
	form = cloneValues(form)
	method := c.AuthMethod
	basic := false
	switch method {
	case AuthNone, "":
		form.Set("client_id", c.ClientID)
	case AuthClientSecretPost:
		form.Set("client_id", c.ClientID)
		form.Set("client_secret", c.ClientSecret.Reveal())
	case AuthClientSecretBasic:
		basic = true
	case AuthPrivateKeyJWT:
		if te.keys == nil {
			return nil, errors.New("requesting token: private_key_jwt needs signing keys")
		}
		a, err := te.keys.ClientAssertion(ctx, c.ClientID, tokenURL)
		if err != nil {
			return nil, fmt.Errorf("requesting token: %w", err)
		}
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", a)
	default:
		return nil, fmt.Errorf("requesting token: unknown client authentication method %q", method)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("requesting token: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if basic {
		// RFC 6749 §2.3.1: form-urlencode id and secret before Basic.
		req.SetBasicAuth(url.QueryEscape(c.ClientID), url.QueryEscape(c.ClientSecret.Reveal()))
	}
	return req, nil
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// redactURLError drops the URL from a *url.Error (it never carries secrets
// here, but the Op and the cause are what matter).
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// decodeOAuthError turns a non-200 token response into an *OAuthError; a
// body that is not an RFC 6749 §5.2 error gives a plain error with the
// status only (the body is never echoed).
func decodeOAuthError(status int, body []byte) error {
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		URI         string `json:"error_uri"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return &OAuthError{Code: e.Error, Description: clip(e.Description, 300), URI: clip(e.URI, 300), StatusCode: status}
	}
	return fmt.Errorf("token endpoint answered HTTP %d without an OAuth error", status)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func decodeTokenResponse(body []byte, now time.Time, requested string) (*Token, error) {
	var r struct {
		AccessToken       string            `json:"access_token"`
		TokenType         string            `json:"token_type"`
		ExpiresIn         json.Number       `json:"expires_in"`
		RefreshToken      string            `json:"refresh_token"`
		Scope             string            `json:"scope"`
		IDToken           string            `json:"id_token"`
		Patient           string            `json:"patient"`
		Encounter         string            `json:"encounter"`
		NeedPatientBanner bool              `json:"need_patient_banner"`
		SMARTStyleURL     string            `json:"smart_style_url"`
		Intent            string            `json:"intent"`
		Tenant            string            `json:"tenant"`
		FHIRContext       []json.RawMessage `json:"fhirContext"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		// The error from encoding/json can quote input: do not wrap it.
		return nil, errors.New("decoding token response: not a JSON token response")
	}
	if r.AccessToken == "" {
		return nil, errors.New("token response: access_token is missing")
	}
	if !strings.EqualFold(r.TokenType, "bearer") {
		return nil, fmt.Errorf("token response: token_type %q, want bearer", clip(r.TokenType, 40))
	}
	t := &Token{
		AccessToken: Secret(r.AccessToken), RefreshToken: Secret(r.RefreshToken), IDToken: Secret(r.IDToken),
		TokenType: "Bearer", Scope: r.Scope,
		Context: LaunchContext{
			Patient: r.Patient, Encounter: r.Encounter, NeedPatientBanner: r.NeedPatientBanner,
			SMARTStyleURL: r.SMARTStyleURL, Intent: r.Intent, Tenant: r.Tenant, FHIRContext: r.FHIRContext,
		},
	}
	if t.Scope == "" {
		t.Scope = requested
	}
	if r.ExpiresIn != "" {
		n, err := r.ExpiresIn.Int64()
		if err != nil || n < 0 {
			return nil, errors.New("token response: expires_in is not a non-negative integer")
		}
		const maxLife = 366 * 24 * 3600 // cap absurd lifetimes (and Duration overflow)
		t.ExpiresAt = now.Add(time.Duration(min(n, maxLife)) * time.Second)
	}
	return t, nil
}
