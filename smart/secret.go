package smart

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// Secret is a credential (token, client secret, code) that never prints:
// String, GoString, every fmt verb and slog show "[redacted]". Reveal
// returns the value for the one place that must send it.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (s Secret) GoString() string { return redacted }

// Format implements fmt.Formatter for every verb.
func (s Secret) Format(f fmt.State, _ rune) { fmt.Fprint(f, redacted) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON keeps secrets out of accidental JSON encodings (API output,
// debug dumps). Persistence uses tokenRecord, which reveals on purpose.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// LaunchContext is the context an authorization server returns beside the
// access token (SMART App Launch 2.x, "Launch context arrives with your
// access token").
type LaunchContext struct {
	Patient           string            `json:"patient,omitempty"`
	Encounter         string            `json:"encounter,omitempty"`
	FHIRUser          string            `json:"fhirUser,omitempty"` // from the verified id_token
	NeedPatientBanner bool              `json:"need_patient_banner,omitempty"`
	SMARTStyleURL     string            `json:"smart_style_url,omitempty"`
	Intent            string            `json:"intent,omitempty"`
	Tenant            string            `json:"tenant,omitempty"`
	FHIRContext       []json.RawMessage `json:"fhirContext,omitempty"`
}

// Token is a connection's token set. Its secret fields are Secrets, and
// Token itself formats and logs without them.
type Token struct {
	AccessToken  Secret
	RefreshToken Secret
	IDToken      Secret
	TokenType    string
	Scope        string // scopes granted, space-separated, as the server sent them
	ExpiresAt    time.Time
	Context      LaunchContext
}

// LogValue implements slog.LogValuer: only non-secret fields.
func (t *Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("token_type", t.TokenType),
		slog.Time("expires_at", t.ExpiresAt),
		slog.Bool("has_refresh_token", t.RefreshToken != ""),
		slog.String("scope", t.Scope),
	)
}

// String implements fmt.Stringer without secrets.
func (t *Token) String() string {
	return fmt.Sprintf("Token{type=%s expires=%s refresh=%t scope=%q}", t.TokenType, t.ExpiresAt.Format(time.RFC3339), t.RefreshToken != "", t.Scope)
}

// GoString implements fmt.GoStringer without secrets.
func (t *Token) GoString() string { return t.String() }

// Format implements fmt.Formatter without secrets for every verb.
func (t *Token) Format(f fmt.State, _ rune) { fmt.Fprint(f, t.String()) }

// tokenRecord is the plaintext persisted (encrypted) for a connection.
type tokenRecord struct {
	AccessToken  string        `json:"access_token"`
	RefreshToken string        `json:"refresh_token,omitempty"`
	IDToken      string        `json:"id_token,omitempty"`
	TokenType    string        `json:"token_type"`
	Scope        string        `json:"scope,omitempty"`
	ExpiresAt    time.Time     `json:"expires_at"`
	Context      LaunchContext `json:"context"`
}

func (t *Token) record() tokenRecord {
	return tokenRecord{t.AccessToken.Reveal(), t.RefreshToken.Reveal(), t.IDToken.Reveal(), t.TokenType, t.Scope, t.ExpiresAt, t.Context}
}

func (r tokenRecord) token() *Token {
	return &Token{Secret(r.AccessToken), Secret(r.RefreshToken), Secret(r.IDToken), r.TokenType, r.Scope, r.ExpiresAt, r.Context}
}
