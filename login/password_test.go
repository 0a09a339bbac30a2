package login

import (
	"strings"
	"testing"
)

var cheap = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestPasswordHash(t *testing.T) {
	h, err := hashPassword([]byte("correct horse battery"), cheap)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") || strings.Contains(h, "correct horse") {
		t.Errorf("hashPassword = %q, want a PHC argon2id string", h)
	}
	h2, _ := hashPassword([]byte("correct horse battery"), cheap)
	if h == h2 {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	if ok, stale := verifyPassword([]byte("correct horse battery"), h, cheap); !ok || stale {
		t.Errorf("verifyPassword(right) = %v, %v, want true, false", ok, stale)
	}
	if ok, _ := verifyPassword([]byte("correct horse batterY"), h, cheap); ok {
		t.Error("verifyPassword(wrong) = true")
	}
	if ok, stale := verifyPassword([]byte("correct horse battery"), h, DefaultParams); !ok || !stale {
		t.Errorf("verifyPassword(right, other params) = %v, %v, want true, true (rehash)", ok, stale)
	}
}

func TestParseHashRefuses(t *testing.T) {
	for _, h := range []string{
		"",
		"$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5", // 4 GiB
		"$argon2id$v=19$m=64,t=1000,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=64,t=1,p=0$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=64,t=1,p=1$!!$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$",
	} {
		if _, _, _, err := parseHash(h); err == nil {
			t.Errorf("parseHash(%q) = nil error, want a refusal", h)
		}
		if ok, _ := verifyPassword([]byte("x"), h, cheap); ok {
			t.Errorf("verifyPassword(_, %q) = true", h)
		}
	}
}

func FuzzParseHash(f *testing.F) {
	h, _ := hashPassword([]byte("correct horse battery"), cheap)
	f.Add(h)
	f.Add("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5")
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, key, err := parseHash(s)
		if err != nil {
			return
		}
		if p.Memory > maxMemory || p.Time > maxTime || p.Threads == 0 || len(salt) < 8 || len(key) < 16 {
			t.Errorf("parseHash(%q) accepted out-of-bounds parameters %+v", s, p)
		}
	})
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"":                        "/",
		"/patients/a/b?x=1":       "/patients/a/b?x=1",
		"//evil.example/":         "/",
		"/\\evil.example":         "/",
		"https://evil.example/":   "/",
		"/login":                  "/",
		"/login/callback?code=1":  "/",
		"/logout":                 "/",
		"patients":                "/",
		"/a\r\nSet-Cookie: x=1":   "/",
		"/patients/sim/p%2F1?q=a": "/patients/sim/p%2F1?q=a",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRoleMapping(t *testing.T) {
	claims := map[string]any{"groups": []any{"doctors", "x"}, "realm_access": map[string]any{"roles": []any{"auditor", "admin"}}, "role": "clinician"}
	tests := []struct {
		claim string
		m     map[string]Role
		want  string
	}{
		{"groups", map[string]Role{"doctors": RoleClinician, "privacy": RoleAuditor}, "clinician"},
		{"groups", nil, ""},
		{"realm_access.roles", nil, "admin auditor"},
		{"role", nil, "clinician"},
		{"missing", nil, ""},
		{"realm_access", nil, ""},
	}
	for _, tc := range tests {
		l := &oidcLogin{o: OIDCOptions{RoleClaim: tc.claim, RoleMap: tc.m}}
		v, _ := claimPath(claims, tc.claim)
		var got []string
		for _, r := range l.roles(v) {
			got = append(got, string(r))
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("roles(claim %s, map %v) = %v, want %q", tc.claim, tc.m, got, tc.want)
		}
	}
}

func TestCan(t *testing.T) {
	for _, tc := range []struct {
		role Role
		perm Permission
		want bool
	}{
		{RoleAdmin, SeePatients, true}, {RoleAdmin, SeeOperations, true}, {RoleAdmin, SeeAudit, true},
		{RoleClinician, SeePatients, true}, {RoleClinician, SeeOperations, false}, {RoleClinician, SeeAudit, false},
		{RoleAuditor, SeePatients, false}, {RoleAuditor, SeeOperations, false}, {RoleAuditor, SeeAudit, true},
	} {
		if got := (Person{Roles: []Role{tc.role}}).Can(tc.perm); got != tc.want {
			t.Errorf("Person{%s}.Can(%s) = %v, want %v", tc.role, tc.perm, got, tc.want)
		}
	}
}

// FuzzSafeNext: whatever a login link carries, the redirect after sign-in
// stays on this site.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/", "/patients/a/b?x=1", "//evil.example/", "/\\evil", "https://evil.example/", "/login/callback", "/%2F%2Fevil"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := safeNext(s)
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.HasPrefix(got, "/\\") || strings.ContainsAny(got, "\r\n") {
			t.Errorf("safeNext(%q) = %q: not a path on this site", s, got)
		}
	})
}
