// Package config is ehrgate's typed configuration: a YAML file, overridden
// by EHRGATE_* environment variables, overridden by command-line flags.
//
//	# ehrgate.yaml
//	data: /var/lib/ehrgate
//	http_addr: 127.0.0.1:8080
//	log_level: info
//	connections:
//	  - name: hospital-a
//	    base_url: https://fhir.hospital-a.example/api/FHIR/R4
//	    workers: 8
//	    page_size: 100
//	    types: [Patient, Condition, Observation]
//
// Validate reports every problem at once, so a person fixes a file in one go.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"ehrgate/ehr"
	"ehrgate/store"
)

// Defaults.
const (
	DefaultHTTPAddr = "127.0.0.1:8080"
	DefaultDataDir  = "ehrgate-data"
)

// Config is the whole configuration.
type Config struct {
	Data string `yaml:"data"` // data directory (embedded store, keys)
	// Store is the store URL: sqlite:DIR (the embedded store; default:
	// sqlite:<data>) or postgres://user@host/db. EHRGATE_STORE. A password
	// is better given in PGPASSWORD or a .pgpass file than in the URL.
	Store       string       `yaml:"store"`
	HTTPAddr    string       `yaml:"http_addr"`   // dashboard, API and metrics listener
	LogLevel    string       `yaml:"log_level"`   // debug, info, warn, error
	LogFormat   string       `yaml:"log_format"`  // text or json
	Connections []Connection `yaml:"connections"` // EHR endpoints
	SyncEvery   Duration     `yaml:"sync_every"`  // scheduled full sync interval for `serve` (0 = never)
	// LocalCodeMap is a CSV file mapping each connection's local codes to
	// standard ones (see terminology/README.md); edits are picked up
	// without a restart. EHRGATE_LOCAL_CODE_MAP.
	LocalCodeMap string `yaml:"local_code_map"`
	// StaleAfter flags an "active" medication order with no activity for
	// this long (default 1 year).
	StaleAfter Duration `yaml:"stale_after"`
	// AllowRemoteDashboard is gone: the dashboard has its own login now
	// (Login). Validate reports a file that still sets it.
	AllowRemoteDashboard *bool `yaml:"allow_remote_dashboard"`
	// Login is how people sign in to the dashboard. With mode none (the
	// default) the HTTP listener must be a loopback address.
	Login Login `yaml:"login"`
	// HTTPHosts are the host names (without port) under which the
	// dashboard, the login pages and the other patient-data routes answer,
	// besides localhost and loopback addresses: the name users type, the
	// name a reverse proxy forwards. Requests under any other Host are
	// refused (DNS rebinding). EHRGATE_HTTP_HOSTS (comma-separated).
	HTTPHosts []string `yaml:"http_hosts"`
	// HL7 configures the HL7 v2 MLLP listener of `serve`.
	HL7 HL7 `yaml:"hl7"`
	// Events configures event delivery: webhooks and event-driven refresh.
	Events Events `yaml:"events"`
	// Bulk configures Bulk Data exports (`ehrgate bulk export`).
	Bulk Bulk `yaml:"bulk"`
	// Jobs configures the durable job queue of `serve` (scheduled syncs and
	// exports, event-driven refreshes, HL7 conversion).
	Jobs Jobs `yaml:"jobs"`
	// SMART configures the SMART launches ehrgate starts as an app.
	SMART SMART `yaml:"smart"`
	// API configures ehrgate's FHIR API for apps (/fhir).
	API API `yaml:"api"`
	// Audit configures where the audit trail is copied for a SIEM.
	Audit Audit `yaml:"audit"`
	// CDS configures ehrgate's CDS Hooks services (/cds-services).
	CDS CDS `yaml:"cds"`
	// Pipeline configures the population pipeline (`ehrgate pipeline
	// run`; with Every, `serve` runs it on the job queue).
	Pipeline Pipeline `yaml:"pipeline"`
}

// Pipeline configures the population pipeline (package pipeline): bulk
// export, risk rules, Flags written back to each connection with a write
// block.
type Pipeline struct {
	// Every runs the pipeline on `serve`'s job queue at this interval (0 =
	// only `ehrgate pipeline run`).
	Every Duration `yaml:"every"`
	// Group is the Group exported from connections whose vendor offers
	// only Group-level export.
	Group string `yaml:"group"`
}

// CDS configures the CDS Hooks services `serve` offers to EHRs. They are
// served when BaseURL is set.
type CDS struct {
	// BaseURL is ehrgate's URL as the EHRs call it
	// ("https://ehrgate.example.org"): a call's JWT must carry
	// BaseURL/cds-services/ID as its aud.
	BaseURL string `yaml:"base_url"`
	// JKUAllowList are JWKS URLs a CDS client's JWT may name in its jku
	// header besides its registered one (exact match).
	JKUAllowList []string `yaml:"jku_allow_list"`
}

// Audit configures the audit trail's copies. The trail itself is always
// kept in the store.
type Audit struct {
	// SIEM copies every event, as one JSON line (a FHIR AuditEvent), to a
	// file, to syslog, or both, within Every of its being recorded.
	SIEM SIEM `yaml:"siem"`
}

