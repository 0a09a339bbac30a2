package smartauth

import (
	"bytes"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a bytes.Buffer safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLogsCarryNoSecrets runs every flow with debug logging and checks no
// token, code, secret, password or assertion reaches the log.
func TestLogsCarryNoSecrets(t *testing.T) {
	var logs lockedBuffer
	e := newEnv(t, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.RotateRefreshTokens = true
	})
	var secrets []string
	code, v := e.standalone(secretApp, "s3cret", "launch/patient openid fhirUser patient/*.rs offline_access", "p1")
	secrets = append(secrets, code, v, "s3cret", "password")
	_, tok := e.tokenForm(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {v},
		"redirect_uri": {e.app.URL + "/callback"}}, secretApp, "s3cret")
	at, rt := tok["access_token"].(string), tok["refresh_token"].(string)
	secrets = append(secrets, at, rt, tok["id_token"].(string))
	e.tokenForm(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {v}}, secretApp, "s3cret") // replay
	e.tokenForm(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, secretApp, "wrong")
	a := e.assertion(e.rsaAssertion())
	secrets = append(secrets, a)
	_, out := e.tokenForm(backendForm(a, "system/*.rs"), "", "")
	secrets = append(secrets, out["access_token"].(string))
	e.tokenForm(backendForm(a, "system/*.rs"), "", "") // jti replay
	e.fhirGet("/fhir/Observation", at)
	e.fhirGet("/fhir/Observation", "not-a-token-but-secret")
	secrets = append(secrets, "not-a-token-but-secret")
	e.postJSON(e.auth.introspectURL(), url.Values{"token": {at}}, secretApp, "s3cret")
	e.postJSON(e.auth.revokeURL(), url.Values{"token": {at}}, secretApp, "s3cret")

	got := logs.String()
	if !strings.Contains(got, "token issued") {
		t.Fatalf("the log is missing the flows: %s", got)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(got, s) {
			t.Errorf("the log contains a secret (%.12s...)", s)
		}
	}
}
