package quality

import (
	"context"
	"fmt"
	"sort"

	"ehrgate/normalize"
	"ehrgate/store"
	"ehrgate/terminology"
)

// UnmappedCode is one source code the chain could not map, with how often
// it occurs.
type UnmappedCode struct {
	Type    string `json:"type"`    // resource type
	Element string `json:"element"` // model element (code, medication, ...)
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"` // the source's display or text
	Count   int    `json:"count"`
}

// UnknownExtension is an extension URL nobody understands, on one resource
// type, with how many resources carry it.
type UnknownExtension struct {
	Type  string `json:"type"`
	URL   string `json:"url"`
	Count int    `json:"count"`
}

// RuleCount is how many resources failed one US Core rule.
type RuleCount struct {
	Rule     string `json:"rule"`
	Profile  string `json:"profile"`
	Type     string `json:"type"`
	Element  string `json:"element"`
	Severity string `json:"severity"`
	Count    int    `json:"count"`
}

// ConnectionReport summarises the findings of one connection.
type ConnectionReport struct {
	Connection string         `json:"connection"`
	Resources  int            `json:"resources"`
	Failed     int            `json:"failed"` // could not be normalized (see quarantine)
	Unmapped   []UnmappedCode `json:"unmapped"`
	// UnknownExtensions are the extensions nobody understands, most
	// frequent first.
	UnknownExtensions []UnknownExtension `json:"unknownExtensions"`
	MissingLOINC      int                `json:"missingLoinc"`
	MissingRxNorm     int                `json:"missingRxnorm"`
	StaleMedications  int                `json:"staleMedications"`
	Profile           []RuleCount        `json:"profile"`
}

// Report is the data-quality report of a store.
type Report struct {
	Connections []*ConnectionReport `json:"connections"`
}

// Build scans every current record (of one connection, or all when
// connection is "") and summarises its findings with normalizer n.
func Build(ctx context.Context, s store.PagedScanner, n *normalize.Normalizer, connection string) (*Report, error) {
	conns := map[string]*ConnectionReport{}
	unmapped := map[string]map[UnmappedCode]int{}
	rules := map[string]map[RuleCount]int{}
	exts := map[string]map[UnknownExtension]int{}
	q := store.ScanQuery{Connection: connection, Limit: 500}
	for {
		page, err := s.ScanCurrentPage(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("building quality report: %w", err)
		}
		if len(page) == 0 {
			break
		}
		q.After = page[len(page)-1].Key
		for i := range page {
			rec := &page[i]
			cr := conns[rec.Connection]
			if cr == nil {
				cr = &ConnectionReport{Connection: rec.Connection}
				conns[rec.Connection] = cr
				unmapped[rec.Connection] = map[UnmappedCode]int{}
				rules[rec.Connection] = map[RuleCount]int{}
				exts[rec.Connection] = map[UnknownExtension]int{}
			}
			cr.Resources++
			findings, _, err := Check(n, normalize.Ref{Connection: rec.Connection, Type: rec.Type, ID: rec.ID, VersionID: rec.VersionID}, rec.Raw)
			if err != nil {
				cr.Failed++
				continue
			}
			for _, f := range findings {
				switch f.Kind {
				case KindUnmapped:
					k := UnmappedCode{Type: f.Type, Element: f.Element, System: f.Code.System, Code: f.Code.Code, Display: f.Code.Display}
					unmapped[rec.Connection][k]++
				case KindMissingLOINC:
					cr.MissingLOINC++
				case KindMissingRxNorm:
					cr.MissingRxNorm++
				case KindStale:
					cr.StaleMedications++
				case KindUnknownExtension:
					exts[rec.Connection][UnknownExtension{Type: f.Type, URL: f.Extension}]++
				case KindProfile:
					k := RuleCount{Rule: f.Rule, Profile: f.Profile, Type: f.Type, Element: f.Element, Severity: f.Severity}
					rules[rec.Connection][k]++
				}
			}
		}
	}
	rep := &Report{}
	for name, cr := range conns {
		for k, c := range unmapped[name] {
			k.Count = c
			cr.Unmapped = append(cr.Unmapped, k)
		}
		sort.Slice(cr.Unmapped, func(i, j int) bool {
			a, b := cr.Unmapped[i], cr.Unmapped[j]
			if a.Count != b.Count {
				return a.Count > b.Count
			}
			if a.System != b.System {
				return a.System < b.System
			}
			if a.Code != b.Code {
				return a.Code < b.Code
			}
			return a.Display < b.Display
		})
		for k, c := range exts[name] {
			k.Count = c
			cr.UnknownExtensions = append(cr.UnknownExtensions, k)
		}
		sort.Slice(cr.UnknownExtensions, func(i, j int) bool {
			a, b := cr.UnknownExtensions[i], cr.UnknownExtensions[j]
			if a.Count != b.Count {
				return a.Count > b.Count
			}
			if a.URL != b.URL {
				return a.URL < b.URL
			}
			return a.Type < b.Type
		})
		for k, c := range rules[name] {
			k.Count = c
			cr.Profile = append(cr.Profile, k)
		}
		sort.Slice(cr.Profile, func(i, j int) bool {
			a, b := cr.Profile[i], cr.Profile[j]
			if sa, sb := severityRank(a.Severity), severityRank(b.Severity); sa != sb {
				return sa < sb
			}
			if a.Count != b.Count {
				return a.Count > b.Count
			}
			return a.Rule < b.Rule
		})
		rep.Connections = append(rep.Connections, cr)
	}
	sort.Slice(rep.Connections, func(i, j int) bool { return rep.Connections[i].Connection < rep.Connections[j].Connection })
	return rep, nil
}

func severityRank(s string) int {
	switch s {
	case SeverityError:
		return 0
	case SeverityWarning:
		return 1
	}
	return 2
}

// MapTemplate returns the unmapped codes of a report as local-code map rows
// with the target columns empty: the file a person fills in (see
// terminology.WriteLocalMap). Codes without a code (text only) cannot be
// mapped by code and are left out.
func (r *Report) MapTemplate() []terminology.LocalMapRow {
	var out []terminology.LocalMapRow
	for _, cr := range r.Connections {
		seen := map[[2]string]int{}
		for _, u := range cr.Unmapped {
			if u.Code == "" {
				continue
			}
			k := [2]string{u.System, u.Code}
			if i, dup := seen[k]; dup {
				out[i].Count += u.Count
				continue
			}
			seen[k] = len(out)
			out = append(out, terminology.LocalMapRow{Connection: cr.Connection, SourceSystem: u.System, SourceCode: u.Code,
				SourceDisplay: u.Display, Count: u.Count})
		}
	}
	return out
}