// SIEM names where audit events are copied.
type SIEM struct {
	File   string   `yaml:"file"`   // a file appended to (created 0600)
	Syslog string   `yaml:"syslog"` // udp://host:514, tcp://host:601 or unix:///dev/log
	Every  Duration `yaml:"every"`  // how often new events are copied (default 5s)
}

// API configures the FHIR R4 API that `serve` exposes at /fhir. Its
// requests need bearer access tokens; without an authorization server
// configured here, every request but /fhir/metadata is refused.
type API struct {
	// BaseURL is the API's public URL ("https://ehrgate.example.org/fhir"):
	// the audience tokens must be issued for, and the base of fullUrl and
	// paging links. Default: derived from each request's Host.
	BaseURL string `yaml:"base_url"`
	// External accepts tokens from the site's own authorization server
	// (resource-server mode). Without it, ehrgate is the API's
	// authorization server (SMART App Launch 2, at /oauth/... under
	// Issuer), which needs BaseURL.
	External *ExternalAuth `yaml:"external"`
	// Issuer is ehrgate's authorization server's URL (the tokens' iss;
	// default: BaseURL's scheme and host).
	Issuer string `yaml:"issuer"`
	// TokenTTL is the access tokens' lifetime (default and at most 1h);
	// RefreshTTL a refresh token's with offline_access (default 30 days).
	TokenTTL   Duration `yaml:"token_ttl"`
	RefreshTTL Duration `yaml:"refresh_ttl"`
	// DefaultCount and MaxCount are the page size without _count (default
	// 50) and the most _count may ask (default 1000).
	DefaultCount int `yaml:"default_count"`
	MaxCount     int `yaml:"max_count"`
	// AllowPrivateSubscriptionEndpoints lets apps' Subscriptions name
	// endpoints on loopback, private and link-local addresses. Off by
	// default: an app could otherwise make ehrgate post to the site's
	// internal services.
	AllowPrivateSubscriptionEndpoints bool `yaml:"allow_private_subscription_endpoints"`
}

// ExternalAuth describes an external authorization server whose JWT access
// tokens the API accepts.
type ExternalAuth struct {
	Issuer  string `yaml:"issuer"`   // the iss tokens carry
	JWKSURL string `yaml:"jwks_url"` // where its signing keys are published
	// Audience is the aud tokens must carry (default api.base_url).
	Audience string `yaml:"audience"`
	// ScopeClaim and PatientClaim name the claims holding the SMART
	// scopes (default "scope") and the patient in context (default
	// "patient", a served id: CONNECTION.ID).
	ScopeClaim   string `yaml:"scope_claim"`
	PatientClaim string `yaml:"patient_claim"`
}

// Login modes.
const (
	LoginNone   = "none"
	LoginLocal  = "local"
	LoginOpenID = "oidc"
)

// Login configures how people sign in to the dashboard (package login).
type Login struct {
	// Mode is none (default: no login; the dashboard is loopback-only),
	// local (accounts kept in the store: `ehrgate users add`) or oidc (the
	// site's OpenID provider).
	Mode string `yaml:"mode"`
	// OIDC configures mode oidc.
	OIDC LoginOIDC `yaml:"oidc"`
	// SessionIdle ends a session unused for this long (default 30m);
	// SessionMax ends every session this long after sign-in (default 12h).
	SessionIdle Duration `yaml:"session_idle"`
	SessionMax  Duration `yaml:"session_max"`
	// SecureCookies marks the session cookie Secure (with the __Host-
	// prefix) on every request, not only those that came over TLS: set it
	// behind a TLS-terminating proxy.
	SecureCookies bool `yaml:"secure_cookies"`
}

// On reports whether people must sign in.
func (l Login) On() bool { return l.Mode == LoginLocal || l.Mode == LoginOpenID }

// LoginOIDC is ehrgate's registration at the site's OpenID provider.
type LoginOIDC struct {
	Issuer          string `yaml:"issuer"`            // the provider's issuer URL
	ClientID        string `yaml:"client_id"`         // ehrgate's client id there
	ClientSecretEnv string `yaml:"client_secret_env"` // env variable holding the client secret (none: public client with PKCE)
	RedirectURL     string `yaml:"redirect_url"`      // https://HOST/login/callback, as registered
	// Scopes are requested besides openid (default profile; add e.g.
	// groups when the provider releases that claim only on request).
	Scopes []string `yaml:"scopes"`
	// RoleClaim is the claim listing the person's groups or roles
	// (default groups; a dotted path such as realm_access.roles).
	RoleClaim string `yaml:"role_claim"`
	// RoleMap maps its values to ehrgate roles (admin, clinician,
	// auditor); empty: values named like a role are taken as they are.
	// People whose claim maps to no role are refused.
	RoleMap map[string]string `yaml:"role_map"`
	// PostLogoutRedirectURL is where the provider returns the browser after
	// signing the person out there too (RP-Initiated Logout; register it at
	// the provider). Default: the login page beside redirect_url.
	PostLogoutRedirectURL string `yaml:"post_logout_redirect_url"`
}

