package smart

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"ehrgate/fhir"
	"ehrgate/store"
)

// Grant is how a TokenSource obtains new access tokens.
type Grant int

// Grants.
const (
	// GrantRefreshToken refreshes a token obtained by a user launch (EHR or
	// standalone) with its refresh token, storing each rotated refresh token.
	GrantRefreshToken Grant = iota + 1
	// GrantClientCredentials is SMART Backend Services: each "refresh" is a
	// new client_credentials grant with a JWT client assertion.
	GrantClientCredentials
)

// TokenSourceOptions configure a TokenSource.
type TokenSourceOptions struct {
	Client     ClientConfig
	Grant      Grant
	Vault      *Vault        // required: where tokens live (encrypted)
	Discoverer *Discoverer   // required: token endpoint discovery
	Keys       *KeyManager   // required for private_key_jwt
	HTTPClient *http.Client  // token requests (default: 30s timeout)
	Skew       time.Duration // refresh this long before expiry (default 60s)
	Now        func() time.Time
	Logger     *slog.Logger // logs connection names, states and OAuth error codes only
}

// TokenSource supplies a connection's access tokens to the FHIR client. It
// implements fhir.Authorizer and fhir.Reauthorizer and is safe for
// concurrent use:
//
//   - a token within Skew of expiry is refreshed before use;
//   - concurrent callers needing a refresh share one token request;
//   - after a 401, Invalidate drops the rejected token and refreshes once;
//   - a rotated refresh token is stored in the same transaction as the new
//     access token;
//   - invalid_grant marks the connection "needs re-authorization" in the
//     store, and from then on every call fails fast with a
//     *ReauthorizationError without sending anything, until the connection
//     is authorized again (a new launch saves a new token).
type TokenSource struct {
	o    TokenSourceOptions
	te   *tokenEndpoint
	log  *slog.Logger
	sf   singleflight.Group
	mu   sync.Mutex
	cur  *Token
	dead *ReauthorizationError
}

