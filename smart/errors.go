package smart

import (
	"errors"
	"fmt"
)

// OAuthError is an error response from an authorization server's token
// endpoint (RFC 6749 §5.2) or an error redirect from its authorize endpoint
// (RFC 6749 §4.1.2.1). It never carries a token, code or secret: only the
// server's error code, its description and URI, and the HTTP status.
//
// errors.Is(err, ErrInvalidGrant) (and the other sentinels) matches on Code.
type OAuthError struct {
	Code        string // "invalid_grant", "invalid_client", ...
	Description string // error_description, as sent (may be empty)
	URI         string // error_uri, as sent (may be empty)
	StatusCode  int    // HTTP status of the token response; 0 for an authorize redirect
}

// Error implements error: the code, the HTTP status and the description.
func (e *OAuthError) Error() string {
	msg := "oauth error " + e.Code
	if e.StatusCode != 0 {
		msg += fmt.Sprintf(" (HTTP %d)", e.StatusCode)
	}
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

// Is reports whether target is the sentinel for e.Code.
func (e *OAuthError) Is(target error) bool {
	s, ok := target.(*sentinel)
	return ok && s.code == e.Code
}

type sentinel struct{ code string }

// Error implements error.
func (s *sentinel) Error() string { return "oauth error " + s.code }

// Sentinels for the RFC 6749 §5.2 and §4.1.2.1 error codes, for errors.Is
// against an *OAuthError.
var (
	ErrInvalidRequest       error = &sentinel{"invalid_request"}
	ErrInvalidClient        error = &sentinel{"invalid_client"}
	ErrInvalidGrant         error = &sentinel{"invalid_grant"}
	ErrUnauthorizedClient   error = &sentinel{"unauthorized_client"}
	ErrUnsupportedGrantType error = &sentinel{"unsupported_grant_type"}
	ErrInvalidScope         error = &sentinel{"invalid_scope"}
	ErrAccessDenied         error = &sentinel{"access_denied"}
	ErrServerError          error = &sentinel{"server_error"}
)

// ErrNeedsReauthorization is matched (errors.Is) by a *ReauthorizationError.
var ErrNeedsReauthorization = errors.New("smart: connection needs re-authorization")

// ReauthorizationError says a connection's grant was refused (invalid_grant)
// and a person must authorize ehrgate again; until then token requests fail
// fast with this error and no request is sent.
type ReauthorizationError struct {
	Connection string
	Reason     string // the OAuth error code that caused it
}

// Error implements error.
func (e *ReauthorizationError) Error() string {
	return fmt.Sprintf("smart: connection %q needs re-authorization (%s)", e.Connection, e.Reason)
}

// Is makes errors.Is(err, ErrNeedsReauthorization) true.
func (e *ReauthorizationError) Is(target error) bool { return target == ErrNeedsReauthorization }

// ErrUnregisteredIssuer is returned when a launch names an iss that is not a
// registered connection. Nothing is sent to that iss.
var ErrUnregisteredIssuer = errors.New("smart: launch from an unregistered issuer")

// ErrBadState is returned when a callback's state is unknown, already used,
// expired or bound to another launch.
var ErrBadState = errors.New("smart: invalid or expired state")

// ErrIDToken is matched by every id_token verification failure.
var ErrIDToken = errors.New("smart: id_token rejected")

// ErrNoSigningKey is returned when no signing key is active yet (for example
// right after the first `ehrgate keys rotate`, during its grace period).
var ErrNoSigningKey = errors.New("smart: no active signing key")
