package identity

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"ehrgate/store"
)

// ErrNoRun is returned by Add when there is no earlier run to add to (no
// fitted model, no persons): a full Run is needed first.
var ErrNoRun = errors.New("identity: no match run yet to add records to")

// AddSummary is what Add did.
type AddSummary struct {
	New int `json:"new"` // records no person held
	// Changed counts records a person held that were stored again with
	// other content since the last run or add (Record.Order above the
	// last one seen); Moved, those of them that no longer fitted their
	// person (or were alone in it) and were matched again like new ones.
	Changed int `json:"changed"`
	Moved   int `json:"moved"`
	// Removed counts records persons held that are no longer stored.
	Removed int `json:"removed"`
	Joined  int `json:"joined"`  // of the new and moved, joined to an existing person (or one created by an earlier record of this call)
	Created int `json:"created"` // persons created
	// Review counts the pairs added to the review queue: a new or moved
	// record and a record of another person that score between the review
	// and link weights, or would link but a guard or a member of that
	// person stopped it.
	Review int `json:"review"`
}

// restore rebuilds the weights of a model decoded from JSON (they are not
// serialized: Fields holds them).
func (model *Model) restore() {
	for fi := range model.Fields {
		if fi >= int(numFields) {
			break
		}
		for l, lp := range model.Fields[fi].Levels {
			if l+1 < 8 {
				model.weights[fi][l+1] = lp.Weight
			}
		}
	}
}

// Add matches the records no stored person holds yet (new Patients), and
// the held records stored again since the last run or add (changed
// Patients), against the stored persons with the last run's model, without
// fitting or clustering again: the cheap step to take when Patients are
// stored between full runs. recs are all current records (new and old), as
// LoadPatients returns them.
//
// A changed record stays in its person when it still fits the other
// members (no guard fails, none scores more than CrossSlack below the
// review weight, no unlink); otherwise, or when it was the person's only
// record, it leaves and is matched again like a new one. Records persons
// held that are no longer stored are dropped from them.
//
// New and moved records are taken oldest first. Each joins the person of
// its best candidate that scores a link (Query), provided that no member
// of that person fails a guard against it, scores more than CrossSlack
// below the review weight, or was unlinked from it by a person; a link
// override joins it to the other record's person outright. A record that
// joins nobody starts a person (PersonID of its key). Its candidates in
// other persons that score at or above the review weight go to the review
// queue (the last run's, shown by ReviewQueue). Other persons keep their
// ids and members: a full Run may later regroup them (and carries ids
// forward). Add returns ErrNoRun when there was no run.
func (s *Service) Add(ctx context.Context, recs []Record, opts Options) (AddSummary, error) {
	var sum AddSummary
	last, err := s.Status(ctx)
	if errors.Is(err, store.ErrNotFound) || (err == nil && last.Model == nil) {
		return sum, ErrNoRun
	}
	if err != nil {
		return sum, err
	}
	last.Model.restore()
	prevPersons, err := s.Persons(ctx)
	if err != nil {
		return sum, err
	}
	ovs, err := s.Overrides(ctx)
	if err != nil {
		return sum, err
	}
	stored := make(map[Key]int, len(recs))
	through := last.Through
	for i := range recs {
		stored[recs[i].Key] = i
		through = max(through, recs[i].Order)
	}
	personOf := map[Key]string{}
	members := map[string][]Key{}
	used := map[string]bool{}
	for _, p := range prevPersons {
		used[p.ID] = true
		for _, k := range p.Members {
			if _, ok := stored[k]; !ok {
				sum.Removed++
				continue
			}
			members[p.ID] = append(members[p.ID], k)
			personOf[k] = p.ID
		}
	}
	var fresh, changed []int
	for i := range recs {
		if _, ok := personOf[recs[i].Key]; !ok {
			fresh = append(fresh, i)
		} else if last.Through > 0 && recs[i].Order > last.Through {
			changed = append(changed, i)
		}
	}
	sum.New, sum.Changed = len(fresh), len(changed)
	if len(fresh) == 0 && len(changed) == 0 && sum.Removed == 0 {
		return sum, s.noteAdd(ctx, sum, through, nil, nil)
	}
	opts.Model = last.Model
	m := New(recs, opts)
	unlinked := map[string]bool{}
	linkTo := map[Key][]Key{}
	for _, o := range ovs {
		switch o.Action {
		case ActionUnlink:
			unlinked[OverrideName(o.A, o.B)] = true
		case ActionLink:
			linkTo[o.A] = append(linkTo[o.A], o.B)
			linkTo[o.B] = append(linkTo[o.B], o.A)
		}
	}
	// a changed record that no longer fits its person leaves it
	for _, i := range changed {
		k := recs[i].Key
		id := personOf[k]
		others := slices.DeleteFunc(slices.Clone(members[id]), func(x Key) bool { return x == k })
		if len(others) > 0 && m.mayJoin(i, others, unlinked) {
			continue
		}
		sum.Moved++
		delete(personOf, k)
		if len(others) == 0 {
			delete(members, id)
			delete(used, id) // free: the record may start it again
		} else {
			members[id] = others
		}
		fresh = append(fresh, i)
	}
	slices.SortStableFunc(fresh, func(a, b int) int {
		switch {
		case recs[a].Order < recs[b].Order:
			return -1
		case recs[a].Order > recs[b].Order:
			return 1
		}
		return 0
	})
	var review []ReviewPair
	for _, i := range fresh {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		k := recs[i].Key
		pid := ""
		for _, other := range linkTo[k] {
			if id, ok := personOf[other]; ok {
				pid = id
				break
			}
		}
		cands := m.Query(recs[i], 0)
		for _, c := range cands {
			if pid != "" {
				break
			}
			id, ok := personOf[c.B]
			if c.Decision != Link || !ok {
				continue
			}
			if m.mayJoin(i, members[id], unlinked) {
				pid = id
			}
		}
		if pid != "" {
			sum.Joined++
		} else {
			pid = PersonID(k)
			for n := 2; used[pid]; n++ {
				pid = PersonID(k) + "-" + strconv.Itoa(n)
			}
			sum.Created++
		}
		used[pid] = true
		personOf[k] = pid
		members[pid] = append(members[pid], k)
		for _, c := range cands {
			other, ok := personOf[c.B]
			if !ok || other == pid || unlinked[OverrideName(k, c.B)] {
				continue
			}
			reason := c.Guard
			switch {
			case reason != "":
			case c.Decision == Link:
				reason = "cluster guard"
			default:
				reason = "score"
			}
			review = append(review, ReviewPair{A: k, B: c.B, Weight: c.Weight, Reason: reason, Explanation: c.Explanation})
		}
	}
	next := make([]Person, 0, len(members))
	for id, ms := range members {
		next = append(next, Person{ID: id, Members: ms})
	}
	if err := s.savePersons(ctx, prevPersons, next); err != nil {
		return sum, fmt.Errorf("adding records: %w", err)
	}
	sum.Review = len(review)
	return sum, s.noteAdd(ctx, sum, through, review, personOf)
}