// NewTokenSource returns a TokenSource for o.Client.
func NewTokenSource(o TokenSourceOptions) (*TokenSource, error) {
	if o.Vault == nil || o.Discoverer == nil {
		return nil, errors.New("smart: a token source needs a Vault and a Discoverer")
	}
	if o.Grant != GrantRefreshToken && o.Grant != GrantClientCredentials {
		return nil, errors.New("smart: a token source needs a Grant")
	}
	if o.Client.AuthMethod == "" {
		o.Client.AuthMethod = AuthNone
		if o.Keys != nil {
			o.Client.AuthMethod = AuthPrivateKeyJWT
		}
	}
	if o.Grant == GrantClientCredentials && o.Client.AuthMethod == AuthNone {
		return nil, errors.New("smart: backend services need a confidential client")
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Skew <= 0 {
		o.Skew = 60 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &TokenSource{o: o, te: &tokenEndpoint{hc: o.HTTPClient, keys: o.Keys, now: o.Now}, log: log.With("connection", o.Client.Connection)}, nil
}

func (s *TokenSource) fresh(t *Token) bool {
	return t != nil && t.AccessToken != "" && (t.ExpiresAt.IsZero() || s.o.Now().Add(s.o.Skew).Before(t.ExpiresAt))
}

// Token returns a valid access token, refreshing it when needed.
func (s *TokenSource) Token(ctx context.Context) (*Token, error) {
	s.mu.Lock()
	if s.dead != nil {
		err := s.dead
		s.mu.Unlock()
		// Fail fast without a token request; only a new authorization
		// (a launch that saved a token) revives the connection.
		st, serr := s.o.Vault.Status(ctx, s.o.Client.Connection)
		if serr != nil || st.State != store.TokenOK {
			return nil, err
		}
		s.mu.Lock()
		s.dead = nil
	}
	if t := s.cur; s.fresh(t) {
		s.mu.Unlock()
		return t, nil
	}
	s.mu.Unlock()
	return s.refresh(ctx, "")
}

// refresh runs (or joins) the single in-flight refresh. rejected is an
// access token the server refused, which must not be reused.
func (s *TokenSource) refresh(ctx context.Context, rejected Secret) (*Token, error) {
	ch := s.sf.DoChan("refresh", func() (any, error) {
		// Detached from the first caller's cancellation: the others share it.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		return s.doRefresh(rctx, rejected)
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*Token), nil
	}
}

func (s *TokenSource) doRefresh(ctx context.Context, rejected Secret) (*Token, error) {
	conn := s.o.Client.Connection
	s.mu.Lock()
	if s.dead != nil {
		s.mu.Unlock()
		return nil, s.dead
	}
	if t := s.cur; s.fresh(t) && t.AccessToken != rejected {
		s.mu.Unlock()
		return t, nil // refreshed by the flight we queued behind
	}
	s.mu.Unlock()

	stored, st, err := s.o.Vault.Load(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("loading token of %q: %w", conn, err)
	}
	if st.State == store.TokenNeedsReauthorization {
		return nil, s.kill(st.Reason)
	}
	if s.fresh(stored) && stored.AccessToken != rejected {
		s.set(stored) // another process (or a launch) stored a fresh one
		return stored, nil
	}
	cfg, err := s.o.Discoverer.Discover(ctx, s.o.Client.FHIRBaseURL)
	if err != nil {
		return nil, err
	}
	var t *Token
	switch s.o.Grant {
	case GrantClientCredentials:
		scope := s.scopes(cfg).String()
		t, err = s.te.request(ctx, s.o.Client, cfg.TokenEndpoint, url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}, scope)
		if err == nil {
			err = s.o.Vault.Save(ctx, conn, t)
		}
	default:
		if stored == nil || stored.RefreshToken == "" {
			if st.State == StateNone {
				return nil, fmt.Errorf("smart: connection %q has not been authorized yet: %w", conn, &ReauthorizationError{Connection: conn, Reason: "not_authorized"})
			}
			if err := s.o.Vault.MarkNeedsReauthorization(ctx, conn, "no_refresh_token"); err != nil {
				return nil, err
			}
			return nil, s.kill("no_refresh_token")
		}
		old := stored.RefreshToken
		t, err = s.te.request(ctx, s.o.Client, cfg.TokenEndpoint,
			url.Values{"grant_type": {"refresh_token"}, "refresh_token": {old.Reveal()}}, stored.Scope)
		if err == nil {
			if t.RefreshToken == "" {
				t.RefreshToken = old // RFC 6749 §6: the server may keep the old one
			}
			t.Context = stored.Context // launch context belongs to the authorization
			if t.IDToken == "" {
				t.IDToken = stored.IDToken
			}
			err = s.o.Vault.Update(ctx, conn, func(cur *Token, _ Status) (*Token, error) {
				if cur != nil && cur.RefreshToken != old && s.fresh(cur) {
					t = cur // someone rotated concurrently; theirs is current
					return nil, nil
				}
				return t, nil
			})
		}
	}
	if err != nil {
		if errors.Is(err, ErrInvalidGrant) {
			s.log.Warn("smart: grant refused; connection needs re-authorization", "error_code", "invalid_grant")
			if merr := s.o.Vault.MarkNeedsReauthorization(ctx, conn, "invalid_grant"); merr != nil {
				return nil, errors.Join(err, merr)
			}
			return nil, fmt.Errorf("refreshing token: %w", errors.Join(err, s.kill("invalid_grant")))
		}
		return nil, fmt.Errorf("refreshing token of %q: %w", conn, err)
	}
	s.log.Debug("smart: token refreshed", "expires_at", t.ExpiresAt)
	s.set(t)
	return t, nil
}

func (s *TokenSource) scopes(cfg *Configuration) Scopes {
	r := s.o.Client.Scopes
	if r.Style == 0 {
		r.Style = cfg.ScopeStyle()
	}
	if r.Context == "" {
		r.Context = ContextSystem
	}
	return LeastPrivilege(r)
}

func (s *TokenSource) set(t *Token) {
	s.mu.Lock()
	s.cur = t
	s.mu.Unlock()
}

func (s *TokenSource) kill(reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = nil
	s.dead = &ReauthorizationError{Connection: s.o.Client.Connection, Reason: reason}
	return s.dead
}

// Authorize implements fhir.Authorizer: it sets the bearer token.
func (s *TokenSource) Authorize(ctx context.Context, req *http.Request) error {
	t, err := s.Token(ctx)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+t.AccessToken.Reveal())
	return nil
}

