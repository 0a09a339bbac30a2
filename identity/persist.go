package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"ehrgate/store"
)

// Document kinds this package keeps in store.Documents. They hold record
// keys (connection and resource id), person ids, people's decisions and
// run summaries: no demographic values.
const (
	// DocPersons holds the persons of the last run, sharded by the first
	// two hex digits of the person id (name "00" to "ff"): body
	// {"persons": {"psn-…": [{"source": …, "id": …}, …]}}.
	DocPersons = "identity-persons"
	// DocOverride is one person's link or unlink decision about two
	// records; the name is OverrideName(a, b).
	DocOverride = "identity-override"
	// DocRun is the summary of the last run (name "last").
	DocRun = "identity-run"
)

// ErrInvalidOverride is returned for an override without two distinct
// records, a known action, who made it and why.
var ErrInvalidOverride = errors.New("identity: an override needs two different records, link or unlink, by and reason")

// OverrideName is the document name of the override of records a and b
// (order does not matter).
func OverrideName(a, b Key) string {
	if b.Less(a) {
		a, b = b, a
	}
	return a.String() + "|" + b.String()
}

// Service runs the matcher over a store's documents: it loads people's
// overrides and the previous persons, and saves the new persons and a run
// summary.
type Service struct {
	Docs store.Documents
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// SetOverride records a person's decision; a later decision about the same
// two records replaces the earlier one.
func (s *Service) SetOverride(ctx context.Context, o Override) error {
	if o.A == o.B || o.A.ID == "" || o.B.ID == "" || (o.Action != ActionLink && o.Action != ActionUnlink) ||
		strings.TrimSpace(o.By) == "" || strings.TrimSpace(o.Reason) == "" {
		return ErrInvalidOverride
	}
	if o.B.Less(o.A) {
		o.A, o.B = o.B, o.A
	}
	if o.At.IsZero() {
		o.At = s.now()
	}
	body, err := json.Marshal(o)
	if err != nil {
		return err
	}
	return s.Docs.UpdateDocument(ctx, DocOverride, OverrideName(o.A, o.B), func([]byte) ([]byte, error) { return body, nil })
}

// Overrides returns every override, in name order.
func (s *Service) Overrides(ctx context.Context) ([]Override, error) {
	names, err := s.Docs.ListDocuments(ctx, DocOverride)
	if err != nil {
		return nil, fmt.Errorf("listing overrides: %w", err)
	}
	out := make([]Override, 0, len(names))
	for _, n := range names {
		d, err := s.Docs.GetDocument(ctx, DocOverride, n)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading an override: %w", err)
		}
		var o Override
		if err := json.Unmarshal(d.Body, &o); err != nil {
			return nil, fmt.Errorf("decoding override %q: %w", n, err)
		}
		out = append(out, o)
	}
	return out, nil
}

type personShard struct {
	Persons map[string][]Key `json:"persons"`
}

func shardOf(id string) string {
	if len(id) >= 6 && strings.HasPrefix(id, "psn-") {
		return id[4:6]
	}
	return "zz"
}

