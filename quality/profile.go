package quality

import (
	"embed"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
)

//go:embed data/uscore.json
var dataFS embed.FS

// Rule is one US Core constraint on a resource type, as data.
type Rule struct {
	ID          string   `json:"id"`
	Path        string   `json:"path"` // dotted; "name[x]" matches choice types; "a|b" means either
	Min         int      `json:"min"`
	MustSupport bool     `json:"mustSupport"`
	Binding     *Binding `json:"binding"`
	When        *When    `json:"when"`
	Note        string   `json:"note"`
	Profile     string   `json:"-"` // the profile URL the rule comes from
	Type        string   `json:"-"`
}

// Binding is a required value-set binding.
type Binding struct {
	ValueSet string   `json:"valueSet"`
	System   string   `json:"system"` // for Coding elements; "" for code elements
	Codes    []string `json:"codes"`
}

// When restricts a rule to resources where a path equals a value or is
// present.
type When struct {
	Path    string `json:"path"`
	Equals  string `json:"equals"`
	Present bool   `json:"present"`
}

type profileFile struct {
	Profiles []struct {
		Type    string  `json:"type"`
		Profile string  `json:"profile"`
		Rules   []*Rule `json:"rules"`
	} `json:"profiles"`
}

var loadRules = sync.OnceValue(func() map[string][]*Rule {
	b, err := dataFS.ReadFile("data/uscore.json")
	if err != nil {
		panic(err)
	}
	rules, err := parseRules(b)
	if err != nil {
		panic(fmt.Errorf("data/uscore.json: %w", err))
	}
	return rules
})

func parseRules(b []byte) (map[string][]*Rule, error) {
	var f profileFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("decoding profile rules: %w", err)
	}
	out := map[string][]*Rule{}
	ids := map[string]bool{}
	for _, p := range f.Profiles {
		if p.Profile == "" || p.Type == "" {
			return nil, fmt.Errorf("profile without type or URL")
		}
		for _, r := range p.Rules {
			if r.ID == "" || r.Path == "" || ids[r.ID] {
				return nil, fmt.Errorf("rule %q: empty or duplicate id, or no path", r.ID)
			}
			if kinds := b2i(r.Min > 0) + b2i(r.MustSupport) + b2i(r.Binding != nil); kinds != 1 {
				return nil, fmt.Errorf("rule %q: exactly one of min, mustSupport and binding", r.ID)
			}
			ids[r.ID] = true
			r.Profile, r.Type = p.Profile, p.Type
			out[p.Type] = append(out[p.Type], r)
		}
	}
	return out, nil
}

// Rules returns the US Core rules for a resource type. The slice is shared;
// callers must not modify it.
func Rules(typ string) []*Rule { return loadRules()[typ] }

// values returns the values at a dotted path in a decoded JSON resource,
// arrays flattened. "name[x]" matches any key name+Uppercase...;
// "extension(url)" selects extensions with that url.
func values(root any, path string) []any {
	cur := []any{root}
	for _, seg := range strings.Split(path, ".") {
		var next []any
		for _, v := range cur {
			obj, ok := v.(map[string]any)
			if !ok {
				continue
			}
			switch {
			case strings.HasSuffix(seg, "[x]"):
				prefix := strings.TrimSuffix(seg, "[x]")
				for k, x := range obj {
					if len(k) > len(prefix) && strings.HasPrefix(k, prefix) && k[len(prefix)] >= 'A' && k[len(prefix)] <= 'Z' {
						next = appendFlat(next, x)
					}
				}
			case strings.HasPrefix(seg, "extension(") && strings.HasSuffix(seg, ")"):
				url := seg[len("extension(") : len(seg)-1]
				exts, _ := obj["extension"].([]any)
				for _, e := range exts {
					if m, ok := e.(map[string]any); ok && m["url"] == url {
						next = append(next, m)
					}
				}
			default:
				if x, ok := obj[seg]; ok {
					next = appendFlat(next, x)
				}
			}
		}
		cur = next
	}
	return cur
}

func appendFlat(dst []any, v any) []any {
	if arr, ok := v.([]any); ok {
		for _, x := range arr {
			dst = appendFlat(dst, x)
		}
		return dst
	}
	return append(dst, v)
}

// present reports whether any alternative of path ("a|b") has a non-empty
// value.
func present(root any, path string) bool {
	for _, alt := range strings.Split(path, "|") {
		for _, v := range values(root, alt) {
			if nonEmpty(v) {
				return true
			}
		}
	}
	return false
}

func nonEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case string:
		return strings.TrimSpace(x) != ""
	case map[string]any:
		return len(x) > 0
	}
	return true
}

// applies reports whether a rule's When condition holds.
func (r *Rule) applies(root any) bool {
	if r.When == nil {
		return true
	}
	if r.When.Present {
		return present(root, r.When.Path)
	}
	for _, v := range values(root, r.When.Path) {
		if s, ok := v.(string); ok && s == r.When.Equals {
			return true
		}
	}
	return false
}

// check evaluates the rule; it returns a finding message, or "" when the
// resource satisfies it. Messages name elements and rules, never values.
func (r *Rule) check(root any) (severity, msg string) {
	if !r.applies(root) {
		return "", ""
	}
	switch {
	case r.Min > 0:
		if !present(root, r.Path) {
			return SeverityError, r.Path + " is required (min " + fmt.Sprint(r.Min) + ") but absent"
		}
	case r.MustSupport:
		if !present(root, r.Path) {
			return SeverityInfo, r.Path + " is Must Support but absent"
		}
	case r.Binding != nil:
		vals := values(root, r.Path)
		if len(vals) == 0 {
			return "", ""
		}
		for _, v := range vals {
			if r.Binding.System == "" {
				if s, ok := v.(string); ok && contains(r.Binding.Codes, s) {
					return "", ""
				}
				continue
			}
			if m, ok := v.(map[string]any); ok && m["system"] == r.Binding.System {
				if s, ok := m["code"].(string); ok && contains(r.Binding.Codes, s) {
					return "", ""
				}
			}
		}
		return SeverityError, r.Path + " is not in the required value set " + r.Binding.ValueSet
	}
	return "", ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
