package smart

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"ehrgate/store"
)

// NormalizeIssuer returns the canonical form of a FHIR base URL used as a
// launch iss: lower-case scheme and host, default port dropped, path
// without trailing slash; query, fragment and user info are refused.
// Registered connections and launches are compared on this form, exactly.
func NormalizeIssuer(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "", errors.New("not an absolute URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return "", errors.New("not an http(s) URL")
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", errors.New("an issuer has no user info, query or fragment")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host + strings.TrimRight(u.EscapedPath(), "/"), nil
}

// LauncherOptions configure a Launcher.
type LauncherOptions struct {
	Clients    []ClientConfig // registered connections; a launch from any other iss is refused
	Vault      *Vault         // where the callback stores tokens
	Discoverer *Discoverer
	Keys       *KeyManager   // for private_key_jwt clients
	HTTPClient *http.Client  // token requests (default: 30s timeout)
	StateTTL   time.Duration // how long a pending authorization stays usable (default 10 minutes)
	Now        func() time.Time
	// Launches keeps the pending authorizations (nil: in memory, for this
	// process only). Give every replica the same shared store (the SQLite
	// or PostgreSQL store) so that a launch begun on one completes on
	// another.
	Launches LaunchStore
	// MaxPendingPerAddress bounds the live pending authorizations started
	// from one client address (default 20); a launch beyond it is refused
	// with 429 before any request to the EHR.
	MaxPendingPerAddress int
	// MaxPending bounds all live pending authorizations in Launches
	// (default 10,000); a launch beyond it is refused with 429.
	MaxPending int
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client. None by default: the client address is the connection's
	// peer, and X-Forwarded-For is ignored (anyone can send it).
	TrustedProxies []netip.Prefix
	Logger         *slog.Logger
	// OnComplete renders the page after a successful callback (default: a
	// short confirmation). It must not show tokens.
	OnComplete func(w http.ResponseWriter, r *http.Request, res *LaunchResult)
}

// LaunchResult is what a completed authorization produced. Token holds the
// launch context (patient, encounter, fhirUser, ...).
type LaunchResult struct {
	Connection string
	Token      *Token
	Scopes     ScopeDiff // requested vs granted; degrade on NotGranted, do not fail
	ID         *IDClaims // verified id_token claims, when openid was requested
}

// Launcher runs the SMART App Launch authorization-code flows (EHR launch
// and standalone launch) for the registered connections. Mount:
//
//	LaunchHandler     at the launch URL registered with the EHR (e.g. /smart/launch)
//	StandaloneHandler at e.g. /smart/login?connection=NAME[&patient=pick]
//	CallbackHandler   at the redirect URI registered with the EHR (e.g. /smart/callback)
//
// Pending authorizations (PKCE verifier, nonce, browser binding, scopes,
// launch) are kept in LauncherOptions.Launches, sealed with the Vault's
// keyring and keyed by a hash of the OAuth state, for StateTTL (default 10
// minutes). They are single use, bound to the browser that started them by
// an HttpOnly cookie, and bounded per client address and in total, so
// unauthenticated launch requests cannot exhaust memory or storage.
type Launcher struct {
	o         LauncherOptions
	te        *tokenEndpoint
	log       *slog.Logger
	byIss     map[string]ClientConfig
	byName    map[string]ClientConfig
	launches  LaunchStore
	lastPurge atomic.Int64 // Unix nanoseconds of the last PurgeLaunches

	// Launches refused by the per-address and the total limit since the
	// last log line about them, and when that was (Unix nanoseconds).
	refusedAddr, refusedTotal, lastRefusedLog atomic.Int64
}

// pending is an opened pending authorization.
type pending struct {
	client   ClientConfig
	launch   string
	verifier string
	nonce    string
	binding  string
	scopes   Scopes
	created  time.Time
}

// Defaults of LauncherOptions' limits.
const (
	DefaultMaxPendingPerAddress = 20
	DefaultMaxPending           = 10000
)

// purgeEvery is how often at most a Launcher purges expired launches from
// its store (a launch needs no purge to expire; the purge frees space).
const purgeEvery = time.Minute

const bindingCookie = "ehrgate_smart_binding"

// NewLauncher validates the registrations and returns a Launcher.
func NewLauncher(o LauncherOptions) (*Launcher, error) {
	if o.Vault == nil || o.Discoverer == nil {
		return nil, errors.New("smart: a launcher needs a Vault and a Discoverer")
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.StateTTL <= 0 {
		o.StateTTL = 10 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxPendingPerAddress <= 0 {
		o.MaxPendingPerAddress = DefaultMaxPendingPerAddress
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	launches := o.Launches
	if launches == nil {
		launches = newMemLaunches()
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Launcher{o: o, te: &tokenEndpoint{hc: o.HTTPClient, keys: o.Keys, now: o.Now}, log: log,
		byIss: map[string]ClientConfig{}, byName: map[string]ClientConfig{}, launches: launches}
	var errs []error
	for _, c := range o.Clients {
		iss, err := NormalizeIssuer(c.FHIRBaseURL)
		if err != nil {
			errs = append(errs, fmt.Errorf("connection %q: fhir base %q: %v", c.Connection, c.FHIRBaseURL, err))
			continue
		}
		if c.ClientID == "" || c.RedirectURL == "" {
			errs = append(errs, fmt.Errorf("connection %q: client_id and redirect URL are required", c.Connection))
		}
		if c.AuthMethod == "" {
			c.AuthMethod = AuthNone
		}
		if c.AuthMethod == AuthPrivateKeyJWT && o.Keys == nil {
			errs = append(errs, fmt.Errorf("connection %q: private_key_jwt needs signing keys", c.Connection))
		}
		if _, dup := l.byIss[iss]; dup {
			errs = append(errs, fmt.Errorf("connection %q: fhir base %s registered twice", c.Connection, iss))
		}
		c.FHIRBaseURL = iss
		l.byIss[iss], l.byName[c.Connection] = c, c
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("smart: launcher: %w", err)
	}
	return l, nil
}

// LaunchHandler handles an EHR launch: GET ?iss=...&launch=.... A launch
// whose iss is not a registered connection is refused with a 400 page
// before any outbound request.
func (l *Launcher) LaunchHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		iss, launch := q.Get("iss"), q.Get("launch")
		if iss == "" || launch == "" {
			l.page(w, http.StatusBadRequest, "Launch refused", "An EHR launch needs both iss and launch parameters.")
			return
		}
		norm, err := NormalizeIssuer(iss)
		c, ok := l.byIss[norm]
		if err != nil || !ok {
			l.log.Warn("smart: launch from an unregistered issuer refused")
			l.page(w, http.StatusBadRequest, "Launch refused",
				"This launch came from a FHIR server that is not registered with ehrgate, so ehrgate did not contact it. Ask your administrator to register the server as a connection.")
			return
		}
		l.start(w, r, c, launch, nil)
	})
}

// StandaloneHandler starts a standalone launch for a registered connection:
// GET ?connection=NAME; with patient=pick it requests launch/patient so
// the EHR shows its patient picker (patient-facing and provider apps).
func (l *Launcher) StandaloneHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		c, ok := l.byName[q.Get("connection")]
		if !ok {
			l.page(w, http.StatusNotFound, "Unknown connection", "There is no registered connection by that name.")
			return
		}
		var extra []string
		if q.Get("patient") == "pick" {
			extra = append(extra, "launch/patient")
		}
		l.start(w, r, c, "", extra)
	})
}