// SMART configures the SMART launches (EHR and standalone) of launch
// connections. Zero values take the defaults.
type SMART struct {
	// LaunchTTL is how long a pending authorization stays usable (default 10m).
	LaunchTTL Duration `yaml:"launch_ttl"`
	// MaxPendingPerAddress bounds the pending authorizations started from
	// one client address (default 20); more get 429.
	MaxPendingPerAddress int `yaml:"max_pending_per_address"`
	// MaxPending bounds all pending authorizations in the store (default
	// 10,000); more get 429.
	MaxPending int `yaml:"max_pending"`
	// TrustedProxies are the reverse proxies (addresses or CIDR prefixes)
	// whose X-Forwarded-For names the client; none by default, so the
	// client is the connection's peer and X-Forwarded-For is ignored.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// TrustedProxyPrefixes parses TrustedProxies (Validate reports errors).
func (s SMART) TrustedProxyPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range s.TrustedProxies {
		if pfx, err := netip.ParsePrefix(p); err == nil {
			out = append(out, pfx.Masked())
			continue
		}
		addr, err := netip.ParseAddr(p)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR prefix", p)
		}
		out = append(out, netip.PrefixFrom(addr, addr.BitLen()))
	}
	return out, nil
}

// Jobs configures the job queue. Zero values take the defaults.
type Jobs struct {
	// Workers is how many jobs of each queue one process runs at once
	// (default 4).
	Workers int `yaml:"workers"`
	// Timeout bounds one attempt of a sync or export (default 1h): its
	// context is cancelled when it ends, and the job retried.
	Timeout Duration `yaml:"timeout"`
	// RescueAfter is how long after an attempt began another process may
	// take over a job whose process died (default Timeout + 5m). Keep it
	// above Timeout.
	RescueAfter Duration `yaml:"rescue_after"`
	// MaxAttempts is how often a job runs before it is given up (default 10).
	MaxAttempts int `yaml:"max_attempts"`
}

// Bulk configures Bulk Data exports; flags override it.
type Bulk struct {
	// MaxReexports is how many new exports a run may start (per _since)
	// for files the server no longer has (410 Gone, as when its output
	// expired before ehrgate downloaded it): nil means 1, 0 none.
	MaxReexports *int `yaml:"max_reexports"`
}

// MaxBulkReexports bounds Bulk.MaxReexports.
const MaxBulkReexports = 10

// HL7 configures the MLLP listener; flags override it.
type HL7 struct {
	MLLPAddr   string `yaml:"mllp_addr"`  // HOST:PORT; "" = no listener
	Connection string `yaml:"connection"` // store connection of HL7-sourced resources (default "hl7")
	AckMode    string `yaml:"ack_mode"`   // original (default), enhanced, aa-only
	TLSCert    string `yaml:"tls_cert"`
	TLSKey     string `yaml:"tls_key"`
	// What this site's feed does differently (see hl7/tofhir/README.md,
	// "Acceptance rules"):
	// Authorities maps an assigning authority (CX-4 namespace or universal
	// id) to the FHIR identifier.system to use for it.
	Authorities map[string]string `yaml:"authorities"`
	// DefaultAuthority qualifies identifiers sent without CX-4 (default:
	// the sending facility, MSH-4).
	DefaultAuthority string `yaml:"default_authority"`
	// RequireAuthority refuses identifiers with neither CX-4 nor a default.
	RequireAuthority bool `yaml:"require_authority"`
	// IdentifierPattern is a regular expression every patient identifier
	// value must match to be used (e.g. "^[0-9]{6,10}$").
	IdentifierPattern string `yaml:"identifier_pattern"`
	// PlaceholderIdentifiers are values that mean "unknown" at this site.
	PlaceholderIdentifiers []string `yaml:"placeholder_identifiers"`
	// Unsupported: "reject" (default: AR, kept in the log) or "keep" (AA,
	// kept unconverted) for valid messages of types ehrgate does not convert.
	Unsupported string `yaml:"unsupported"`
	// TimeZone reads v2 times without an offset (IANA name; default UTC).
	TimeZone string `yaml:"time_zone"`
	// Charset is the character set of messages without MSH-18 (HL7 table
	// 0211 name such as "8859/1"; default UTF-8).
	Charset string `yaml:"charset"`
	// Alerts tune the feed's alerts on the dashboard (zero: the defaults,
	// which deploy/prometheus/hl7.yml matches).
	Alerts HL7Alerts `yaml:"alerts"`
}

// HL7Alerts are the thresholds of a feed's alerts: "silent" (no message
// for SilentAfter during an hour in which the feed normally has at least
// BusyPerHour) and "rejects rising" (more than RejectRatio of recent
// messages refused or not converted, at least MinRejects of them).
type HL7Alerts struct {
	SilentAfter Duration `yaml:"silent_after"`  // default 15m
	BusyPerHour float64  `yaml:"busy_per_hour"` // default 12
	RejectRatio float64  `yaml:"reject_ratio"`  // default 0.05
	MinRejects  int      `yaml:"min_rejects"`   // default 3
}

