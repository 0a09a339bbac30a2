package identity

import (
	"context"
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
	New     int `json:"new"`     // records no person held
	Joined  int `json:"joined"`  // of them, joined to an existing person (or one created by an earlier record of this call)
	Created int `json:"created"` // persons created
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

// Add matches the records no stored person holds yet (new Patients) against
// the stored persons, with the last run's model, without fitting or
// clustering again: the cheap step to take when Patients are stored
// between full runs. recs are all current records (new and old), as
// LoadPatients returns them.
//
// New records are taken oldest first. Each joins the person of its best
// candidate that scores a link (Query), provided that no member of that
// person fails a guard against it, scores more than CrossSlack below the
// review weight, or was unlinked from it by a person; a link override
// joins it to the other record's person outright. A record that joins
// nobody starts a person (PersonID of its key). Existing persons keep their
// ids and members: a full Run may later regroup them (and carries ids
// forward as always). It returns ErrNoRun when there was no run.
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
	personOf := map[Key]string{}
	members := map[string][]Key{}
	used := map[string]bool{}
	for _, p := range prevPersons {
		members[p.ID] = slices.Clone(p.Members)
		used[p.ID] = true
		for _, k := range p.Members {
			personOf[k] = p.ID
		}
	}
	var fresh []int
	for i := range recs {
		if _, ok := personOf[recs[i].Key]; !ok {
			fresh = append(fresh, i)
		}
	}
	sum.New = len(fresh)
	if len(fresh) == 0 {
		return sum, nil
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
		for _, c := range m.Query(recs[i], 0) {
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
	}
	next := make([]Person, 0, len(members))
	for id, ms := range members {
		next = append(next, Person{ID: id, Members: ms})
	}
	if err := s.savePersons(ctx, prevPersons, next); err != nil {
		return sum, fmt.Errorf("adding records: %w", err)
	}
	return sum, nil
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
