// Package logging builds ehrgate's slog loggers. Besides level and format it
// is a last line of defence for secrets: attributes whose key names a
// credential (token, secret, password, authorization, assertion, code
// verifier...) are replaced by "[redacted]" whatever their value. Callers
// still must never log tokens or patient data; this catches mistakes.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// sensitive lists key fragments whose values are never written.
var sensitive = []string{"token", "secret", "password", "passwd", "authorization", "assertion", "verifier",
	"private", "cookie", "apikey", "api_key", "kek", "dek", "credential"}

// IsSensitiveKey reports whether an attribute key names a credential.
func IsSensitiveKey(key string) bool {
	k := strings.ToLower(key)
	for _, s := range sensitive {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// New returns a logger writing to w at level ("debug", "info", "warn",
// "error") in format ("text" or "json").
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: redact}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("log format %q is not text or json", format)
	}
}

func redact(groups []string, a slog.Attr) slog.Attr {
	if IsSensitiveKey(a.Key) {
		return slog.String(a.Key, "[redacted]")
	}
	return a
}