// Events configures what happens when an HL7 v2 event (admission,
// discharge, final result, ...) arrives.
type Events struct {
	// Webhooks receive every event (or the listed kinds) as signed JSON.
	Webhooks []Webhook `yaml:"webhooks"`
	// RefreshConnections are the FHIR connections whose copy of the
	// patient is refreshed when an event about them arrives.
	RefreshConnections []string `yaml:"refresh_connections"`
	// Retention is how long events stay in the store's event log for
	// consumers to catch up (default 7 days); a consumer away longer
	// misses what was trimmed and is told so.
	Retention Duration `yaml:"retention"`
	// Subscriptions subscribes ehrgate to the EHRs that offer topic-based
	// FHIR Subscriptions (package subscriptions).
	Subscriptions Subscriptions `yaml:"subscriptions"`
}

// Subscriptions configures FHIR Subscriptions on the EHRs. With BaseURL
// set, `serve` subscribes on every connection (or those listed) whose
// CapabilityStatement lists a SubscriptionTopic; the others keep scheduled
// and HL7-driven refresh.
type Subscriptions struct {
	// BaseURL is ehrgate's URL as the EHRs reach it
	// ("https://ehrgate.example.org"); notifications are POSTed to
	// BaseURL/subscriptions/notify/TOKEN. Empty: no subscriptions.
	BaseURL     string   `yaml:"base_url"`
	Connections []string `yaml:"connections"` // default: every connection
	Payload     string   `yaml:"payload"`     // full-resource (default), id-only or empty
	Heartbeat   Duration `yaml:"heartbeat"`   // heartbeat period asked for (default 60s)
}

// Webhook is one event receiver.
type Webhook struct {
	URL       string   `yaml:"url"`
	SecretEnv string   `yaml:"secret_env"` // env variable holding the HMAC secret; never the secret itself
	Kinds     []string `yaml:"kinds"`      // empty = every kind
}

// Connection is one EHR FHIR endpoint.
type Connection struct {
	Name        string   `yaml:"name"`
	BaseURL     string   `yaml:"base_url"`
	Types       []string `yaml:"types"`        // resource types to pull (default: the ten chart types)
	Workers     int      `yaml:"workers"`      // concurrent fetches (default 8, or the vendor's limit)
	PageSize    int      `yaml:"page_size"`    // _count (default: the vendor's page size)
	Vendor      string   `yaml:"vendor"`       // epic, oracle (or cerner), athena, ecw, meditech, veradigm, nextgen, generic; "" = detect
	SiteProfile string   `yaml:"site_profile"` // YAML file layering this site's differences over the vendor adapter
	Auth        *Auth    `yaml:"auth"`         // nil or type none: no authorization (test servers only)
	// BulkEvery runs an incremental system-level Bulk Data export of the
	// connection into the store at this interval under `serve` (0 = never).
	BulkEvery Duration `yaml:"bulk_every"`
	// Write governs writing back into the connection's EHR (package
	// writeback); nil writes nothing.
	Write *Write `yaml:"write"`
}

// Write approval modes.
const (
	ApprovalHuman = "human" // each write waits for a person's approval (default)
	ApprovalAuto  = "auto"  // writes the policy allows are approved by it
)

// Write is a connection's write-back policy: what ehrgate may write into
// the EHR, and how. Anything it does not allow is refused before any
// request leaves; the vendor's ehr.Profile.Write bounds it further.
type Write struct {
	// Enabled is the kill switch: false refuses every write.
	Enabled bool `yaml:"enabled"`
	// Types are the resource types that may be written (Flag, Observation,
	// Task, Communication, DocumentReference).
	Types []string `yaml:"types"`
	// Operations are the interactions allowed: create, update.
	Operations []string `yaml:"operations"`
	// Approval is auto or human (default human).
	Approval string `yaml:"approval"`
	// DryRun proposes and approves writes but never sends them.
	DryRun bool `yaml:"dry_run"`
	// Rate is the most writes sent per minute (0 = 60).
	Rate int `yaml:"rate"`
	// Tags are added to meta.tag of every written resource (for example
	// a "derived" or "AI-generated" code the site requires).
	Tags []WriteTag `yaml:"tags"`
}

// WriteTag is a meta.tag coding.
type WriteTag struct {
	System  string `yaml:"system"`
	Code    string `yaml:"code"`
	Display string `yaml:"display"`
}

