package ehrsim

import (
	"encoding/json"
	"slices"
)

// Population is the server's loaded patients as a Bulk Data population
// (bulkexport.Live makes it a bulkexport.Source): patient i is the i-th of PatientIDs, and
// its resources are the Patient and every resource of its compartment as
// the server holds them at the call, in type then id order. Unlike a
// synth.Generator it follows what is loaded and written later, so an
// export with _since finds a chart that changed (issue 17's pipeline
// tests). Files are generated again on each download, so a resource that
// changes between two downloads of one export shows its new version.
type Population struct{ s *Server }

// Population returns the server's patients as a Bulk Data source.
func (s *Server) Population() *Population { return &Population{s: s} }

// Patients returns the number of loaded patients.
func (p *Population) Patients() int {
	p.s.mu.RLock()
	defer p.s.mu.RUnlock()
	return len(p.s.ix.byType["Patient"])
}

// PatientID returns the id of patient i ("" when out of range).
func (p *Population) PatientID(i int) string {
	p.s.mu.RLock()
	defer p.s.mu.RUnlock()
	list := p.s.ix.byType["Patient"]
	if i < 0 || i >= len(list) {
		return ""
	}
	return list[i].id
}

// Compartment calls fn with patient i's Patient and then each resource of
// its compartment, as served.
func (p *Population) Compartment(i int, fn func(typ string, raw json.RawMessage)) {
	p.s.mu.RLock()
	defer p.s.mu.RUnlock()
	list := p.s.ix.byType["Patient"]
	if i < 0 || i >= len(list) {
		return
	}
	pat := list[i]
	fn("Patient", pat.body)
	byType := p.s.ix.byPatient[pat.id]
	types := make([]string, 0, len(byType))
	for t := range byType {
		if t != "Patient" {
			types = append(types, t)
		}
	}
	slices.Sort(types)
	for _, t := range types {
		for _, e := range byType[t] {
			fn(t, e.body)
		}
	}
}
