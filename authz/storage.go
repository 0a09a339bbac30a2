package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"

	"ehrgate/clients"
	"ehrgate/secrets"
	"ehrgate/store"
)

// Document kinds of the authorization server's state (store.Documents).
// Names are SHA-256 hashes (hex) of codes, tokens' signatures and jtis;
// a family is named by fosite's request id.
const (
	kindKeys      = "authz-keys"      // the token-signing keys (private halves sealed)
	kindCode      = "authz-code"      // authorization codes
	kindPKCE      = "authz-pkce"      // a code's PKCE challenge
	kindAccess    = "authz-access"    // issued access tokens (for introspection and revocation)
	kindRefresh   = "authz-refresh"   // refresh tokens, active or rotated
	kindFamily    = "authz-family"    // one grant: its access-token jtis and refresh tokens
	kindRevoked   = "authz-revoked"   // revoked access-token jtis, until they expire
	kindAssertion = "authz-assertion" // client-assertion jtis seen, until they expire
	kindPending   = "authz-pending"   // patient-picker requests (CSRF tokens)
)

// usedKeep is how long a used code or a rotated refresh token is kept
// beyond its expiry, so that its reuse is recognized (and the grant
// revoked) rather than unknown.
const usedKeep = 24 * time.Hour

func hashName(s string) string { return sha256Hex(s) }

// storedRequest is a fosite request at rest: no client object (looked up
// again by id), only the form values the flows read later.
type storedRequest struct {
	ID              string     `json:"id"`
	RequestedAt     time.Time  `json:"requested_at"`
	ClientID        string     `json:"client_id"`
	Scopes          []string   `json:"scopes,omitempty"`
	GrantedScopes   []string   `json:"granted_scopes,omitempty"`
	Audience        []string   `json:"audience,omitempty"`
	GrantedAudience []string   `json:"granted_audience,omitempty"`
	Form            url.Values `json:"form,omitempty"`
	// SealedSession is the session, sealed with the keyring (it names the patient in
	// context; Documents hold no patient data in the clear).
	SealedSession store.Sealed `json:"session"`
}

// record is one stored code or token.
type record struct {
	Request storedRequest `json:"request"`
	Active  bool          `json:"active"`
	JTI     string        `json:"jti,omitempty"` // access tokens
	Expires time.Time     `json:"expires"`       // when the record may be purged
}

// family is one grant (fosite request id): every access token and refresh
// token issued under it, so that all can be revoked together.
type family struct {
	JTIs    []jtiExp  `json:"jtis,omitempty"`
	Access  []string  `json:"access,omitempty"`  // kindAccess names
	Refresh []string  `json:"refresh,omitempty"` // kindRefresh names
	Revoked bool      `json:"revoked,omitempty"`
	Expires time.Time `json:"expires"`
}

type jtiExp struct {
	JTI     string    `json:"jti"`
	Expires time.Time `json:"exp"`
}

// formKept are the request parameters later steps read.
var formKept = []string{"redirect_uri", "code_challenge", "code_challenge_method"}

// storage implements the storage fosite's flows need over
// store.Documents.
type storage struct{ s *Server }

func (st *storage) docs() store.Documents { return st.s.o.Docs }

func sessionAAD(requestID string) []byte { return secrets.AAD(requestID, "authz-session") }

// toStored returns r at rest, and its session.
func (st *storage) toStored(r fosite.Requester) (storedRequest, *session, error) {
	sess, ok := r.GetSession().(*session)
	if !ok {
		return storedRequest{}, nil, fmt.Errorf("unexpected session type %T", r.GetSession())
	}
	plain, err := json.Marshal(sess)
	if err != nil {
		return storedRequest{}, nil, err
	}
	sealed, err := st.s.o.Keyring.Seal(plain, sessionAAD(r.GetID()))
	if err != nil {
		return storedRequest{}, nil, fmt.Errorf("sealing a session: %w", err)
	}
	form := url.Values{}
	for _, k := range formKept {
		if v := r.GetRequestForm().Get(k); v != "" {
			form.Set(k, v)
		}
	}
	return storedRequest{ID: r.GetID(), RequestedAt: r.GetRequestedAt(), ClientID: r.GetClient().GetID(),
		Scopes: r.GetRequestedScopes(), GrantedScopes: r.GetGrantedScopes(),
		Audience: r.GetRequestedAudience(), GrantedAudience: r.GetGrantedAudience(), Form: form,
		SealedSession: store.Sealed(sealed)}, sess, nil
}