func (l *Launcher) scopesFor(c ClientConfig, cfg *Configuration, launch string, extra []string) Scopes {
	req := c.Scopes
	if req.Style == 0 {
		req.Style = cfg.ScopeStyle()
	}
	if req.Context == "" {
		req.Context = ContextPatient
	}
	req.Extra = slices.Clone(req.Extra)
	if launch != "" && !slices.Contains(req.Extra, "launch") {
		req.Extra = append([]string{"launch"}, req.Extra...)
	}
	if launch == "" {
		// A standalone launch has no launch parameter, so it must not ask for
		// the launch scope even when the connection lists it: servers refuse
		// it (SMART App Launch 2.x, "launch" is for EHR launches only).
		req.Extra = slices.DeleteFunc(req.Extra, func(s string) bool { return s == "launch" })
	}
	req.Extra = append(req.Extra, extra...)
	return LeastPrivilege(req)
}

func (l *Launcher) start(w http.ResponseWriter, r *http.Request, c ClientConfig, launch string, extra []string) {
	ctx := r.Context()
	now, addr := l.o.Now(), clientAddr(r, l.o.TrustedProxies)
	l.maybePurge(ctx, now)
	// A cheap refusal before any request to the EHR; PutLaunch below is
	// what enforces the limits (atomically).
	if n, err := l.launches.CountLaunches(ctx, addr, now); err != nil {
		l.storeDown(w, "", err)
		return
	} else if n >= l.o.MaxPendingPerAddress {
		l.tooMany(w, now, store.ErrTooManyFromAddress)
		return
	}
	cfg, err := l.o.Discoverer.Discover(ctx, c.FHIRBaseURL)
	if err == nil {
		err = cfg.RequireAuthorize()
	}
	if err != nil {
		ref := randomToken(6)
		l.log.Error("smart: discovery failed", "connection", c.Connection, "ref", ref, "err", err)
		l.page(w, http.StatusBadGateway, "Cannot start authorization",
			"ehrgate could not read the EHR's SMART configuration. Give your administrator this reference: "+ref+".")
		return
	}
	p := &pending{client: c, launch: launch, verifier: NewVerifier(), nonce: randomToken(16),
		binding: randomToken(16), scopes: l.scopesFor(c, cfg, launch, extra), created: now}
	state := randomToken(24)
	if err := l.put(ctx, state, addr, p); err != nil {
		if errors.Is(err, store.ErrTooManyFromAddress) || errors.Is(err, store.ErrTooManyLaunches) {
			l.tooMany(w, now, err)
			return
		}
		l.storeDown(w, c.Connection, err)
		return
	}

	v := url.Values{
		"response_type":         {"code"},
		"client_id":             {c.ClientID},
		"redirect_uri":          {c.RedirectURL},
		"scope":                 {p.scopes.String()},
		"state":                 {state},
		"aud":                   {c.FHIRBaseURL},
		"code_challenge":        {S256Challenge(p.verifier)},
		"code_challenge_method": {"S256"},
	}
	if launch != "" {
		v.Set("launch", launch)
	}
	if slices.Contains(p.scopes.Names(), "openid") {
		v.Set("nonce", p.nonce)
	}
	u, err := url.Parse(cfg.AuthorizationEndpoint)
	if err != nil {
		l.page(w, http.StatusBadGateway, "Cannot start authorization", "The server's authorization endpoint is not a URL.")
		return
	}
	q := u.Query()
	for k, vs := range v {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	http.SetCookie(w, &http.Cookie{Name: bindingCookie, Value: p.binding, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode, MaxAge: int(l.o.StateTTL / time.Second)})
	l.log.Info("smart: authorization started", "connection", c.Connection, "ehr_launch", launch != "")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// put seals p and stores it under state, counted against addr.
func (l *Launcher) put(ctx context.Context, state, addr string, p *pending) error {
	key := launchKey(state)
	sealed, err := l.seal(key, &pendingRecord{Connection: p.client.Connection, Launch: p.launch, Verifier: p.verifier,
		Nonce: p.nonce, Binding: p.binding, Scopes: p.scopes, Created: p.created})
	if err != nil {
		return err
	}
	return l.launches.PutLaunch(ctx, store.PendingLaunch{Key: key, Connection: p.client.Connection, ClientAddr: addr,
		Sealed: sealed, CreatedAt: p.created, ExpiresAt: p.created.Add(l.o.StateTTL)},
		store.LaunchLimits{PerAddress: l.o.MaxPendingPerAddress, Total: l.o.MaxPending})
}

// storeDown answers a launch the store could not record: 503 with a
// reference to the logged error.
func (l *Launcher) storeDown(w http.ResponseWriter, connection string, err error) {
	ref := randomToken(6)
	l.log.Error("smart: the launch store failed", "connection", connection, "ref", ref, "err", err)
	l.page(w, http.StatusServiceUnavailable, "Cannot start authorization",
		"ehrgate could not record the authorization it was about to start. Try again; if it fails again, give your administrator this reference: "+ref+".")
}

// tooMany answers a launch refused by a limit: 429 with a page saying
// what to do. Refusals are logged at most once per purgeEvery, with how
// many there were, so a flood does not become a flood of log lines; the
// client address is not logged (an IP address identifies a person as much
// as a name does).
func (l *Launcher) tooMany(w http.ResponseWriter, now time.Time, why error) {
	if errors.Is(why, store.ErrTooManyLaunches) {
		l.refusedTotal.Add(1)
	} else {
		l.refusedAddr.Add(1)
	}
	if last, t := l.lastRefusedLog.Load(), now.UnixNano(); (t < last || t-last >= int64(purgeEvery)) && l.lastRefusedLog.CompareAndSwap(last, t) {
		l.log.Warn("smart: launches refused: too many pending authorizations",
			"per_address", l.refusedAddr.Swap(0), "total", l.refusedTotal.Swap(0))
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(purgeEvery/time.Second)))
	l.page(w, http.StatusTooManyRequests, "Too many authorizations in progress",
		"Too many authorizations have been started and not finished (from your address, or in all). Finish or close the ones already open, wait a few minutes, and start again from the EHR.")
}

// maybePurge removes expired pending authorizations from the store, at
// most once per purgeEvery (per Launcher). Failures are only logged:
// expired launches are never taken, purged or not.
func (l *Launcher) maybePurge(ctx context.Context, now time.Time) {
	last, t := l.lastPurge.Load(), now.UnixNano()
	if t >= last && t-last < int64(purgeEvery) {
		return
	}
	if !l.lastPurge.CompareAndSwap(last, t) {
		return
	}
	if n, err := l.launches.PurgeLaunches(ctx, now); err != nil {
		l.log.Warn("smart: purging expired authorizations failed", "err", err)
	} else if n > 0 {
		l.log.Debug("smart: purged expired authorizations", "count", n)
	}
}

// errLaunchStore marks a failure of the launch store (not of the request).
var errLaunchStore = errors.New("smart: launch store unavailable")

// take consumes a pending authorization: single use (across every process
// sharing the store), unexpired, and bound to this browser.
func (l *Launcher) take(r *http.Request, state string) (*pending, error) {
	if state == "" {
		return nil, ErrBadState
	}
	key := launchKey(state)
	sp, err := l.launches.TakeLaunch(r.Context(), key, l.o.Now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errLaunchStore, err)
	}
	rec, err := l.open(key, sp.Sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	c, ok := l.byName[rec.Connection]
	if !ok {
		return nil, fmt.Errorf("%w: connection %q is not registered here", ErrBadState, rec.Connection)
	}
	p := &pending{client: c, launch: rec.Launch, verifier: rec.Verifier, nonce: rec.Nonce, binding: rec.Binding,
		scopes: rec.Scopes, created: rec.Created}
	if l.o.Now().Sub(p.created) > l.o.StateTTL {
		return nil, fmt.Errorf("%w: expired", ErrBadState)
	}
	ck, err := r.Cookie(bindingCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(p.binding)) != 1 {
		return nil, fmt.Errorf("%w: started in another browser", ErrBadState)
	}
	return p, nil
}

// CallbackHandler handles the redirect back from the authorize endpoint:
// it checks state, exchanges the code (with the PKCE verifier and the
// client's authentication), verifies the id_token when openid was
// requested, stores the token in the Vault and calls OnComplete.
func (l *Launcher) CallbackHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		p, err := l.take(r, q.Get("state"))
		if errors.Is(err, errLaunchStore) {
			ref := randomToken(6)
			l.log.Error("smart: reading the pending authorization failed", "ref", ref, "err", err)
			l.page(w, http.StatusServiceUnavailable, "Authorization failed",
				"ehrgate could not read the authorization in progress. Start again from the EHR; if it fails again, give your administrator this reference: "+ref+".")
			return
		}
		if err != nil {
			l.log.Warn("smart: callback with invalid state", "err", err)
			l.page(w, http.StatusBadRequest, "Authorization failed", "This authorization response is unknown, expired or already used. Start again from the EHR.")
			return
		}
		http.SetCookie(w, &http.Cookie{Name: bindingCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
		if code := q.Get("error"); code != "" {
			oe := &OAuthError{Code: clip(code, 60), Description: clip(q.Get("error_description"), 300)}
			l.log.Warn("smart: authorization denied", "connection", p.client.Connection, "error_code", oe.Code)
			l.page(w, http.StatusForbidden, "Authorization failed", "The EHR refused the authorization: "+oe.Error())
			return
		}
		res, err := l.complete(r.Context(), p, q.Get("code"))
		if err != nil {
			ref := randomToken(6)
			l.log.Error("smart: authorization failed", "connection", p.client.Connection, "ref", ref, "err", err)
			// Users see what the EHR said or a safe category and a
			// reference, never ehrgate's internal errors (STYLE.md).
			msg := "ehrgate could not complete the authorization with the EHR."
			var oe *OAuthError
			switch {
			case errors.As(err, &oe):
				msg = "The EHR refused the token request: " + oe.Error() + "."
			case errors.Is(err, ErrIDToken):
				msg = "The EHR's identity token was not valid (id_token rejected)."
			}
			l.page(w, http.StatusBadGateway, "Authorization failed",
				msg+" Start again from the EHR; if it fails again, give your administrator this reference: "+ref+".")
			return
		}
		if l.o.OnComplete != nil {
			l.o.OnComplete(w, r, res)
			return
		}
		msg := "ehrgate is now authorized for connection " + res.Connection + "."
		if !res.Scopes.Complete() {
			msg += " Not granted (the sync will skip these): " + res.Scopes.NotGranted.String() + "."
		}
		l.page(w, http.StatusOK, "Authorized", msg)
	})
}