// validate reports the problems of a write policy, prefixed with where.
func (w *Write) validate(where string) []error {
	var errs []error
	if w.Enabled && len(w.Types) == 0 {
		errs = append(errs, fmt.Errorf("%s.types: list the resource types that may be written", where))
	}
	for _, t := range w.Types {
		if !typeNameRE.MatchString(t) {
			errs = append(errs, fmt.Errorf("%s.types: %q is not a resource type", where, t))
		}
	}
	if w.Enabled && len(w.Operations) == 0 {
		errs = append(errs, fmt.Errorf("%s.operations: list create, update or both", where))
	}
	for _, op := range w.Operations {
		if op != "create" && op != "update" {
			errs = append(errs, fmt.Errorf("%s.operations: %q is not create or update", where, op))
		}
	}
	switch w.Approval {
	case "", ApprovalHuman, ApprovalAuto:
	default:
		errs = append(errs, fmt.Errorf("%s.approval: %q is not auto or human", where, w.Approval))
	}
	if w.Rate < 0 {
		errs = append(errs, fmt.Errorf("%s.rate: must not be negative", where))
	}
	for i, tg := range w.Tags {
		if tg.System == "" || tg.Code == "" {
			errs = append(errs, fmt.Errorf("%s.tags[%d]: a tag needs a system and a code", where, i))
		}
	}
	return errs
}

// typeNameRE matches a FHIR resource type name.
var typeNameRE = regexp.MustCompile(`^[A-Z][A-Za-z]{1,63}$`)

// Auth types.
const (
	AuthNone            = "none"
	AuthBackendServices = "backend-services" // SMART Backend Services: client_credentials + signed JWT assertion
	AuthLaunch          = "launch"           // SMART App Launch (EHR or standalone); tokens come from a user's launch
)

// Auth says how ehrgate authorizes against a connection (SMART on FHIR).
type Auth struct {
	Type            string   `yaml:"type"`              // none, backend-services, launch
	ClientID        string   `yaml:"client_id"`         // issued by the EHR
	Method          string   `yaml:"method"`            // private_key_jwt (default), client_secret_basic, client_secret_post, none
	ClientSecretEnv string   `yaml:"client_secret_env"` // name of the env variable holding a client secret; never the secret itself
	RedirectURL     string   `yaml:"redirect_url"`      // launch: ehrgate's /smart/callback URL as registered with the EHR
	Context         string   `yaml:"context"`           // launch: patient or user scopes (default patient)
	Scopes          []string `yaml:"scopes"`            // extra scopes, e.g. openid fhirUser offline_access
}

// Duration is a time.Duration written as "5m" in YAML.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 30s or 5m", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{Data: DefaultDataDir, HTTPAddr: DefaultHTTPAddr, LogLevel: "info", LogFormat: "text"}
}

// Load reads the YAML file at path over the defaults (path "" skips the
// file) and then applies EHRGATE_* variables from env (os.Environ form).
func Load(path string, env []string) (Config, error) {
	cfg := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("reading config file: %w", err)
		}
		if cfg, err = Parse(b); err != nil {
			return cfg, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	applyEnv(&cfg, env)
	return cfg, nil
}

// Parse decodes a YAML configuration over the defaults. Unknown keys are
// errors (a misspelt setting must not be silently ignored).
func Parse(b []byte) (Config, error) {
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, err
	}
	return cfg, nil
}

// Env variable names.
const (
	EnvConfig    = "EHRGATE_CONFIG"
	EnvData      = "EHRGATE_DATA"
	EnvStore     = "EHRGATE_STORE"
	EnvHTTPHosts = "EHRGATE_HTTP_HOSTS"
	EnvHTTPAddr  = "EHRGATE_HTTP_ADDR"
	EnvLogLevel  = "EHRGATE_LOG_LEVEL"
	EnvLogFormat = "EHRGATE_LOG_FORMAT"
	EnvSyncEvery = "EHRGATE_SYNC_EVERY"
	EnvLocalMap  = "EHRGATE_LOCAL_CODE_MAP"
)

