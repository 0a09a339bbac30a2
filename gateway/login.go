package gateway

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"ehrgate/audit"
	"ehrgate/config"
	"ehrgate/login"
	"ehrgate/store"
)

// newLogin builds the dashboard's sign-in from the configuration: local
// accounts or the OpenID provider, sessions in the store (shared by every
// replica), sign-ins recorded in the audit trail.
func newLogin(c config.Login, st store.Documents, rec audit.Recorder, log *slog.Logger, getenv func(string) string, clock func() time.Time, params *login.Params) (*login.Service, error) {
	o := login.Options{Mode: login.Mode(c.Mode), IdleTimeout: time.Duration(c.SessionIdle), MaxAge: time.Duration(c.SessionMax),
		SecureCookies: c.SecureCookies, Clock: clock, Logger: log, Audit: rec, Accounts: login.AccountOptions{Params: params}}
	if c.Mode == config.LoginOpenID {
		o.OIDC = login.OIDCOptions{Issuer: c.OIDC.Issuer, ClientID: c.OIDC.ClientID, RedirectURL: c.OIDC.RedirectURL,
			Scopes: c.OIDC.Scopes, RoleClaim: c.OIDC.RoleClaim, PostLogoutRedirectURL: c.OIDC.PostLogoutRedirectURL}
		if c.OIDC.ClientSecretEnv != "" {
			if o.OIDC.ClientSecret = getenv(c.OIDC.ClientSecretEnv); o.OIDC.ClientSecret == "" {
				return nil, fmt.Errorf("login.oidc.client_secret_env: %s is not set", c.OIDC.ClientSecretEnv)
			}
		}
		if len(c.OIDC.RoleMap) > 0 {
			o.OIDC.RoleMap = map[string]login.Role{}
			for k, v := range c.OIDC.RoleMap {
				o.OIDC.RoleMap[k] = login.Role(v)
			}
		}
	}
	svc, err := login.New(st, o)
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	return svc, nil
}

// Login returns the dashboard's sign-in service, or nil when login is off.
func (g *Gateway) Login() *login.Service { return g.login }

// isLoopbackHost reports whether host names only this machine.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