// Persons returns the persons of the last run, by id.
func (s *Service) Persons(ctx context.Context) ([]Person, error) {
	names, err := s.Docs.ListDocuments(ctx, DocPersons)
	if err != nil {
		return nil, fmt.Errorf("listing persons: %w", err)
	}
	var out []Person
	for _, n := range names {
		d, err := s.Docs.GetDocument(ctx, DocPersons, n)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading persons: %w", err)
		}
		var sh personShard
		if err := json.Unmarshal(d.Body, &sh); err != nil {
			return nil, fmt.Errorf("decoding persons %q: %w", n, err)
		}
		for id, ms := range sh.Persons {
			out = append(out, Person{ID: id, Members: ms})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// RunSummary is what a run did (kept as DocRun "last").
type RunSummary struct {
	At         time.Time    `json:"at"`
	Records    int          `json:"records"`
	Candidates int          `json:"candidates"`
	Links      int          `json:"links"`
	Persons    int          `json:"persons"`
	Carried    int          `json:"carried"` // persons whose id came from the previous run
	New        int          `json:"new"`
	Overrides  int          `json:"overrides"`
	Seconds    float64      `json:"seconds"`
	Review     []ReviewPair `json:"review,omitempty"` // strongest first, at most 1000
	Model      *Model       `json:"model,omitempty"`
	// Through is the highest Record.Order the last run or Add saw: a held
	// record with a higher one was stored again since (a changed Patient).
	Through int64 `json:"through,omitempty"`
	// LastAdd is what the last Add since the run did, at LastAddAt.
	LastAdd   *AddSummary `json:"last_add,omitempty"`
	LastAddAt time.Time   `json:"last_add_at,omitzero"`
}

// ReviewPair is a pair a person should look at.
type ReviewPair struct {
	A      Key     `json:"a"`
	B      Key     `json:"b"`
	Weight float64 `json:"weight"`
	Reason string  `json:"reason"`
	// Explanation is the pair's score field by field as the run computed
	// it (agreement level names and weights: no demographic values).
	Explanation []Contribution `json:"explanation,omitempty"`
}

const maxReview = 1000

// Run matches recs, respecting the stored overrides, carries person ids
// forward from the stored persons, stores the new persons and the summary,
// and returns the persons.
func (s *Service) Run(ctx context.Context, recs []Record, opts Options) ([]Person, RunSummary, error) {
	start := s.now()
	t0 := time.Now()
	var sum RunSummary
	ovs, err := s.Overrides(ctx)
	if err != nil {
		return nil, sum, err
	}
	opts.Overrides = append(slices.Clone(opts.Overrides), ovs...)
	prevPersons, err := s.Persons(ctx)
	if err != nil {
		return nil, sum, err
	}
	prev := map[Key]string{}
	for _, p := range prevPersons {
		for _, k := range p.Members {
			prev[k] = p.ID
		}
	}
	m := New(recs, opts)
	res, err := m.Run(ctx)
	if err != nil {
		return nil, sum, err
	}
	var clusters [][]Key
	for _, c := range res.Clusters() {
		slices.SortFunc(c, func(a, b int32) int {
			ra, rb := &recs[a], &recs[b]
			switch {
			case ra.Order != rb.Order:
				if ra.Order < rb.Order {
					return -1
				}
				return 1
			case ra.Key.Less(rb.Key):
				return -1
			case rb.Key.Less(ra.Key):
				return 1
			}
			return 0
		})
		ks := make([]Key, len(c))
		for i, x := range c {
			ks[i] = recs[x].Key
		}
		clusters = append(clusters, ks)
	}
	persons := AssignIDs(prev, clusters)
	prevIDs := map[string]bool{}
	for _, p := range prevPersons {
		prevIDs[p.ID] = true
	}
	for _, p := range persons {
		if prevIDs[p.ID] {
			sum.Carried++
		} else {
			sum.New++
		}
	}
	if err := s.savePersons(ctx, prevPersons, persons); err != nil {
		return nil, sum, err
	}
	sum.At, sum.Records, sum.Candidates, sum.Links = start, res.Records, res.Candidates, res.Links
	sum.Persons, sum.Overrides, sum.Model = len(persons), len(ovs), res.Model
	for i := range recs {
		sum.Through = max(sum.Through, recs[i].Order)
	}
	for i, p := range res.Review {
		if i == maxReview {
			break
		}
		sc := m.Compare(int(p.A), int(p.B))
		sum.Review = append(sum.Review, ReviewPair{A: recs[p.A].Key, B: recs[p.B].Key, Weight: p.Weight, Reason: p.Reason,
			Explanation: sc.Explanation})
	}
	sum.Seconds = time.Since(t0).Seconds()
	body, err := json.Marshal(sum)
	if err != nil {
		return nil, sum, err
	}
	if err := s.Docs.UpdateDocument(ctx, DocRun, "last", func([]byte) ([]byte, error) { return body, nil }); err != nil {
		return nil, sum, fmt.Errorf("saving the run summary: %w", err)
	}
	return persons, sum, nil
}

// Status returns the summary of the last run; store.ErrNotFound when there
// was none.
func (s *Service) Status(ctx context.Context) (RunSummary, error) {
	var sum RunSummary
	d, err := s.Docs.GetDocument(ctx, DocRun, "last")
	if err != nil {
		return sum, err
	}
	if err := json.Unmarshal(d.Body, &sum); err != nil {
		return sum, fmt.Errorf("decoding the run summary: %w", err)
	}
	return sum, nil
}

// ReviewQueue returns the last run's summary and its review pairs that no
// one has decided since (no override of the pair), strongest first;
// store.ErrNotFound when there was no run.
func (s *Service) ReviewQueue(ctx context.Context) (RunSummary, []ReviewPair, error) {
	sum, err := s.Status(ctx)
	if err != nil {
		return sum, nil, err
	}
	ovs, err := s.Overrides(ctx)
	if err != nil {
		return sum, nil, err
	}
	decided := make(map[string]bool, len(ovs))
	for _, o := range ovs {
		decided[OverrideName(o.A, o.B)] = true
	}
	var out []ReviewPair
	for _, p := range sum.Review {
		if !decided[OverrideName(p.A, p.B)] {
			out = append(out, p)
		}
	}
	return sum, out, nil
}

// savePersons writes the shards whose content changed and deletes the
// shards left empty.
func (s *Service) savePersons(ctx context.Context, prev, next []Person) error {
	shards := map[string]*personShard{}
	for _, p := range next {
		n := shardOf(p.ID)
		if shards[n] == nil {
			shards[n] = &personShard{Persons: map[string][]Key{}}
		}
		shards[n].Persons[p.ID] = p.Members
	}
	old := map[string]bool{}
	for _, p := range prev {
		old[shardOf(p.ID)] = true
	}
	names := make([]string, 0, len(shards))
	for n := range shards {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		body, err := json.Marshal(shards[n]) // map keys are sorted: stable bytes
		if err != nil {
			return err
		}
		err = s.Docs.UpdateDocument(ctx, DocPersons, n, func(cur []byte) ([]byte, error) {
			if bytes.Equal(cur, body) {
				return cur, nil
			}
			return body, nil
		})
		if err != nil {
			return fmt.Errorf("saving persons: %w", err)
		}
	}
	for n := range old {
		if shards[n] == nil {
			if _, err := s.Docs.DeleteDocument(ctx, DocPersons, n); err != nil {
				return fmt.Errorf("deleting persons: %w", err)
			}
		}
	}
	return nil
}