func applyEnv(cfg *Config, env []string) {
	get := func(k string) (string, bool) {
		for _, kv := range env {
			if strings.HasPrefix(kv, k+"=") {
				return kv[len(k)+1:], true
			}
		}
		return "", false
	}
	if v, ok := get(EnvData); ok {
		cfg.Data = v
	}
	if v, ok := get(EnvStore); ok {
		cfg.Store = v
	}
	if v, ok := get(EnvHTTPHosts); ok {
		cfg.HTTPHosts = nil
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				cfg.HTTPHosts = append(cfg.HTTPHosts, h)
			}
		}
	}
	if v, ok := get(EnvHTTPAddr); ok {
		cfg.HTTPAddr = v
	}
	if v, ok := get(EnvLogLevel); ok {
		cfg.LogLevel = v
	}
	if v, ok := get(EnvLogFormat); ok {
		cfg.LogFormat = v
	}
	if v, ok := get(EnvLocalMap); ok {
		cfg.LocalCodeMap = v
	}
	if v, ok := get(EnvSyncEvery); ok {
		if d, err := time.ParseDuration(v); err == nil {
			cfg.SyncEvery = Duration(d)
		} else {
			cfg.SyncEvery = -1 // reported by Validate
		}
	}
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Validate reports every problem in the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Data) == "" {
		errs = append(errs, errors.New("data: a data directory is required"))
	}
	if c.AllowRemoteDashboard != nil {
		errs = append(errs, errors.New("allow_remote_dashboard: removed; the dashboard has its own login now: set login.mode (local or oidc), and the dashboard may listen on any address"))
	}
	errs = append(errs, c.Login.validate()...)
	if c.Pipeline.Every < 0 {
		errs = append(errs, errors.New("pipeline.every: must not be negative"))
	}
	for _, h := range c.HTTPHosts {
		if h == "" || strings.ContainsAny(h, ":/ ") {
			errs = append(errs, fmt.Errorf("http_hosts: %q is not a host name (no scheme, port or path)", h))
		}
	}
	if c.Store != "" {
		if scheme, _, err := store.ParseURL(c.Store); err != nil {
			errs = append(errs, fmt.Errorf("store: %w", err))
		} else if scheme != "sqlite" && scheme != "postgres" {
			errs = append(errs, fmt.Errorf("store: %q is not sqlite:DIR or postgres://user@host/db", store.Redact(c.Store)))
		}
	}
	if _, port, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("http_addr: %q is not HOST:PORT", c.HTTPAddr))
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		errs = append(errs, fmt.Errorf("http_addr: %q has no valid port", c.HTTPAddr))
	} else if host, _, _ := net.SplitHostPort(c.HTTPAddr); !isLoopback(host) && !c.Login.On() {
		errs = append(errs, fmt.Errorf("http_addr: %q is not a loopback address; the dashboard shows patient data, so without a login (login.mode local or oidc) it listens on loopback only", c.HTTPAddr))
	} else if !isLoopback(host) && len(c.HTTPHosts) == 0 {
		errs = append(errs, fmt.Errorf("http_hosts: http_addr %q is not a loopback address: list the host names users reach the dashboard under; requests under other names are refused", c.HTTPAddr))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level: %q is not one of debug, info, warn, error", c.LogLevel))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log_format: %q is not text or json", c.LogFormat))
	}
	if c.Jobs.Workers < 0 || c.Jobs.Timeout < 0 || c.Jobs.RescueAfter < 0 || c.Jobs.MaxAttempts < 0 {
		errs = append(errs, errors.New("jobs: workers, timeout, rescue_after and max_attempts must not be negative"))
	}
	if c.Jobs.RescueAfter > 0 && c.Jobs.Timeout > 0 && c.Jobs.RescueAfter <= c.Jobs.Timeout {
		errs = append(errs, errors.New("jobs: rescue_after must be longer than timeout, or a running job could be taken over"))
	}
	if _, err := c.SMART.TrustedProxyPrefixes(); err != nil {
		errs = append(errs, fmt.Errorf("smart.trusted_proxies: %w", err))
	}
	if c.SMART.LaunchTTL < 0 || c.SMART.MaxPending < 0 || c.SMART.MaxPendingPerAddress < 0 {
		errs = append(errs, errors.New("smart: launch_ttl, max_pending and max_pending_per_address must not be negative"))
	}
	if c.SyncEvery < 0 {
		errs = append(errs, errors.New("sync_every: not a valid duration"))
	}
	if c.StaleAfter < 0 {
		errs = append(errs, errors.New("stale_after: must not be negative"))
	}
	if c.LocalCodeMap != "" {
		if _, err := os.Stat(c.LocalCodeMap); err != nil {
			errs = append(errs, fmt.Errorf("local_code_map: %w", err))
		}
	}
	switch c.HL7.AckMode {
	case "", "original", "enhanced", "aa-only":
	default:
		errs = append(errs, fmt.Errorf("hl7.ack_mode: %q is not original, enhanced or aa-only", c.HL7.AckMode))
	}
	if (c.HL7.TLSCert == "") != (c.HL7.TLSKey == "") {
		errs = append(errs, errors.New("hl7: tls_cert and tls_key go together"))
	}
	if _, err := regexp.Compile(c.HL7.IdentifierPattern); err != nil {
		errs = append(errs, fmt.Errorf("hl7.identifier_pattern: %w", err))
	}
	switch c.HL7.Unsupported {
	case "", "reject", "keep":
	default:
		errs = append(errs, fmt.Errorf("hl7.unsupported: %q is not reject or keep", c.HL7.Unsupported))
	}
	if _, err := time.LoadLocation(c.HL7.TimeZone); err != nil {
		errs = append(errs, fmt.Errorf("hl7.time_zone: %w", err))
	}
	if a := c.HL7.Alerts; a.SilentAfter < 0 || a.BusyPerHour < 0 || a.MinRejects < 0 {
		errs = append(errs, errors.New("hl7.alerts: silent_after, busy_per_hour and min_rejects cannot be negative"))
	} else if a.RejectRatio < 0 || a.RejectRatio > 1 {
		errs = append(errs, fmt.Errorf("hl7.alerts.reject_ratio: %v is not a share between 0 and 1", a.RejectRatio))
	}
	for i, w := range c.Events.Webhooks {
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("events.webhooks[%d].url: %q is not an absolute http(s) URL", i, w.URL))
		}
		if w.SecretEnv == "" {
			errs = append(errs, fmt.Errorf("events.webhooks[%d].secret_env: name the environment variable holding the signing secret", i))
		}
	}
	if sub := c.Events.Subscriptions; sub.BaseURL != "" {
		if u, err := url.Parse(sub.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("events.subscriptions.base_url: %q is not an absolute http(s) URL", sub.BaseURL))
		}
		switch sub.Payload {
		case "", "full-resource", "id-only", "empty":
		default:
			errs = append(errs, fmt.Errorf("events.subscriptions.payload: %q is not full-resource, id-only or empty", sub.Payload))
		}
		if sub.Heartbeat < 0 {
			errs = append(errs, errors.New("events.subscriptions.heartbeat: must not be negative"))
		}
	}
	errs = append(errs, c.API.validate()...)
	if b := c.CDS.BaseURL; b != "" {
		if u, err := url.Parse(b); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.TrimSuffix(u.Path, "/") != "" {
			errs = append(errs, fmt.Errorf("cds.base_url: %q is not an absolute http(s) URL without a path (the services are at /cds-services)", b))
		}
	}
	for i, j := range c.CDS.JKUAllowList {
		if u, err := url.Parse(j); err != nil || u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf("cds.jku_allow_list[%d]: %q is not an https URL", i, j))
		}
	}
	if sl := c.Audit.SIEM.Syslog; sl != "" {
		if u, err := url.Parse(sl); err != nil || (u.Scheme != "udp" && u.Scheme != "tcp" && u.Scheme != "unix" && u.Scheme != "unixgram") {
			errs = append(errs, fmt.Errorf("audit.siem.syslog: %q is not udp://host:port, tcp://host:port or unix:///path", sl))
		}
	}
	if c.Events.Retention < 0 {
		errs = append(errs, errors.New("events.retention: must not be negative"))
	}
	if c.Audit.SIEM.Every < 0 {
		errs = append(errs, errors.New("audit.siem.every: must not be negative"))
	}
	seen := map[string]bool{}
	prefixes := map[string]string{}
	for i, conn := range c.Connections {
		where := fmt.Sprintf("connections[%d]", i)
		if !nameRE.MatchString(conn.Name) {
			errs = append(errs, fmt.Errorf("%s.name: %q must be lower-case letters, digits, - or _", where, conn.Name))
		}
		if seen[conn.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", where, conn.Name))
		}
		seen[conn.Name] = true
		// The API serves every connection in one namespace, ids prefixed
		// with the name written with '-' for '_' (fhirapi.Prefix).
		if other, ok := prefixes[strings.ReplaceAll(conn.Name, "_", "-")]; ok && other != conn.Name {
			errs = append(errs, fmt.Errorf("%s.name: %q and %q would share one id prefix in the API; rename one", where, other, conn.Name))
		}
		prefixes[strings.ReplaceAll(conn.Name, "_", "-")] = conn.Name
		if conn.BulkEvery < 0 {
			errs = append(errs, fmt.Errorf("%s.bulk_every: must not be negative", where))
		}
		if conn.Write != nil {
			errs = append(errs, conn.Write.validate(where+".write")...)
		}
		if conn.BulkEvery > 0 && conn.Auth != nil && conn.Auth.Type == AuthLaunch {
			errs = append(errs, fmt.Errorf("%s.bulk_every: a launch connection has no system access to export with", where))
		}
		u, err := url.Parse(conn.BaseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s.base_url: %q is not an absolute http(s) URL", where, conn.BaseURL))
		}
		if _, ok := ehr.Canonical(conn.Vendor); !ok {
			errs = append(errs, fmt.Errorf("%s.vendor: unknown vendor %q (accepted: %s; omit to detect)", where, conn.Vendor, ehr.AcceptedNames()))
		}
		if conn.Workers < 0 || conn.Workers > 64 {
			errs = append(errs, fmt.Errorf("%s.workers: %d is outside 0..64", where, conn.Workers))
		}
		if conn.PageSize < 0 || conn.PageSize > 1000 {
			errs = append(errs, fmt.Errorf("%s.page_size: %d is outside 0..1000", where, conn.PageSize))
		}
		if a := conn.Auth; a != nil {
			errs = append(errs, a.validate(where+".auth")...)
		}
	}
	if n := c.Bulk.MaxReexports; n != nil && (*n < 0 || *n > MaxBulkReexports) {
		errs = append(errs, fmt.Errorf("bulk.max_reexports: %d is outside 0..%d", *n, MaxBulkReexports))
	}
	for i, name := range c.Events.RefreshConnections {
		if !seen[name] {
			errs = append(errs, fmt.Errorf("events.refresh_connections[%d]: no connection named %q", i, name))
		}
	}
	return errors.Join(errs...)
}

