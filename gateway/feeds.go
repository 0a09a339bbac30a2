package gateway

import (
	"context"
	"sort"

	"ehrgate/hl7/hl7store"
)

// hl7Feeds lists the HL7 v2 feeds (listener connections) whose pages the
// dashboard shows and whose state metrics.HL7Feeds exports: the configured
// listener's and those started with StartMLLP. A message replayed from a
// feed page is converted by the listener's conversion loop or its
// periodic conversion job (hl7SafetyInterval), whichever runs.
func (g *Gateway) hl7Feeds(context.Context) []string {
	names := map[string]bool{}
	if g.cfg.HL7.MLLPAddr != "" {
		conn := g.cfg.HL7.Connection
		if conn == "" {
			conn = hl7store.DefaultConnection
		}
		names[conn] = true
	}
	g.mu.Lock()
	for conn := range g.hl7opts {
		names[conn] = true
	}
	g.mu.Unlock()
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
