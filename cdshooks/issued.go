package cdshooks

import "sync"

// maxIssued bounds how many issued cards a Service remembers for feedback.
const maxIssued = 50_000

// issuedCard is what the service remembers of a card it sent: which rule
// made it and how urgent it was (no patient data).
type issuedCard struct {
	Kind, Indicator string
}

// issuedCards remembers the kind of the last maxIssued cards sent, by
// uuid, so that feedback (which names only the card's uuid) can be counted
// per kind of card. It lives in memory: feedback on a card sent by another
// replica, or before a restart, is recorded without a kind.
type issuedCards struct {
	mu    sync.Mutex
	m     map[string]issuedCard
	order []string // ring of uuids, oldest at next
	next  int
}

func newIssuedCards() *issuedCards { return &issuedCards{m: map[string]issuedCard{}} }

// add remembers the cards, forgetting the oldest beyond maxIssued.
func (ic *issuedCards) add(cards []Card) {
	if len(cards) == 0 {
		return
	}
	ic.mu.Lock()
	defer ic.mu.Unlock()
	for _, c := range cards {
		if len(ic.order) < maxIssued {
			ic.order = append(ic.order, c.UUID)
		} else {
			delete(ic.m, ic.order[ic.next])
			ic.order[ic.next] = c.UUID
			ic.next = (ic.next + 1) % maxIssued
		}
		ic.m[c.UUID] = issuedCard{Kind: c.kind, Indicator: c.Indicator}
	}
}

// get returns what is remembered of card uuid.
func (ic *issuedCards) get(uuid string) (issuedCard, bool) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	c, ok := ic.m[uuid]
	return c, ok
}
