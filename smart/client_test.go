package smart

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestOAuthErrorIs(t *testing.T) {
	cases := []struct {
		body   string
		status int
		is     error
	}{
		{`{"error":"invalid_grant","error_description":"expired"}`, 400, ErrInvalidGrant},
		{`{"error":"invalid_client"}`, 401, ErrInvalidClient},
		{`{"error":"invalid_scope"}`, 400, ErrInvalidScope},
		{`{"error":"unauthorized_client"}`, 400, ErrUnauthorizedClient},
	}
	for _, c := range cases {
		err := decodeOAuthError(c.status, []byte(c.body))
		var oe *OAuthError
		if !errors.Is(err, c.is) || !errors.As(err, &oe) || oe.StatusCode != c.status {
			t.Errorf("decodeOAuthError(%s) = %v, want Is %v", c.body, err, c.is)
		}
		if errors.Is(err, ErrServerError) {
			t.Errorf("%v matches the wrong sentinel", err)
		}
	}
	err := decodeOAuthError(502, []byte(`<html>access_token=leaky</html>`))
	var oe *OAuthError
	if errors.As(err, &oe) || strings.Contains(err.Error(), "leaky") {
		t.Errorf("non-OAuth error body: %v", err)
	}
}

func TestDecodeTokenResponse(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tok, err := decodeTokenResponse([]byte(`{"access_token":"a","token_type":"Bearer","expires_in":3600,"patient":"p","fhirContext":[{"reference":"Encounter/1"}]}`), now, "patient/Patient.rs")
	if err != nil || !tok.ExpiresAt.Equal(now.Add(time.Hour)) || tok.Scope != "patient/Patient.rs" || tok.Context.Patient != "p" || len(tok.Context.FHIRContext) != 1 {
		t.Fatalf("decodeTokenResponse = %v, %v", tok, err)
	}
	for _, bad := range []string{
		`{"token_type":"Bearer"}`,
		`{"access_token":"a","token_type":"mac"}`,
		`{"access_token":"a","token_type":"bearer","expires_in":-1}`,
		`{"access_token":"secret-value","token_type":"bearer","expires_in":"soon"}`,
		`not json secret-value`,
	} {
		_, err := decodeTokenResponse([]byte(bad), now, "")
		if err == nil || strings.Contains(err.Error(), "secret-value") {
			t.Errorf("decodeTokenResponse(%s) error = %v (must fail without echoing the body)", bad, err)
		}
	}
}

func FuzzTokenResponse(f *testing.F) {
	f.Add([]byte(`{"access_token":"a","token_type":"Bearer","expires_in":3600,"refresh_token":"r","scope":"openid","patient":"p"}`))
	f.Add([]byte(`{"error":"invalid_grant"}`))
	f.Add([]byte(`{"access_token":"a","token_type":"bearer","expires_in":1e400}`))
	f.Add([]byte(`{"access_token":"a","token_type":"bearer","expires_in":9223372036854775807}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		now := time.Unix(0, 0)
		if tok, err := decodeTokenResponse(b, now, ""); err == nil {
			if tok.AccessToken == "" || tok.ExpiresAt.Before(now) && !tok.ExpiresAt.IsZero() {
				t.Fatalf("accepted %q as %v", b, tok)
			}
		} else if len(b) > 8 && strings.Contains(err.Error(), string(b)) {
			t.Fatalf("error echoes the body: %v", err)
		}
		_ = decodeOAuthError(400, b)
	})
}