func (a API) validate() []error {
	var errs []error
	absolute := func(field, raw string) {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s: %q is not an absolute http(s) URL", field, raw))
		}
	}
	if a.BaseURL != "" {
		absolute("api.base_url", a.BaseURL)
	}
	if a.Issuer != "" {
		absolute("api.issuer", a.Issuer)
		if a.External != nil {
			errs = append(errs, errors.New("api.issuer: names ehrgate's own authorization server; with api.external the issuer is api.external.issuer"))
		}
	}
	if a.TokenTTL < 0 || time.Duration(a.TokenTTL) > time.Hour || a.RefreshTTL < 0 {
		errs = append(errs, errors.New("api.token_ttl: at most 1h (and not negative); api.refresh_ttl: not negative"))
	}
	if a.DefaultCount < 0 || a.MaxCount < 0 || (a.MaxCount > 0 && a.DefaultCount > a.MaxCount) {
		errs = append(errs, errors.New("api: default_count and max_count must be positive, default_count at most max_count"))
	}
	if x := a.External; x != nil {
		absolute("api.external.issuer", x.Issuer)
		absolute("api.external.jwks_url", x.JWKSURL)
		if x.Audience == "" && a.BaseURL == "" {
			errs = append(errs, errors.New("api.external.audience: name the audience the tokens carry (or set api.base_url)"))
		}
	}
	return errs
}

