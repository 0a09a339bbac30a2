package ehr

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
)

// Detection weights: how much one matching field says about the vendor. A
// software name or publisher is strong evidence; URLs are weaker (proxies
// and custom domains hide them).
const (
	weightSoftware    = 0.6
	weightPublisher   = 0.5
	weightSMART       = 0.5
	weightName        = 0.4
	weightCopyright   = 0.4
	weightDescription = 0.3
	weightURL         = 0.3
	// minConfidence is the least evidence that picks a vendor over generic.
	minConfidence = 0.3
)

// Detect guesses the vendor of a FHIR server from its CapabilityStatement
// (or DSTU2 Conformance) and/or its .well-known/smart-configuration; either
// may be nil. It returns the vendor name (Generic when nothing matches),
// the software version the server reports ("" when none) and a confidence
// in [0, 1]. Malformed JSON counts as no evidence. ctx is accepted for
// future lookups (e.g. fetching a vendor's endpoint directory) and is not
// used yet.
func Detect(ctx context.Context, capabilityJSON, smartConfigJSON []byte) (vendor, version string, confidence float64) {
	_ = ctx
	var cs struct {
		Name           string                         `json:"name"`
		Publisher      string                         `json:"publisher"`
		Copyright      string                         `json:"copyright"`
		URL            string                         `json:"url"`
		Software       struct{ Name, Version string } `json:"software"`
		Implementation struct {
			Description string `json:"description"`
			URL         string `json:"url"`
		} `json:"implementation"`
	}
	readable := json.Unmarshal(capabilityJSON, &cs) == nil
	var smartURLs []string
	var sc map[string]json.RawMessage
	if json.Unmarshal(smartConfigJSON, &sc) == nil {
		readable = true
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range sc {
				if !yield(k) {
					return
				}
			}
		}) {
			var s string
			if json.Unmarshal(sc[k], &s) == nil && strings.Contains(s, "://") {
				smartURLs = append(smartURLs, s)
			}
		}
	}

	best, bestScore := Generic, 0.0
	for _, v := range Vendors() {
		a := MustLookup(v)
		d := a.p.Detect
		score := 0.0
		if matchAny(d.Software, cs.Software.Name) {
			score += weightSoftware
		}
		if matchAny(d.Publisher, cs.Publisher) {
			score += weightPublisher
		}
		if matchAny(d.Name, cs.Name) {
			score += weightName
		}
		if matchAny(d.Copyright, cs.Copyright) {
			score += weightCopyright
		}
		if matchAny(d.Description, cs.Implementation.Description) {
			score += weightDescription
		}
		if matchAny(d.URL, cs.URL) || matchAny(d.URL, cs.Implementation.URL) {
			score += weightURL
		}
		for _, u := range smartURLs {
			if matchAny(d.SMART, u) {
				score += weightSMART
				break
			}
		}
		if score > bestScore {
			best, bestScore = v, score
		}
	}
	if bestScore < minConfidence {
		best = Generic
		bestScore = 0
		if readable {
			// A readable document with no vendor marks: a plain FHIR server.
			bestScore = 0.5
		}
	}
	version = cs.Software.Version
	if a, err := Lookup(best); err == nil && a.p.Detect.VersionFrom == "software.name" && cs.Software.Name != "" {
		version = strings.TrimSpace(cs.Software.Name + " " + cs.Software.Version)
	}
	return best, version, min(bestScore, 1)
}

func matchAny(patterns []string, s string) bool {
	if s == "" {
		return false
	}
	s = strings.ToLower(s)
	for _, p := range patterns {
		if p != "" && strings.Contains(s, strings.ToLower(p)) {
			return true
		}
	}
	return false
}
