package gateway

import (
	"context"
	"fmt"

	"ehrgate/audit"
	"ehrgate/config"
	"ehrgate/smart"
	"ehrgate/writeback"
)

// WritesOf returns the write permissions a connection's write policy needs
// in its access token (smart.ScopeRequest.Writes): nil when writing is off.
func WritesOf(c config.Connection) map[string]smart.Perm {
	w := c.Write
	if w == nil || !w.Enabled {
		return nil
	}
	var perm smart.Perm
	for _, op := range w.Operations {
		switch op {
		case string(writeback.OpCreate):
			perm |= smart.PermCreate
		case string(writeback.OpUpdate):
			perm |= smart.PermUpdate
		}
	}
	if perm == 0 {
		return nil
	}
	out := make(map[string]smart.Perm, len(w.Types)+1)
	for _, t := range w.Types {
		out[t] = perm
	}
	out["Provenance"] = smart.PermCreate // every write carries one
	return out
}

// Writer returns a write-back writer over the configured connections with a
// write block, each bounded by its vendor's accepted writes, recording into
// the gateway's audit trail as the client "ehrgate". seal protects the
// outbox at rest (the gateway's keyring); opts may set the rule
// re-evaluation, retries and logger (its Outbox, Audit and Agent are the
// gateway's; an Outbox set in opts is used as it is).
func (g *Gateway) Writer(ctx context.Context, seal writeback.Sealer, opts writeback.Options) (*writeback.Writer, error) {
	var conns []writeback.Connection
	for _, c := range g.Connections() {
		if c.Write == nil {
			continue
		}
		rt, err := g.Runtime(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("write-back: %w", err)
		}
		pol := writeback.NewPolicy(c.Name, c.Write, rt.Adapter.Profile().Write, opts.Clock)
		conns = append(conns, writeback.Connection{Name: c.Name, Target: rt.Client, Policy: pol})
	}
	if opts.Outbox == nil {
		opts.Outbox = writeback.NewOutbox(g.store, seal, opts.Clock)
	}
	opts.Audit = g.audit
	opts.Agent = audit.Agent{ClientID: writeback.AgentEhrgate}
	if opts.Logger == nil {
		opts.Logger = g.log
	}
	return writeback.NewWriter(opts, conns...)
}
