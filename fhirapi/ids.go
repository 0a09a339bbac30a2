package fhirapi

import (
	"fmt"
	"sort"
	"strings"
)

// Served ids. ehrgate serves the resources of every connection in one
// namespace, so a resource's id in the API names its connection: the
// connection's prefix, a dot, and the id the source gave it
// ("epic-prod.eX3pQ"). A FHIR id is letters, digits, '-' and '.'
// (FHIR R4 datatypes, id); connection names are lower-case letters,
// digits, '-' and '_' (config), so a connection's prefix is its name with
// each '_' written as '-' and has no dot: the first dot of a served id
// ends the prefix, whatever dots the source id holds. Two connections
// whose prefixes are the same ("a_b" and "a-b") cannot both be served;
// config.Validate refuses them.
//
// Sources' ids are at most 64 characters, so a served id can be longer
// than the 64 FHIR allows; the API serves it anyway (rewriting it would
// break the id's stability), and the README says so.

// Prefix returns the prefix of a connection's served ids.
func Prefix(connection string) string { return strings.ReplaceAll(connection, "_", "-") }

// ServedID returns the id under which the API serves the resource id of
// connection.
func ServedID(connection, id string) string { return Prefix(connection) + "." + id }

// Namespace maps served ids back to connections.
type Namespace struct {
	byPrefix map[string]string
}

// NewNamespace returns the namespace of the named connections; two whose
// prefixes are the same are an error.
func NewNamespace(connections ...string) (*Namespace, error) {
	ns := &Namespace{byPrefix: map[string]string{}}
	sort.Strings(connections)
	for _, c := range connections {
		p := Prefix(c)
		if other, ok := ns.byPrefix[p]; ok && other != c {
			return nil, fmt.Errorf("connections %q and %q would serve their resources under the same id prefix %q", other, c, p)
		}
		ns.byPrefix[p] = c
	}
	return ns, nil
}

// Parse splits a served id into its connection and source id; ok is false
// when the id names no connection of the namespace.
func (ns *Namespace) Parse(served string) (connection, id string, ok bool) {
	p, id, found := strings.Cut(served, ".")
	if !found || id == "" {
		return "", "", false
	}
	connection, ok = ns.byPrefix[p]
	return connection, id, ok
}

// Connections returns the namespace's connections in byte order.
func (ns *Namespace) Connections() []string {
	out := make([]string, 0, len(ns.byPrefix))
	for _, c := range ns.byPrefix {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}