// Invalidate implements fhir.Reauthorizer: the token the server rejected is
// dropped and a new one obtained (once, however many requests were
// rejected with it).
func (s *TokenSource) Invalidate(ctx context.Context, rejected *http.Request) error {
	var bad Secret
	if rejected != nil {
		if v, ok := strings.CutPrefix(rejected.Header.Get("Authorization"), "Bearer "); ok {
			bad = Secret(v)
		}
	}
	s.mu.Lock()
	if s.cur != nil && (bad == "" || s.cur.AccessToken == bad) {
		s.cur = nil
	}
	s.mu.Unlock()
	_, err := s.refresh(ctx, bad)
	return err
}

// EnsureTypes makes sure the access token was granted reading and
// searching each of types in the client's scope context (system for
// backend services), and returns the types the server does not grant
// (wholly, or only under a v2 restriction the request did not ask for).
//
// A token whose grant does not cover the types, such as one obtained and
// still valid from before the connection's types were widened, is replaced
// by a new grant before it is used (backend services; a launch's refresh
// token cannot widen its grant, so its types are only reported). A server
// that grants narrower than asked thus costs one extra token request per
// call. Bulk Data export calls this before kick-off (ingest.Grants).
func (s *TokenSource) EnsureTypes(ctx context.Context, types []string) ([]string, error) {
	if len(types) == 0 {
		return nil, nil
	}
	t, err := s.Token(ctx)
	if err != nil {
		return nil, err
	}
	missing := s.notGranted(t, types)
	if len(missing) == 0 || s.o.Grant != GrantClientCredentials {
		return missing, nil
	}
	s.log.Info("smart: the access token does not cover the requested types; requesting a new grant",
		"types", strings.Join(missing, ","))
	s.mu.Lock()
	if s.cur != nil && s.cur.AccessToken == t.AccessToken {
		s.cur = nil
	}
	s.mu.Unlock()
	if t, err = s.refresh(ctx, t.AccessToken); err != nil {
		return nil, err
	}
	missing = s.notGranted(t, types)
	if len(missing) > 0 {
		s.log.Warn("smart: the server granted narrower scopes than requested", "not_granted", strings.Join(missing, ","))
	}
	return missing, nil
}

// notGranted returns the types whose read and search t's granted scopes
// do not cover.
func (s *TokenSource) notGranted(t *Token, types []string) []string {
	granted, _ := ParseScopes(t.Scope) // a malformed scope grants nothing; the others count
	sctx := s.o.Client.Scopes.Context
	if sctx == "" {
		sctx = ContextSystem
	}
	want := LeastPrivilege(ScopeRequest{Context: sctx, Types: types, Style: V2, Restrictions: s.o.Client.Scopes.Restrictions})
	var out []string
	for _, sc := range CompareScopes(want, granted).NotGranted {
		if !slices.Contains(out, sc.Type) {
			out = append(out, sc.Type)
		}
	}
	// In the caller's order.
	slices.SortFunc(out, func(a, b string) int { return slices.Index(types, a) - slices.Index(types, b) })
	return out
}

// Status returns the connection's authorization state from the store.
func (s *TokenSource) Status(ctx context.Context) (Status, error) {
	return s.o.Vault.Status(ctx, s.o.Client.Connection)
}

var (
	_ fhir.Authorizer   = (*TokenSource)(nil)
	_ fhir.Reauthorizer = (*TokenSource)(nil)
)
