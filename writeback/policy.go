package writeback

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"ehrgate/config"
	"ehrgate/ehr"
)

// ErrRefused is returned (wrapped) for a write the connection's policy does
// not allow. Nothing was sent.
var ErrRefused = errors.New("writeback: refused by the write policy")

// ErrRateLimited is returned when the connection's writes per minute are
// spent; the record stays approved, to be sent later. Nothing was sent.
var ErrRateLimited = errors.New("writeback: write rate limit reached")

// ErrDryRun is returned by Send under a dry-run policy: the record stays
// approved and nothing was sent.
var ErrDryRun = errors.New("writeback: dry run, not sent")

// Policy is one connection's write governance: the site's config.Write
// bounded by what the vendor accepts (ehr.Profile.Write). A nil
// config.Write, or a vendor accepting nothing, refuses every write.
type Policy struct {
	connection string
	site       config.Write
	vendor     ehr.WriteRules
	rate       int
	clock      func() time.Time

	mu     sync.Mutex
	window time.Time // start of the current minute window
	used   int       // writes sent in it
}

// NewPolicy returns the policy of connection from its configuration (nil:
// writes refused) and its vendor's rules; clock nil = time.Now.
func NewPolicy(connection string, site *config.Write, vendor ehr.WriteRules, clock func() time.Time) *Policy {
	p := &Policy{connection: connection, vendor: vendor, clock: clock}
	if site != nil {
		p.site = *site
	}
	p.rate = p.site.Rate
	if p.rate == 0 {
		p.rate = 60
	}
	if p.clock == nil {
		p.clock = time.Now
	}
	return p
}

// Check reports whether op of typ may be written: nil, or an error
// wrapping ErrRefused with a user-safe reason.
func (p *Policy) Check(typ string, op Operation) error {
	switch {
	case !p.site.Enabled:
		return fmt.Errorf("%w: writing to %s is switched off", ErrRefused, p.connection)
	case !slices.Contains(p.site.Types, typ):
		return fmt.Errorf("%w: %s is not among the types %s may write", ErrRefused, typ, p.connection)
	case !slices.Contains(p.site.Operations, string(op)):
		return fmt.Errorf("%w: %s is not among the operations %s may use", ErrRefused, op, p.connection)
	case !p.vendor.Accepts(typ, string(op)):
		return fmt.Errorf("%w: the vendor of %s does not accept %s of %s", ErrRefused, p.connection, op, typ)
	}
	return nil
}

// checkProvenance reports whether the Provenance of a write may be created.
// It is part of every write, so only the kill switch and the vendor bound
// it.
func (p *Policy) checkProvenance() error {
	if !p.site.Enabled {
		return fmt.Errorf("%w: writing to %s is switched off", ErrRefused, p.connection)
	}
	if !p.vendor.Accepts("Provenance", string(OpCreate)) {
		return fmt.Errorf("%w: the vendor of %s does not accept Provenance, which every write carries", ErrRefused, p.connection)
	}
	return nil
}

// AutoApprove reports whether writes are approved by the policy itself.
func (p *Policy) AutoApprove() bool { return p.site.Approval == config.ApprovalAuto }

// DryRun reports whether writes are never sent.
func (p *Policy) DryRun() bool { return p.site.DryRun }

// Tags returns the tags every written resource carries.
func (p *Policy) Tags() []config.WriteTag { return p.site.Tags }

// take spends one write of the minute's rate; false when none is left.
func (p *Policy) take() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock()
	if now.Sub(p.window) >= time.Minute || now.Before(p.window) {
		p.window, p.used = now, 0
	}
	if p.used >= p.rate {
		return false
	}
	p.used++
	return true
}

// checkContent refuses resources outside what write-back may put into the
// legal record whatever the configuration says (issue 17): a
// DocumentReference must be a draft (docStatus preliminary) for a clinician
// to sign; a Task must have an owner and a Communication a recipient, so
// that each reaches a person.
func checkContent(typ string, resource []byte) error {
	var r struct {
		DocStatus string            `json:"docStatus"`
		Owner     json.RawMessage   `json:"owner"`
		Recipient []json.RawMessage `json:"recipient"`
	}
	if err := json.Unmarshal(resource, &r); err != nil {
		return fmt.Errorf("%w: the resource is not valid JSON", ErrRefused)
	}
	switch typ {
	case "DocumentReference":
		if r.DocStatus != "preliminary" {
			return fmt.Errorf("%w: a DocumentReference is written only as a draft (docStatus preliminary)", ErrRefused)
		}
	case "Task":
		if len(r.Owner) == 0 || string(r.Owner) == "null" {
			return fmt.Errorf("%w: a Task must be addressed to a person (owner)", ErrRefused)
		}
	case "Communication":
		if len(r.Recipient) == 0 {
			return fmt.Errorf("%w: a Communication must be addressed to a person (recipient)", ErrRefused)
		}
	}
	return nil
}