// fromStored rebuilds a request; into, when it is a *session, is filled
// with the stored session (fosite hydrates the session it passes).
func (st *storage) fromStored(ctx context.Context, sr storedRequest, into fosite.Session) (*fosite.Request, error) {
	c, err := st.GetClient(ctx, sr.ClientID)
	if err != nil {
		return nil, err
	}
	plain, err := st.s.o.Keyring.Open(secrets.Sealed(sr.SealedSession), sessionAAD(sr.ID))
	if err != nil {
		return nil, fmt.Errorf("opening a session: %w", err)
	}
	var stored session
	if err := json.Unmarshal(plain, &stored); err != nil {
		return nil, fmt.Errorf("decoding a session: %w", err)
	}
	sess, ok := into.(*session)
	if !ok || sess == nil {
		sess = &session{}
	}
	// fosite hydrates a session twice in one token request (handle, then
	// populate); expiries it set in between are kept.
	kept := sess.Expires
	*sess = stored
	for t, exp := range kept {
		sess.SetExpiresAt(t, exp)
	}
	return &fosite.Request{ID: sr.ID, RequestedAt: sr.RequestedAt, Client: c,
		RequestedScope: sr.Scopes, GrantedScope: sr.GrantedScopes,
		RequestedAudience: sr.Audience, GrantedAudience: sr.GrantedAudience,
		Form: sr.Form, Session: sess}, nil
}

func (st *storage) put(ctx context.Context, kind, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return st.docs().UpdateDocument(ctx, kind, name, func([]byte) ([]byte, error) { return b, nil })
}

func (st *storage) getRecord(ctx context.Context, kind, name string) (record, error) {
	d, err := st.docs().GetDocument(ctx, kind, name)
	if errors.Is(err, store.ErrNotFound) {
		return record{}, fosite.ErrNotFound
	}
	if err != nil {
		return record{}, err
	}
	var r record
	if err := json.Unmarshal(d.Body, &r); err != nil {
		return record{}, fmt.Errorf("decoding %s record: %w", kind, err)
	}
	return r, nil
}

func (st *storage) deleteDoc(ctx context.Context, kind, name string) error {
	_, err := st.docs().DeleteDocument(ctx, kind, name)
	return err
}

// updateRecord runs fn on the record atomically; fosite.ErrNotFound when
// there is none.
func (st *storage) updateRecord(ctx context.Context, kind, name string, fn func(*record) error) error {
	return st.docs().UpdateDocument(ctx, kind, name, func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, fosite.ErrNotFound
		}
		var r record
		if err := json.Unmarshal(old, &r); err != nil {
			return nil, err
		}
		if err := fn(&r); err != nil {
			return nil, err
		}
		return json.Marshal(r)
	})
}

func (st *storage) updateFamily(ctx context.Context, id string, fn func(*family)) error {
	return st.docs().UpdateDocument(ctx, kindFamily, id, func(old []byte) ([]byte, error) {
		var f family
		if old != nil {
			if err := json.Unmarshal(old, &f); err != nil {
				return nil, err
			}
		}
		fn(&f)
		if f.Expires.IsZero() {
			f.Expires = st.s.o.Now().Add(usedKeep)
		}
		return json.Marshal(f)
	})
}

// GetClient implements fosite.ClientManager.
func (st *storage) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := st.s.o.Clients.Get(ctx, id)
	if errors.Is(err, clients.ErrNotFound) {
		return nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if c.CDS {
		return nil, fosite.ErrNotFound // CDS clients call ehrgate's CDS services, not its API
	}
	return &appClient{c: c, audience: st.s.o.Audience}, nil
}

// ClientAssertionJWTValid implements fosite.ClientManager (unused: our
// client authentication strategy records assertions itself).
func (st *storage) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	_, err := st.docs().GetDocument(ctx, kindAssertion, hashName(jti))
	if err == nil {
		return fosite.ErrJTIKnown
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// SetClientAssertionJWT implements fosite.ClientManager.
func (st *storage) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	return st.put(ctx, kindAssertion, hashName(jti), record{Expires: exp})
}

// CreateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
func (st *storage) CreateAuthorizeCodeSession(ctx context.Context, sig string, r fosite.Requester) error {
	sr, sess, err := st.toStored(r)
	if err != nil {
		return err
	}
	exp := sess.GetExpiresAt(fosite.AuthorizeCode)
	return st.put(ctx, kindCode, hashName(sig), record{Request: sr, Active: true, Expires: exp.Add(usedKeep)})
}

// GetAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage: a used
// code returns its request with fosite.ErrInvalidatedAuthorizeCode, so that
// fosite revokes what it issued.
func (st *storage) GetAuthorizeCodeSession(ctx context.Context, sig string, sess fosite.Session) (fosite.Requester, error) {
	if sig == "" {
		return nil, fosite.ErrNotFound
	}
	rec, err := st.getRecord(ctx, kindCode, hashName(sig))
	if err != nil {
		return nil, err
	}
	req, err := st.fromStored(ctx, rec.Request, sess)
	if err != nil {
		return nil, err
	}
	if !rec.Active {
		return req, fosite.ErrInvalidatedAuthorizeCode
	}
	return req, nil
}

// InvalidateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage,
// atomically: of two concurrent uses of a code only one gets past here;
// the other revokes what the first issued.
func (st *storage) InvalidateAuthorizeCodeSession(ctx context.Context, sig string) error {
	var reused string
	err := st.updateRecord(ctx, kindCode, hashName(sig), func(r *record) error {
		if !r.Active {
			reused = r.Request.ID
			return fosite.ErrInvalidatedAuthorizeCode
		}
		r.Active = false
		return nil
	})
	if reused != "" {
		return errors.Join(err, st.revokeFamily(ctx, reused))
	}
	return err
}

// CreatePKCERequestSession implements pkce.PKCERequestStorage.
func (st *storage) CreatePKCERequestSession(ctx context.Context, sig string, r fosite.Requester) error {
	sr, sess, err := st.toStored(r)
	if err != nil {
		return err
	}
	return st.put(ctx, kindPKCE, hashName(sig), record{Request: sr, Active: true, Expires: sess.GetExpiresAt(fosite.AuthorizeCode)})
}

// GetPKCERequestSession implements pkce.PKCERequestStorage.
func (st *storage) GetPKCERequestSession(ctx context.Context, sig string, sess fosite.Session) (fosite.Requester, error) {
	if sig == "" {
		return nil, fosite.ErrNotFound
	}
	rec, err := st.getRecord(ctx, kindPKCE, hashName(sig))
	if err != nil {
		return nil, err
	}
	return st.fromStored(ctx, rec.Request, &session{})
}

// DeletePKCERequestSession implements pkce.PKCERequestStorage.
func (st *storage) DeletePKCERequestSession(ctx context.Context, sig string) error {
	return st.deleteDoc(ctx, kindPKCE, hashName(sig))
}

// CreateAccessTokenSession implements oauth2.AccessTokenStorage: the
// token's jti joins its family, so revoking the family revokes it.
func (st *storage) CreateAccessTokenSession(ctx context.Context, sig string, r fosite.Requester) error {
	sr, sess, err := st.toStored(r)
	if err != nil {
		return err
	}
	jti := sess.JTI
	exp := sess.GetExpiresAt(fosite.AccessToken)
	name := hashName(sig)
	if err := st.put(ctx, kindAccess, name, record{Request: sr, Active: true, JTI: jti, Expires: exp}); err != nil {
		return err
	}
	revoked := false
	now := st.s.o.Now()
	err = st.updateFamily(ctx, sr.ID, func(f *family) {
		// Expired access tokens need no revocation: dropped, so that a
		// long-lived grant's record does not grow with every refresh.
		if len(f.JTIs) == len(f.Access) {
			keep := 0
			for i := range f.JTIs {
				if f.JTIs[i].Expires.After(now) {
					f.JTIs[keep], f.Access[keep] = f.JTIs[i], f.Access[i]
					keep++
				}
			}
			f.JTIs, f.Access = f.JTIs[:keep], f.Access[:keep]
		}
		f.JTIs = append(f.JTIs, jtiExp{JTI: jti, Expires: exp})
		f.Access = append(f.Access, name)
		f.Expires = later(f.Expires, exp)
		revoked = f.Revoked
	})
	if err != nil {
		return err
	}
	if revoked { // revoked meanwhile (a concurrent reuse): this one too
		return errors.Join(st.put(ctx, kindRevoked, hashName(jti), record{Expires: exp}), fosite.ErrInactiveToken)
	}
	return nil
}

// GetAccessTokenSession implements oauth2.AccessTokenStorage.
func (st *storage) GetAccessTokenSession(ctx context.Context, sig string, sess fosite.Session) (fosite.Requester, error) {
	if sig == "" {
		return nil, fosite.ErrNotFound
	}
	rec, err := st.getRecord(ctx, kindAccess, hashName(sig))
	if err != nil {
		return nil, err
	}
	if revoked, err := st.s.Revoked(ctx, rec.JTI); err != nil {
		return nil, err
	} else if revoked {
		return nil, fosite.ErrNotFound
	}
	return st.fromStored(ctx, rec.Request, sess)
}

// DeleteAccessTokenSession implements oauth2.AccessTokenStorage.
func (st *storage) DeleteAccessTokenSession(ctx context.Context, sig string) error {
	return st.deleteDoc(ctx, kindAccess, hashName(sig))
}

// CreateRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (st *storage) CreateRefreshTokenSession(ctx context.Context, sig, _ string, r fosite.Requester) error {
	sr, sess, err := st.toStored(r)
	if err != nil {
		return err
	}
	name := hashName(sig)
	exp := sess.GetExpiresAt(fosite.RefreshToken)
	if err := st.put(ctx, kindRefresh, name, record{Request: sr, Active: true, Expires: exp.Add(usedKeep)}); err != nil {
		return err
	}
	return st.updateFamily(ctx, sr.ID, func(f *family) {
		f.Refresh = append(f.Refresh, name)
		f.Expires = later(f.Expires, exp.Add(usedKeep))
	})
}

// GetRefreshTokenSession implements oauth2.RefreshTokenStorage: a rotated
// token returns its request with fosite.ErrInactiveToken, so that fosite
// revokes its family.
func (st *storage) GetRefreshTokenSession(ctx context.Context, sig string, sess fosite.Session) (fosite.Requester, error) {
	if sig == "" {
		return nil, fosite.ErrNotFound
	}
	rec, err := st.getRecord(ctx, kindRefresh, hashName(sig))
	if err != nil {
		return nil, err
	}
	req, err := st.fromStored(ctx, rec.Request, sess)
	if err != nil {
		return nil, err
	}
	if !rec.Active {
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

// DeleteRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (st *storage) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	return st.deleteDoc(ctx, kindRefresh, hashName(sig))
}

// RotateRefreshToken implements oauth2.RefreshTokenStorage: the used
// refresh token becomes inactive (kept, so that its reuse is recognized).
// Two concurrent uses: the second finds it inactive and revokes the
// family.
func (st *storage) RotateRefreshToken(ctx context.Context, requestID, sig string) error {
	reused := false
	err := st.updateRecord(ctx, kindRefresh, hashName(sig), func(r *record) error {
		if !r.Active {
			reused = true
			return fosite.ErrInactiveToken
		}
		r.Active = false
		return nil
	})
	if reused {
		return errors.Join(err, st.revokeFamily(ctx, requestID))
	}
	return err
}

// RevokeRefreshToken implements oauth2.TokenRevocationStorage: every
// refresh token of the grant is deleted.
func (st *storage) RevokeRefreshToken(ctx context.Context, requestID string) error {
	var names []string
	err := st.updateFamily(ctx, requestID, func(f *family) {
		f.Revoked = true
		names = slices.Clone(f.Refresh)
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		errs = append(errs, st.deleteDoc(ctx, kindRefresh, n))
	}
	return errors.Join(errs...)
}

// RevokeAccessToken implements oauth2.TokenRevocationStorage: every access
// token of the grant has its jti revoked (apiauth refuses it) and its
// record deleted.
func (st *storage) RevokeAccessToken(ctx context.Context, requestID string) error {
	var f0 family
	err := st.updateFamily(ctx, requestID, func(f *family) {
		f.Revoked = true
		f0 = *f
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, j := range f0.JTIs {
		errs = append(errs, st.put(ctx, kindRevoked, hashName(j.JTI), record{Expires: j.Expires}))
	}
	for _, n := range f0.Access {
		errs = append(errs, st.deleteDoc(ctx, kindAccess, n))
	}
	return errors.Join(errs...)
}

func (st *storage) revokeFamily(ctx context.Context, requestID string) error {
	return errors.Join(st.RevokeAccessToken(ctx, requestID), st.RevokeRefreshToken(ctx, requestID))
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Purge deletes the state that has expired: codes, tokens' records,
// families, revoked jtis, assertion jtis and picker requests. Run it now
// and then (an hourly job); it returns how many documents it deleted.
func (s *Server) Purge(ctx context.Context) (int, error) {
	now := s.o.Now()
	n := 0
	for _, kind := range []string{kindCode, kindPKCE, kindAccess, kindRefresh, kindFamily, kindRevoked, kindAssertion, kindPending} {
		names, err := s.o.Docs.ListDocuments(ctx, kind)
		if err != nil {
			return n, fmt.Errorf("purging %s: %w", kind, err)
		}
		for _, name := range names {
			d, err := s.o.Docs.GetDocument(ctx, kind, name)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return n, fmt.Errorf("purging %s: %w", kind, err)
			}
			var e struct {
				Expires time.Time `json:"expires"`
			}
			if json.Unmarshal(d.Body, &e) == nil && !e.Expires.IsZero() && now.After(e.Expires) {
				if ok, err := s.o.Docs.DeleteDocument(ctx, kind, name); err != nil {
					return n, fmt.Errorf("purging %s: %w", kind, err)
				} else if ok {
					n++
				}
			}
		}
	}
	return n, nil
}

// Interface guards.
var (
	_ fosite.Storage                = (*storage)(nil)
	_ oauth2.CoreStorage            = (*storage)(nil)
	_ oauth2.TokenRevocationStorage = (*storage)(nil)
	_ pkce.PKCERequestStorage       = (*storage)(nil)
)
