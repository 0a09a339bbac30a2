package smartauth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"maps"
	"slices"
	"sync"
	"time"
)

// randomToken returns 256 random bits, base64url without padding.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand documents it)
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashToken is the key a token or code is stored under: its SHA-256,
// base64url. The plaintext is never kept.
func hashToken(t string) string {
	h := sha256.Sum256([]byte(t))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// Token kinds.
const (
	kindAccess  = "access"
	kindRefresh = "refresh"
)

// tokenInfo is what the server knows about an issued token.
type tokenInfo struct {
	kind      string
	clientID  string
	scopes    []string
	patient   string
	encounter string
	user      string // username, "" for client_credentials
	fhirUser  string // relative, e.g. Practitioner/dr-smith
	issued    time.Time
	expires   time.Time
	grant     string // grant family: every token from one code or client_credentials request
	banner    bool   // need_patient_banner
	revoked   bool
}

// codeInfo is an issued authorization code.
type codeInfo struct {
	authRequest
	expires time.Time
	used    bool
	grant   string
}

// authRequest is an authorization request in progress, bound to the
// browser session that started it.
type authRequest struct {
	id            string
	session       string
	clientID      string
	redirectURI   string
	redirectGiven bool
	state         string
	scopes        []string
	nonce         string
	challenge     string
	patient       string
	encounter     string
	ehrLaunch     bool
	needPicker    bool
	user          string
	fhirUser      string
	expires       time.Time
}

// session is a browser session of the auth pages.
type session struct {
	csrf    string
	user    string
	expires time.Time
}

// launchInfo is an EHR launch context.
type launchInfo struct {
	clientID  string
	patient   string
	encounter string
	expires   time.Time
}

// store holds everything the server has issued, in memory. Keys of tokens
// and codes are hashes.
type store struct {
	mu       sync.Mutex
	tokens   map[string]*tokenInfo
	codes    map[string]*codeInfo
	grants   map[string][]string // grant → token hashes
	sessions map[string]*session
	requests map[string]*authRequest
	launches map[string]*launchInfo
	jtis     map[string]time.Time // client_id + " " + jti → expiry
	adds     int
}

func newStore() *store {
	return &store{
		tokens:   map[string]*tokenInfo{},
		codes:    map[string]*codeInfo{},
		grants:   map[string][]string{},
		sessions: map[string]*session{},
		requests: map[string]*authRequest{},
		launches: map[string]*launchInfo{},
		jtis:     map[string]time.Time{},
	}
}

// sweep drops expired entries every 256 additions. Callers hold mu.
func (st *store) sweep(now time.Time) {
	st.adds++
	if st.adds%256 != 0 {
		return
	}
	maps.DeleteFunc(st.codes, func(_ string, c *codeInfo) bool { return now.After(c.expires.Add(time.Hour)) })
	maps.DeleteFunc(st.sessions, func(_ string, s *session) bool { return now.After(s.expires) })
	maps.DeleteFunc(st.requests, func(_ string, r *authRequest) bool { return now.After(r.expires) })
	maps.DeleteFunc(st.launches, func(_ string, l *launchInfo) bool { return now.After(l.expires) })
	maps.DeleteFunc(st.jtis, func(_ string, exp time.Time) bool { return now.After(exp.Add(time.Hour)) })
	maps.DeleteFunc(st.tokens, func(h string, t *tokenInfo) bool {
		if now.After(t.expires.Add(time.Hour)) {
			st.grants[t.grant] = slices.DeleteFunc(st.grants[t.grant], func(x string) bool { return x == h })
			if len(st.grants[t.grant]) == 0 {
				delete(st.grants, t.grant)
			}
			return true
		}
		return false
	})
}

// issue stores a new token and returns its plaintext.
func (st *store) issue(t tokenInfo) string {
	plain := randomToken()
	h := hashToken(plain)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sweep(t.issued)
	st.tokens[h] = &t
	st.grants[t.grant] = append(st.grants[t.grant], h)
	return plain
}

// lookup returns a copy of the token's record, or false.
func (st *store) lookup(plain string) (tokenInfo, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	t, ok := st.tokens[hashToken(plain)]
	if !ok {
		return tokenInfo{}, false
	}
	return *t, true
}

// revoke marks one token revoked; a refresh token takes its whole grant
// with it (RFC 7009 section 2.1). It reports whether the token was known.
func (st *store) revoke(plain string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	t, ok := st.tokens[hashToken(plain)]
	if !ok {
		return false
	}
	t.revoked = true
	if t.kind == kindRefresh {
		st.revokeGrantLocked(t.grant)
	}
	return true
}

// revokeGrantLocked revokes every token of a grant. Callers hold mu.
func (st *store) revokeGrantLocked(grant string) {
	for _, h := range st.grants[grant] {
		if t := st.tokens[h]; t != nil {
			t.revoked = true
		}
	}
}

// useRefresh checks a refresh token for the client and, when rotate is
// set, revokes it in the same step, so a token can be used only once.
func (st *store) useRefresh(plain, clientID string, now time.Time, rotate bool) (tokenInfo, *Error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	t, ok := st.tokens[hashToken(plain)]
	switch {
	case !ok || t.kind != kindRefresh || t.clientID != clientID:
		return tokenInfo{}, oauthErr(ErrInvalidGrant, "refresh token is not valid for this client")
	case t.revoked:
		return tokenInfo{}, oauthErr(ErrInvalidGrant, "refresh token has been revoked or already used")
	case !now.Before(t.expires):
		return tokenInfo{}, oauthErr(ErrInvalidGrant, "refresh token expired")
	}
	if rotate {
		t.revoked = true
	}
	return *t, nil
}

// putCode stores an authorization code and returns its plaintext.
func (st *store) putCode(c codeInfo) string {
	plain := randomToken()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.codes[hashToken(plain)] = &c
	return plain
}

// useCode marks a code used and returns it. A code used before has its
// grant revoked (RFC 6749 section 4.1.2) and yields invalid_grant.
func (st *store) useCode(plain string, now time.Time) (codeInfo, *Error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	c, ok := st.codes[hashToken(plain)]
	switch {
	case !ok:
		return codeInfo{}, oauthErr(ErrInvalidGrant, "authorization code is not valid")
	case c.used:
		st.revokeGrantLocked(c.grant)
		return codeInfo{}, oauthErr(ErrInvalidGrant, "authorization code was already used; tokens issued from it are revoked")
	}
	c.used = true
	if !now.Before(c.expires) {
		return codeInfo{}, oauthErr(ErrInvalidGrant, "authorization code expired")
	}
	return *c, nil
}

// useJTI records a client assertion's jti until exp and reports false when
// it was seen before and has not expired.
func (st *store) useJTI(clientID, jti string, exp, now time.Time) bool {
	key := clientID + " " + jti
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sweep(now)
	if old, ok := st.jtis[key]; ok && !now.After(old) {
		return false
	}
	st.jtis[key] = exp
	return true
}

// newSession starts a browser session and returns its id.
func (st *store) newSession(now time.Time) (string, *session) {
	id := randomToken()
	s := &session{csrf: randomToken(), expires: now.Add(time.Hour)}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sweep(now)
	st.sessions[id] = s
	return id, s
}

// session returns a copy of a live session.
func (st *store) session(id string, now time.Time) (session, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.sessions[id]
	if !ok || now.After(s.expires) {
		return session{}, false
	}
	return *s, true
}

// rotateSession replaces a session by a new one for the logged-in user,
// with a new id and CSRF token, and moves its requests over.
func (st *store) rotateSession(old, user string, now time.Time) (string, *session) {
	id := randomToken()
	s := &session{csrf: randomToken(), user: user, expires: now.Add(time.Hour)}
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.sessions, old)
	st.sessions[id] = s
	for _, r := range st.requests {
		if r.session == old {
			r.session = id
		}
	}
	cp := *s
	return id, &cp
}