// noteAdd records an Add in the run summary: the highest record order
// seen (changed records are those stored after it), what the add did, and
// its review pairs merged into the queue (strongest first, at most
// maxReview; pairs whose records now share a person leave it).
func (s *Service) noteAdd(ctx context.Context, add AddSummary, through int64, review []ReviewPair, personOf map[Key]string) error {
	err := s.Docs.UpdateDocument(ctx, DocRun, "last", func(cur []byte) ([]byte, error) {
		var sum RunSummary
		if err := json.Unmarshal(cur, &sum); err != nil {
			return nil, fmt.Errorf("decoding the run summary: %w", err)
		}
		if sum.Through == through && len(review) == 0 && personOf == nil {
			return cur, nil // nothing new: no write
		}
		sum.Through = through
		if personOf != nil {
			sum.LastAdd, sum.LastAddAt = &add, s.now()
			seen := map[string]bool{}
			merged := make([]ReviewPair, 0, len(sum.Review)+len(review))
			for _, p := range append(review, sum.Review...) {
				n := OverrideName(p.A, p.B)
				pa, okA := personOf[p.A]
				pb, okB := personOf[p.B]
				if seen[n] || (okA && okB && pa == pb) {
					continue
				}
				seen[n] = true
				merged = append(merged, p)
			}
			slices.SortStableFunc(merged, func(a, b ReviewPair) int { return cmp.Compare(b.Weight, a.Weight) })
			if len(merged) > maxReview {
				merged = merged[:maxReview]
			}
			sum.Review = merged
		}
		return json.Marshal(sum)
	})
	if err != nil {
		return fmt.Errorf("saving the run summary: %w", err)
	}
	return nil
}

// mayJoin reports whether record i may join the person of members: no
// member fails a guard against it, scores more than CrossSlack below the
// review weight or was unlinked from it (the clustering's cross-pair rule).
func (m *Matcher) mayJoin(i int, members []Key, unlinked map[string]bool) bool {
	prior := m.model.PriorWeight()
	for _, k := range members {
		if unlinked[OverrideName(m.recs[i].Key, k)] {
			return false
		}
		x, ok := m.index[k]
		if !ok {
			continue // a member no longer stored
		}
		c := compare(&m.feats[i], &m.feats[x])
		if guard(c) != "" || prior+m.weight(int32(i), x, c.pat) < m.opts.ReviewWeight-m.opts.CrossSlack {
			return false
		}
	}
	return true
}

// UpdateSummary is what Update did: a full run or an add.
type UpdateSummary struct {
	// Full is set when Update made a full run; Reason says why.
	Full   bool        `json:"full"`
	Reason string      `json:"reason,omitempty"`
	Run    *RunSummary `json:"run,omitempty"`
	Add    *AddSummary `json:"add,omitempty"`
}

// Update brings the persons up to date with recs (every current record,
// as LoadPatients returns them), as the running service does after
// Patients are stored: Add, matching only the new and changed records with
// the last run's model, when there is a run whose model was fitted on at
// least half as many records as there are now; otherwise a full Run (the
// first time, or when the population has more than doubled since the
// model was fitted, so that its m, u and prior describe the records it
// scores). Person ids carry over either way.
func (s *Service) Update(ctx context.Context, recs []Record, opts Options) (UpdateSummary, error) {
	var up UpdateSummary
	last, err := s.Status(ctx)
	switch {
	case len(recs) == 0 && (err != nil || last.Model == nil):
		return up, nil // nothing stored yet, nothing to fit on
	case errors.Is(err, store.ErrNotFound) || (err == nil && last.Model == nil):
		up.Reason = "no earlier run"
	case err != nil:
		return up, err
	case len(recs) > 2*last.Records:
		up.Reason = fmt.Sprintf("the records more than doubled since the model was fitted (%d, then %d)", len(recs), last.Records)
	default:
		add, err := s.Add(ctx, recs, opts)
		if err != nil {
			return up, err
		}
		up.Add = &add
		return up, nil
	}
	up.Full = true
	_, sum, err := s.Run(ctx, recs, opts)
	if err != nil {
		return up, err
	}
	sum.Review, sum.Model = nil, nil // in the store; not needed by callers
	up.Run = &sum
	return up, nil
}
