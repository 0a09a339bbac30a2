package smartauth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// OAuth error codes (RFC 6749 sections 4.1.2.1 and 5.2, RFC 6750 section
// 3.1).
const (
	ErrInvalidRequest          = "invalid_request"
	ErrInvalidClient           = "invalid_client"
	ErrInvalidGrant            = "invalid_grant"
	ErrUnauthorizedClient      = "unauthorized_client"
	ErrUnsupportedGrantType    = "unsupported_grant_type"
	ErrUnsupportedResponseType = "unsupported_response_type"
	ErrInvalidScope            = "invalid_scope"
	ErrAccessDenied            = "access_denied"
	ErrServerError             = "server_error"
	ErrInvalidToken            = "invalid_token"
	ErrInsufficientScope       = "insufficient_scope"
)

// Error is an OAuth 2.0 protocol error: the code of RFC 6749 section 5.2
// (or 4.1.2.1 at the authorize endpoint), a description safe to show (never
// a token, secret or patient datum) and the HTTP status of a JSON error
// response: 401 for invalid_client (section 5.2 allows 401 and requires it
// after HTTP Basic), 500 for server_error, else 400.
type Error struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	Status      int    `json:"-"`
	// basic: the client tried HTTP Basic, so a 401 carries
	// WWW-Authenticate: Basic.
	basic bool
}

// Error implements error.
func (e *Error) Error() string {
	if e.Description == "" {
		return "oauth: " + e.Code
	}
	return "oauth: " + e.Code + ": " + e.Description
}

// oauthErr builds an Error with the status its code calls for.
func oauthErr(code, format string, args ...any) *Error {
	status := http.StatusBadRequest
	switch code {
	case ErrInvalidClient:
		status = http.StatusUnauthorized
	case ErrServerError:
		status = http.StatusInternalServerError
	}
	return &Error{Code: code, Description: fmt.Sprintf(format, args...), Status: status}
}

// writeJSON writes v as a no-store JSON response (RFC 6749 section 5.1).
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes e as an RFC 6749 section 5.2 JSON error.
func writeError(w http.ResponseWriter, e *Error) {
	if e.Status == http.StatusUnauthorized {
		scheme := `Bearer realm="ehrsim"`
		if e.basic {
			scheme = `Basic realm="ehrsim"`
		}
		w.Header().Set("WWW-Authenticate", scheme)
	}
	writeJSON(w, e.Status, e)
}

// redirectError sends the browser back to the client's redirect URI with
// error, error_description and state (RFC 6749 section 4.1.2.1).
func redirectError(w http.ResponseWriter, r *http.Request, redirectURI, state string, e *Error) {
	http.Redirect(w, r, addQuery(redirectURI, url.Values{
		"error":             {e.Code},
		"error_description": {e.Description},
		"state":             {state},
	}), http.StatusFound)
}

// addQuery appends the non-empty values to u's query.
func addQuery(u string, v url.Values) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	q := p.Query()
	for k, vs := range v {
		for _, x := range vs {
			if x != "" {
				q.Add(k, x)
			}
		}
	}
	p.RawQuery = q.Encode()
	return p.String()
}