// putRequest stores an authorization request in progress.
func (st *store) putRequest(r *authRequest) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.requests[r.id] = r
}

// request returns a copy of a live authorization request of the session.
func (st *store) request(id, sessionID string, now time.Time) (authRequest, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	r, ok := st.requests[id]
	if !ok || r.session != sessionID || now.After(r.expires) {
		return authRequest{}, false
	}
	return *r, true
}

// updateRequest applies f to a stored request.
func (st *store) updateRequest(id string, f func(*authRequest)) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if r, ok := st.requests[id]; ok {
		f(r)
	}
}

// takeRequest removes and returns a request (it ends in a code or an
// error).
func (st *store) takeRequest(id, sessionID string, now time.Time) (authRequest, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	r, ok := st.requests[id]
	if !ok || r.session != sessionID || now.After(r.expires) {
		return authRequest{}, false
	}
	delete(st.requests, id)
	return *r, true
}

// putLaunch stores an EHR launch context and returns its id.
func (st *store) putLaunch(l launchInfo) string {
	id := randomToken()[:24]
	st.mu.Lock()
	defer st.mu.Unlock()
	st.launches[id] = &l
	return id
}

// takeLaunch consumes a launch id, valid once, for its client only, before
// it expires.
func (st *store) takeLaunch(id, clientID string, now time.Time) (launchInfo, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	l, ok := st.launches[id]
	if !ok || l.clientID != clientID {
		return launchInfo{}, false
	}
	delete(st.launches, id)
	if now.After(l.expires) {
		return launchInfo{}, false
	}
	return *l, true
}
