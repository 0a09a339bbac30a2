package ehr

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"sync"
)

//go:embed profiles/*.yaml
var profileFS embed.FS

// Generic is the vendor name of the plain FHIR R4 adapter, used when
// nothing else is configured or detected.
const Generic = "generic"

var (
	regMu    sync.RWMutex
	registry = map[string]*Profile{}
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
	if _, dup := registry[p.Vendor]; dup {
		panic("ehr: vendor " + p.Vendor + " registered twice")
	}
	registry[p.Vendor] = p
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

// Lookup returns the adapter for a vendor name ("" means generic).
func Lookup(vendor string) (*Adapter, error) {
	if vendor == "" {
		vendor = Generic
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