// Connection returns the named connection.
func (c Config) Connection(name string) (Connection, bool) {
	for _, conn := range c.Connections {
		if conn.Name == name {
			return conn, true
		}
	}
	return Connection{}, false
}

func (a *Auth) validate(where string) []error {
	var errs []error
	switch a.Type {
	case "", AuthNone:
		return nil
	case AuthBackendServices, AuthLaunch:
	default:
		return []error{fmt.Errorf("%s.type: %q is not none, backend-services or launch", where, a.Type)}
	}
	if a.ClientID == "" {
		errs = append(errs, fmt.Errorf("%s.client_id: required for %s", where, a.Type))
	}
	switch a.Method {
	case "", "private_key_jwt", "client_secret_basic", "client_secret_post":
	case "none":
		if a.Type == AuthBackendServices {
			errs = append(errs, fmt.Errorf("%s.method: backend services need a confidential client", where))
		}
	default:
		errs = append(errs, fmt.Errorf("%s.method: %q is not private_key_jwt, client_secret_basic, client_secret_post or none", where, a.Method))
	}
	if (a.Method == "client_secret_basic" || a.Method == "client_secret_post") && a.ClientSecretEnv == "" {
		errs = append(errs, fmt.Errorf("%s.client_secret_env: required for %s (name an environment variable)", where, a.Method))
	}
	if a.Type == AuthLaunch {
		if u, err := url.Parse(a.RedirectURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s.redirect_url: %q is not an absolute http(s) URL", where, a.RedirectURL))
		}
		switch a.Context {
		case "", "patient", "user":
		default:
			errs = append(errs, fmt.Errorf("%s.context: %q is not patient or user", where, a.Context))
		}
	}
	return errs
}

// loginRoles are the roles of package login (which config does not import).
var loginRoles = map[string]bool{"admin": true, "clinician": true, "auditor": true}

func (l Login) validate() []error {
	var errs []error
	switch l.Mode {
	case "", LoginNone, LoginLocal, LoginOpenID:
	default:
		errs = append(errs, fmt.Errorf("login.mode: %q is not none, local or oidc", l.Mode))
	}
	if l.SessionIdle < 0 || l.SessionMax < 0 {
		errs = append(errs, errors.New("login: session_idle and session_max must not be negative"))
	}
	if l.SessionIdle > 0 && l.SessionMax > 0 && l.SessionIdle > l.SessionMax {
		errs = append(errs, errors.New("login.session_idle: longer than session_max"))
	}
	if l.Mode != LoginOpenID {
		return errs
	}
	o := l.OIDC
	if u, err := url.Parse(o.Issuer); err != nil || u.Host == "" || !(u.Scheme == "https" || u.Scheme == "http" && isLoopback(u.Hostname())) {
		errs = append(errs, fmt.Errorf("login.oidc.issuer: %q is not an absolute https URL", o.Issuer))
	}
	if o.ClientID == "" {
		errs = append(errs, errors.New("login.oidc.client_id: required"))
	}
	if u, err := url.Parse(o.RedirectURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || !strings.HasPrefix(u.Path, "/login/") || u.Path == "/login/oidc" || u.Path == "/login/style.css" {
		errs = append(errs, fmt.Errorf("login.oidc.redirect_url: %q is not an absolute http(s) URL with a path under /login/ (such as https://ehrgate.example/login/callback)", o.RedirectURL))
	}
	if o.PostLogoutRedirectURL != "" {
		if u, err := url.Parse(o.PostLogoutRedirectURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			errs = append(errs, fmt.Errorf("login.oidc.post_logout_redirect_url: %q is not an absolute http(s) URL", o.PostLogoutRedirectURL))
		}
	}
	for k, v := range o.RoleMap {
		if !loginRoles[v] {
			errs = append(errs, fmt.Errorf("login.oidc.role_map[%q]: %q is not admin, clinician or auditor", k, v))
		}
	}
	return errs
}

// isLoopback reports whether host names only this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// StoreURL is the store the configuration names: Store, or the embedded
// store in the data directory.
func (c Config) StoreURL() string {
	if c.Store != "" {
		return c.Store
	}
	return "sqlite:" + c.Data
}
