package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Backend is a store with every role: what the gateway runs on. Each
// backend package (store/sqlite, store/postgres) registers itself with
// Register in its init; Open picks one by the location's scheme.
type Backend interface {
	Store
	VersionReader
	RawPatientLister
	TokenStore
	PagedScanner
	NormalizedRewriter
	BulkStore
	TombstoneReader
	CurrentScanner
	HL7Log
	HL7Stats
	PendingLaunches
	LaunchRewrapper
	Documents
	AuditLog
	EventLog
	Migrator
}

// Migration is one schema migration a binary knows, or one applied to the
// store that it does not know (Unknown: the store was written by a newer
// ehrgate).
type Migration struct {
	Version   int64     `json:"version"`
	Name      string    `json:"name"` // file name, e.g. 00012_documents.sql
	Applied   bool      `json:"applied"`
	AppliedAt time.Time `json:"applied_at,omitzero"`
	Unknown   bool      `json:"unknown,omitempty"`
}

// Migrator reports and applies schema migrations.
//
// Migrations lists what the binary knows, oldest first, each marked
// applied or not, followed by any version applied to the store that the
// binary does not know. Migrate applies what is pending (several
// processes may call it at once: one applies, the others wait) and
// returns an error wrapping ErrSchemaTooNew, changing nothing, when the
// store holds a migration newer than the binary knows. Location names the
// store for people: the backend and where it is, never a password.
type Migrator interface {
	Migrations(ctx context.Context) ([]Migration, error)
	Migrate(ctx context.Context) error
	Location() string
}

// ErrSchemaTooNew is returned (wrapped) when a store was migrated by a
// newer ehrgate than the running one: reading it could misread data.
var ErrSchemaTooNew = errors.New("the store was written by a newer version of ehrgate; upgrade ehrgate to use it")

// ErrNoStore is returned (wrapped) by Open with OpenOptions.MustExist when
// there is no ehrgate store at the location.
var ErrNoStore = errors.New("no ehrgate store there")

// OpenOptions say how Open treats the store it opens.
type OpenOptions struct {
	// MustExist refuses (ErrNoStore) instead of creating a store, for
	// commands that only read: a mistyped location is an error, not a new
	// empty store.
	MustExist bool
	// NoMigrate leaves the schema as it is (for `ehrgate migrate
	// --status`); otherwise Open applies pending migrations and refuses a
	// store with a newer schema (ErrSchemaTooNew).
	NoMigrate bool
}

// Opener opens the store at location, the part of a store URL after its
// scheme and colon (for "sqlite:/var/lib/ehrgate", "/var/lib/ehrgate"; for
// "postgres://host/db", the whole URL).
type Opener func(ctx context.Context, location string, o OpenOptions) (Backend, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Opener{}
)

// Register makes a backend available to Open under scheme. It panics when
// scheme is registered twice or open is nil, as sql.Register does.
func Register(scheme string, open Opener) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if open == nil {
		panic("store: Register opener is nil")
	}
	if _, dup := registry[scheme]; dup {
		panic("store: Register called twice for scheme " + scheme)
	}
	registry[scheme] = open
}

// Schemes lists the registered store schemes.
func Schemes() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for s := range registry {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Open opens the store named by rawURL: "sqlite:DIR" (the embedded store
// in data directory DIR), "postgres://user@host/db" or "postgresql://..."
// (any libpq URL), or a bare directory path (sqlite).
func Open(ctx context.Context, rawURL string, o OpenOptions) (Backend, error) {
	scheme, location, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	registryMu.RLock()
	open := registry[scheme]
	registryMu.RUnlock()
	if open == nil {
		return nil, fmt.Errorf("store %s: no %s backend in this binary (have %s)", Redact(rawURL), scheme, strings.Join(Schemes(), ", "))
	}
	return open(ctx, location, o)
}

// ParseURL splits a store URL into its scheme (sqlite, postgres) and the
// location its backend opens. postgresql is read as postgres.
func ParseURL(rawURL string) (scheme, location string, err error) {
	if rawURL == "" {
		return "", "", errors.New("no store given: use sqlite:DIR or postgres://user@host/db")
	}
	i := strings.Index(rawURL, ":")
	if i <= 0 || strings.ContainsAny(rawURL[:i], `/\.`) {
		return "sqlite", rawURL, nil // a bare path
	}
	scheme = strings.ToLower(rawURL[:i])
	switch scheme {
	case "sqlite":
		loc := strings.TrimPrefix(rawURL[i+1:], "//")
		if loc == "" {
			return "", "", errors.New("store sqlite: needs a directory, as in sqlite:/var/lib/ehrgate")
		}
		return scheme, loc, nil
	case "postgres", "postgresql":
		return "postgres", rawURL, nil
	}
	return scheme, rawURL, nil
}

// Redact returns a store URL fit to print: any password replaced.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		if err != nil && strings.Contains(rawURL, "@") {
			return "(unparseable store URL)"
		}
		return rawURL
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