func (l *Launcher) complete(ctx context.Context, p *pending, code string) (*LaunchResult, error) {
	if code == "" {
		return nil, errors.New("the response has no code")
	}
	c := p.client
	cfg, err := l.o.Discoverer.Discover(ctx, c.FHIRBaseURL)
	if err != nil {
		return nil, err
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.RedirectURL}, "code_verifier": {p.verifier}}
	t, err := l.te.request(ctx, c, cfg.TokenEndpoint, form, p.scopes.String())
	if err != nil {
		return nil, fmt.Errorf("exchanging code: %w", err)
	}
	res := &LaunchResult{Connection: c.Connection, Token: t}
	if slices.Contains(p.scopes.Names(), "openid") {
		if t.IDToken == "" {
			return nil, fmt.Errorf("%w: openid was requested but no id_token was returned", ErrIDToken)
		}
		id, err := verifyIDToken(ctx, l.o.Discoverer, cfg, c.FHIRBaseURL, t.IDToken.Reveal(), c.ClientID, p.nonce, l.o.Now())
		if err != nil {
			return nil, err
		}
		res.ID, t.Context.FHIRUser = id, id.FHIRUser
	}
	granted, err := ParseScopes(t.Scope)
	if err != nil {
		l.log.Warn("smart: server granted scopes ehrgate cannot parse; ignoring those", "connection", c.Connection)
	}
	res.Scopes = CompareScopes(p.scopes, granted)
	if !res.Scopes.Complete() {
		l.log.Warn("smart: some scopes not granted; the sync will skip them", "connection", c.Connection, "not_granted", res.Scopes.NotGranted.String())
	}
	if err := l.o.Vault.Save(ctx, c.Connection, t); err != nil {
		return nil, fmt.Errorf("storing token: %w", err)
	}
	l.log.Info("smart: authorized", "connection", c.Connection, "token", t)
	return res, nil
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} · ehrgate</title></head>
<body><h1>{{.Title}}</h1><p>{{.Message}}</p></body></html>
`))

func (l *Launcher) page(w http.ResponseWriter, status int, title, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	w.WriteHeader(status)
	pageTmpl.Execute(w, struct{ Title, Message string }{title, msg})
}
