package identity

import (
	"context"
	"encoding/json"
	"fmt"

	"ehrgate/normalize"
	"ehrgate/store"
)

// PatientJSON renders a record as a minimal FHIR R4 Patient resource (id,
// identifiers with the MRN typed MR, official name with suffix, gender,
// birth date, address text, phone, email), for writing synthetic ground
// truth where a FHIR source is expected.
func PatientJSON(r Record, mrnSystem string) ([]byte, error) {
	type coding struct {
		System string `json:"system"`
		Code   string `json:"code"`
	}
	type identifier struct {
		Type *struct {
			Coding []coding `json:"coding"`
		} `json:"type,omitempty"`
		System string `json:"system"`
		Value  string `json:"value"`
	}
	type name struct {
		Use    string   `json:"use"`
		Family string   `json:"family,omitempty"`
		Given  []string `json:"given,omitempty"`
		Suffix []string `json:"suffix,omitempty"`
	}
	type contact struct {
		System string `json:"system"`
		Value  string `json:"value"`
	}
	type address struct {
		Text string `json:"text"`
	}
	p := struct {
		ResourceType string       `json:"resourceType"`
		ID           string       `json:"id"`
		Identifier   []identifier `json:"identifier,omitempty"`
		Name         []name       `json:"name,omitempty"`
		Telecom      []contact    `json:"telecom,omitempty"`
		Gender       string       `json:"gender,omitempty"`
		BirthDate    string       `json:"birthDate,omitempty"`
		Address      []address    `json:"address,omitempty"`
	}{ResourceType: "Patient", ID: r.Key.ID, Gender: r.Gender, BirthDate: r.BirthDate}
	for _, id := range r.Identifiers {
		x := identifier{System: id.System, Value: id.Value}
		if id.System == mrnSystem {
			x.Type = &struct {
				Coding []coding `json:"coding"`
			}{[]coding{{System: "http://terminology.hl7.org/CodeSystem/v2-0203", Code: "MR"}}}
		}
		p.Identifier = append(p.Identifier, x)
	}
	n := name{Use: "official", Family: r.Family}
	for _, g := range []string{r.Given, r.Middle} {
		if g != "" {
			n.Given = append(n.Given, g)
		}
	}
	if r.Suffix != "" {
		n.Suffix = []string{r.Suffix}
	}
	if n.Family != "" || len(n.Given) > 0 {
		p.Name = []name{n}
	}
	for _, prev := range r.Previous {
		p.Name = append(p.Name, name{Use: "old", Family: prev, Given: n.Given})
	}
	if r.Phone != "" {
		p.Telecom = append(p.Telecom, contact{"phone", r.Phone})
	}
	if r.Email != "" {
		p.Telecom = append(p.Telecom, contact{"email", r.Email})
	}
	if r.Address != "" {
		p.Address = []address{{r.Address}}
	}
	return json.Marshal(p)
}

// RawName is the part of a FHIR HumanName that the normalized Patient does
// not keep.
type RawName struct {
	Use    string   `json:"use"`
	Family string   `json:"family"`
	Suffix []string `json:"suffix"`
}

// namesFromRaw returns the generational suffix of the first current name
// and the surnames of old and maiden names.
func namesFromRaw(names []RawName) (suffix string, previous []string) {
	for _, n := range names {
		switch {
		case n.Use == "old" || n.Use == "maiden":
			if n.Family != "" {
				previous = append(previous, n.Family)
			}
		case suffix == "" && len(n.Suffix) > 0:
			suffix = n.Suffix[0]
		}
	}
	return suffix, previous
}

// ExtraNames completes a record made by FromPatient with what the
// normalized Patient does not keep: the suffix and previous surnames from
// the raw resource's names.
func ExtraNames(r *Record, raw []byte) {
	var p struct {
		Name []RawName `json:"name"`
	}
	if json.Unmarshal(raw, &p) == nil {
		r.Suffix, r.Previous = namesFromRaw(p.Name)
	}
}

// LoadPatients reads every current Patient of the store (all connections)
// as records: demographics from the normalized form, the generational
// suffix from the raw resource (the normalized model does not keep it),
// and Order from when ehrgate fetched it.
func LoadPatients(ctx context.Context, s store.PagedScanner) ([]Record, error) {
	var out []Record
	q := store.ScanQuery{Type: "Patient", Limit: 1000}
	for {
		page, err := s.ScanCurrentPage(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("reading patients: %w", err)
		}
		if len(page) == 0 {
			return out, nil
		}
		q.After = page[len(page)-1].Key
		for i := range page {
			rec := &page[i]
			var p normalize.Patient
			if err := json.Unmarshal(rec.Normalized, &p); err != nil {
				continue // nothing to match on; the quality report shows such rows
			}
			p.Source.ID = rec.ID
			r := FromPatient(rec.Connection, p)
			var raw struct {
				Name []RawName `json:"name"`
			}
			if json.Unmarshal(rec.Raw, &raw) == nil {
				r.Suffix, r.Previous = namesFromRaw(raw.Name)
			}
			r.Order = rec.FetchedAt.UnixNano()
			out = append(out, r)
		}
	}
}
