package ehr

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"

	"ehrgate/normalize"
)

//go:embed profiles/*.yaml
var profileFS embed.FS

// Generic is the vendor name of the plain FHIR R4 adapter, used when
// nothing else is configured or detected.
const Generic = "generic"

var (
	regMu    sync.RWMutex
	registry = map[string]*Profile{}
	aliases  = map[string]string{} // alias -> registered vendor
	hooks    = map[string]Hooks{}
)

func init() {
	files, err := fs.Glob(profileFS, "profiles/*.yaml")
	if err != nil {
		panic(err)
	}
	for _, f := range files {
		b, err := profileFS.ReadFile(f)
		if err != nil {
			panic(err)
		}
		p, err := ParseProfile(b)
		if err != nil {
			panic(fmt.Sprintf("ehr: embedded %s: %v", path.Base(f), err))
		}
		Register(p)
	}
}

// Register adds a vendor profile. It panics when the vendor is already
// registered or the profile is invalid, like sql.Register.
func Register(p *Profile) {
	if err := p.Validate(); err != nil {
		panic("ehr: " + err.Error())
	}
	regMu.Lock()
	defer regMu.Unlock()
	for _, name := range append([]string{p.Vendor}, p.Aliases...) {
		if _, dup := registry[name]; dup {
			panic("ehr: vendor " + name + " registered twice")
		}
		if _, dup := aliases[name]; dup {
			panic("ehr: vendor " + name + " registered twice")
		}
	}
	registry[p.Vendor] = p
	for _, a := range p.Aliases {
		aliases[a] = p.Vendor
	}
	for _, e := range p.Extensions {
		normalize.RegisterExtensions(normalize.ExtensionDef{URL: e.URL, Types: e.Types, Name: e.Name, Label: e.Label, Source: p.Display})
	}
}

// Canonical returns the registered vendor a name stands for: the name
// itself, or the vendor it is an alias of ("cerner" is "oracle"). Names are
// matched case-insensitively after trimming; "" is Generic. ok is false for
// a name nobody registered.
func Canonical(name string) (vendor string, ok bool) {
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" {
		return Generic, true
	}
	regMu.RLock()
	defer regMu.RUnlock()
	if _, ok := registry[name]; ok {
		return name, true
	}
	v, ok := aliases[name]
	return v, ok
}

// AcceptedNames returns every name Canonical accepts, for help texts:
// the registered vendors, sorted, each followed by its aliases in
// parentheses ("oracle (cerner)").
func AcceptedNames() string {
	regMu.RLock()
	defer regMu.RUnlock()
	names := make([]string, 0, len(registry))
	for v, p := range registry {
		if len(p.Aliases) > 0 {
			v += " (" + strings.Join(p.Aliases, ", ") + ")"
		}
		names = append(names, v)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Vendors returns the registered vendor names, sorted.
func Vendors() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]string, 0, len(registry))
	for v := range registry {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// Lookup returns the adapter for a vendor name or alias ("" means
// generic; see Canonical).
func Lookup(vendor string) (*Adapter, error) {
	name := vendor
	vendor, ok := Canonical(name)
	if !ok {
		return nil, fmt.Errorf("ehr: unknown vendor %q (known: %s)", name, AcceptedNames())
	}
	regMu.RLock()
	p, ok := registry[vendor]
	h := hooks[vendor]
	regMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("ehr: unknown vendor %q (known: %v)", vendor, Vendors())
	}
	return &Adapter{p: p, hooks: h}, nil
}

// MustLookup is Lookup for registered names known at compile time; it
// panics on an unknown vendor.
func MustLookup(vendor string) *Adapter {
	a, err := Lookup(vendor)
	if err != nil {
		panic(err)
	}
	return a
}
