package authz

import (
	"slices"

	"github.com/ory/fosite"

	"ehrgate/clients"
	"ehrgate/smart"
)

// Non-resource scopes this server grants.
const (
	scopeLaunchPatient = "launch/patient"
	scopeOffline       = "offline_access"
	scopeOnline        = "online_access"
)

// flow is who the grant is for, which bounds the scopes it can carry.
type flow int

const (
	flowPerson flow = iota // authorization code: a person, maybe a patient
	flowSystem             // client_credentials: the app itself
)

// grant returns the scopes to grant: each requested scope the flow allows,
// narrowed to what the registered scopes cover (a v2 scope loses the
// permissions not registered; a v1 scope must be covered as a whole, or
// for .* its .read or .write half; a wildcard type not registered as such
// becomes the registered types), without duplicates. Nothing registered
// grants nothing.
func grant(requested, registered smart.Scopes, f flow) smart.Scopes {
	var out smart.Scopes
	seen := map[string]bool{}
	add := func(s smart.Scope) {
		if k := s.String(); !seen[k] {
			seen[k] = true
			out = append(out, s)
		}
	}
	for _, r := range requested {
		if !r.IsResource() {
			allowed := f == flowPerson && (r.Name == scopeLaunchPatient || r.Name == scopeOffline || r.Name == scopeOnline)
			if allowed && smart.CompareScopes(smart.Scopes{r}, registered).Complete() {
				add(r)
			}
			continue
		}
		if (f == flowSystem) != (r.Context == smart.ContextSystem) {
			continue
		}
		n, ok := narrow(r, registered)
		if ok {
			add(n)
		}
		if r.Type == "*" && r.Query == "" && (!ok || n.Perms != r.Perms) {
			// A wildcard the registration does not wholly cover: the
			// registered types it names, within the requested permissions.
			for _, g := range registered {
				if !g.IsResource() || g.Context != r.Context || g.Type == "*" || (r.Style == smart.V1 && g.Query != "") {
					continue // v1 cannot carry g's restriction
				}
				one := r
				one.Type, one.Query = g.Type, g.Query
				if n, ok := narrow(one, registered); ok {
					add(n)
				}
			}
		}
	}
	// patient/ scopes need a patient in context: launch/patient.
	if !slices.ContainsFunc(out, func(s smart.Scope) bool { return s.Name == scopeLaunchPatient }) {
		out = slices.DeleteFunc(out, func(s smart.Scope) bool { return s.IsResource() && s.Context == smart.ContextPatient })
	}
	return out
}

// narrow returns r with the permissions registered covers, or false when
// it covers none. A v1 scope is kept whole, or for .* its .read or .write
// half, since v1 cannot name other subsets.
func narrow(r smart.Scope, registered smart.Scopes) (smart.Scope, bool) {
	var perms smart.Perm
	for bit := smart.PermCreate; bit <= smart.PermSearch; bit <<= 1 {
		if r.Perms&bit == 0 {
			continue
		}
		one := r
		one.Perms, one.Style = bit, smart.V2
		if smart.CompareScopes(smart.Scopes{one}, registered).Complete() {
			perms |= bit
		}
	}
	if perms == 0 {
		return r, false
	}
	n := r
	n.Perms = perms
	if r.Style == smart.V1 && perms != r.Perms {
		const read, write = smart.PermRead | smart.PermSearch, smart.PermCreate | smart.PermUpdate | smart.PermDelete
		switch {
		case perms&read == read:
			n.Perms = read
		case perms&write == write:
			n.Perms = write
		default:
			return r, false
		}
	}
	return n, true
}

// hasResource reports whether ss grants access to any resources.
func hasResource(ss smart.Scopes) bool { return slices.ContainsFunc(ss, smart.Scope.IsResource) }

// has reports whether ss holds the non-resource scope name.
func has(ss smart.Scopes, name string) bool {
	return slices.ContainsFunc(ss, func(s smart.Scope) bool { return s.Name == name })
}

// parseScopes parses the scope tokens fosite collected, ignoring the
// malformed ones (they are never granted).
func parseScopes(tokens []string) smart.Scopes {
	var out smart.Scopes
	for _, t := range tokens {
		if s, err := smart.ParseScope(t); err == nil {
			out = append(out, s)
		}
	}
	return out
}

func scopeStrings(ss smart.Scopes) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.String()
	}
	return out
}

// appClient is a registered app as fosite sees it.
type appClient struct {
	c        clients.Client
	audience string
}

func (a *appClient) GetID() string                      { return a.c.ID }
func (a *appClient) GetHashedSecret() []byte            { return nil }
func (a *appClient) GetRedirectURIs() []string          { return a.c.RedirectURIs }
func (a *appClient) GetResponseTypes() fosite.Arguments { return fosite.Arguments{"code"} }
func (a *appClient) GetScopes() fosite.Arguments        { return a.c.Scopes }
func (a *appClient) IsPublic() bool                     { return a.c.Public }
func (a *appClient) GetAudience() fosite.Arguments      { return fosite.Arguments{a.audience} }

// GetGrantTypes: public apps use the authorization code (and refresh
// tokens); confidential ones client_credentials, and the authorization
// code too when they registered redirect URIs.
func (a *appClient) GetGrantTypes() fosite.Arguments {
	if a.c.Public {
		return fosite.Arguments{"authorization_code", "refresh_token"}
	}
	g := fosite.Arguments{"client_credentials"}
	if len(a.c.RedirectURIs) > 0 {
		g = append(g, "authorization_code", "refresh_token")
	}
	return g
}

var _ fosite.Client = (*appClient)(nil)
