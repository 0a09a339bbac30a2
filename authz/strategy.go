package authz

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
)

// session is what a grant remembers between its requests: who, for which
// app, which patient, and the tokens' expiry. It is stored as JSON in the
// grant's records and holds no token.
type session struct {
	Subject  string `json:"sub"`
	ClientID string `json:"client_id"`
	FHIRUser string `json:"fhir_user,omitempty"`
	// Patient is the patient in context as the API names it
	// (fhirapi.ServedID); PatientConnection and PatientID are its source,
	// for the audit trail.
	Patient           string                         `json:"patient,omitempty"`
	PatientConnection string                         `json:"patient_connection,omitempty"`
	PatientID         string                         `json:"patient_id,omitempty"`
	Expires           map[fosite.TokenType]time.Time `json:"expires,omitempty"`
	// OnlineOnly: the grant has online_access and not offline_access, so
	// its refresh tokens live Options.OnlineRefreshTTL at most.
	OnlineOnly bool `json:"online_only,omitempty"`
	// JTI is the id of the access token issued last with this session
	// (set by the strategy, read by the storage to index it).
	JTI string `json:"jti,omitempty"`
}

// SetExpiresAt implements fosite.Session.
func (s *session) SetExpiresAt(t fosite.TokenType, exp time.Time) {
	if s.Expires == nil {
		s.Expires = map[fosite.TokenType]time.Time{}
	}
	s.Expires[t] = exp
}

// GetExpiresAt implements fosite.Session.
func (s *session) GetExpiresAt(t fosite.TokenType) time.Time { return s.Expires[t] }

// GetUsername implements fosite.Session.
func (s *session) GetUsername() string { return s.Subject }

// GetSubject implements fosite.Session.
func (s *session) GetSubject() string { return s.Subject }

// Clone implements fosite.Session.
func (s *session) Clone() fosite.Session {
	c := *s
	c.Expires = make(map[fosite.TokenType]time.Time, len(s.Expires))
	for k, v := range s.Expires {
		c.Expires[k] = v
	}
	return &c
}

// strategy makes and checks tokens for fosite: access tokens are JWTs
// signed with the server's key; authorization codes and refresh tokens are
// random strings whose "signature" (the name they are stored under) is
// their SHA-256, so the store never holds one.
type strategy struct{ s *Server }

const (
	codePrefix    = "egc_"
	refreshPrefix = "egr_"
)

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("authz: crypto/rand failed: " + err.Error()) // never returns an error (Go 1.24+)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func opaque(prefix string) (token, signature string) {
	token = prefix + randomString(32)
	return token, sha256Hex(token)
}

func opaqueSignature(prefix, token string) string {
	if !strings.HasPrefix(token, prefix) {
		return "" // no record is stored under ""
	}
	return sha256Hex(token)
}

func checkExpiry(r fosite.Requester, t fosite.TokenType) error {
	sess, ok := r.GetSession().(*session)
	if !ok {
		return fosite.ErrServerError.WithDebug("unexpected session type")
	}
	exp := sess.GetExpiresAt(t)
	if exp.IsZero() || time.Now().After(exp) {
		return fosite.ErrTokenExpired
	}
	return nil
}

// AccessTokenSignature implements oauth2.AccessTokenStrategy: the JWT's
// signature part.
func (st *strategy) AccessTokenSignature(_ context.Context, token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	return parts[2]
}

// accessClaims are the SMART claims of an access token besides the
// registered ones.
type accessClaims struct {
	Scope    string `json:"scope"`
	ClientID string `json:"client_id"`
	Patient  string `json:"patient,omitempty"`
	FHIRUser string `json:"fhirUser,omitempty"`
}

// GenerateAccessToken implements oauth2.AccessTokenStrategy.
func (st *strategy) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	sess, ok := r.GetSession().(*session)
	if !ok {
		return "", "", errors.New("unexpected session type")
	}
	key, _, err := st.s.keys.load(ctx)
	if err != nil {
		return "", "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(key.Algorithm), Key: key},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		return "", "", err
	}
	now := st.s.o.Now()
	exp := sess.GetExpiresAt(fosite.AccessToken)
	if exp.IsZero() || exp.After(now.Add(st.s.o.TokenTTL)) {
		exp = now.Add(st.s.o.TokenTTL)
	}
	jti := randomString(18)
	c := jwt.Claims{
		Issuer:   st.s.o.Issuer,
		Subject:  sess.Subject,
		Audience: jwt.Audience{st.s.o.Audience},
		Expiry:   jwt.NewNumericDate(exp),
		IssuedAt: jwt.NewNumericDate(now),
		ID:       jti,
	}
	extra := accessClaims{Scope: strings.Join(r.GetGrantedScopes(), " "), ClientID: r.GetClient().GetID(),
		Patient: sess.Patient, FHIRUser: sess.FHIRUser}
	tok, err := jwt.Signed(signer).Claims(c).Claims(extra).Serialize()
	if err != nil {
		return "", "", err
	}
	sess.JTI = jti
	sess.SetExpiresAt(fosite.AccessToken, exp)
	return tok, st.AccessTokenSignature(ctx, tok), nil
}

// ValidateAccessToken implements oauth2.AccessTokenStrategy: the signature
// by one of the server's keys and the expiry (introspection).
func (st *strategy) ValidateAccessToken(ctx context.Context, _ fosite.Requester, token string) error {
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES384})
	if err != nil {
		return fosite.ErrInvalidTokenFormat
	}
	_, set, err := st.s.keys.load(ctx)
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	keys := set.Key(tok.Headers[0].KeyID)
	for _, k := range keys {
		var c jwt.Claims
		if err := tok.Claims(k.Key, &c); err != nil {
			continue
		}
		if err := c.ValidateWithLeeway(jwt.Expected{Issuer: st.s.o.Issuer, Time: st.s.o.Now()}, 0); err != nil {
			return fosite.ErrTokenExpired
		}
		return nil
	}
	return fosite.ErrTokenSignatureMismatch
}

// RefreshTokenSignature implements oauth2.RefreshTokenStrategy.
func (st *strategy) RefreshTokenSignature(_ context.Context, token string) string {
	return opaqueSignature(refreshPrefix, token)
}

// GenerateRefreshToken implements oauth2.RefreshTokenStrategy.
func (st *strategy) GenerateRefreshToken(context.Context, fosite.Requester) (string, string, error) {
	t, sig := opaque(refreshPrefix)
	return t, sig, nil
}

// ValidateRefreshToken implements oauth2.RefreshTokenStrategy: the
// record was found under the token's hash; it must not have expired.
func (st *strategy) ValidateRefreshToken(_ context.Context, r fosite.Requester, _ string) error {
	return checkExpiry(r, fosite.RefreshToken)
}

// AuthorizeCodeSignature implements oauth2.AuthorizeCodeStrategy.
func (st *strategy) AuthorizeCodeSignature(_ context.Context, token string) string {
	return opaqueSignature(codePrefix, token)
}

// GenerateAuthorizeCode implements oauth2.AuthorizeCodeStrategy.
func (st *strategy) GenerateAuthorizeCode(context.Context, fosite.Requester) (string, string, error) {
	t, sig := opaque(codePrefix)
	return t, sig, nil
}

// ValidateAuthorizeCode implements oauth2.AuthorizeCodeStrategy.
func (st *strategy) ValidateAuthorizeCode(_ context.Context, r fosite.Requester, _ string) error {
	return checkExpiry(r, fosite.AuthorizeCode)
}

var _ oauth2.CoreStrategy = (*strategy)(nil)
var _ fosite.Session = (*session)(nil)
