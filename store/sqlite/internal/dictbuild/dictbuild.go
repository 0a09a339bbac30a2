// Package dictbuild builds the compression dictionaries of the SQLite
// store (store/sqlite/dict) from synthetic resources, deterministically.
//
// A dictionary is a sample of typical content: resources of every type the
// synthetic generator emits (its own seed, not the benchmark corpus's), and
// their normalized JSON. Small documents compress several times better with
// one, because the element names, code system URLs and profile URLs every
// resource repeats are found in it instead of in the document.
package dictbuild

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/klauspost/compress/s2"

	"ehrgate/refresh"
	"ehrgate/synth"
)

// Seed and Patients select the synthetic sample. A released dictionary never
// changes (stored blobs name theirs by id); when the synthetic data or the
// model drift far enough that a fresh build compresses clearly better
// (TestDictionariesFitTodaysData), the new build gets new ids.
const (
	Seed     = 20261123
	Patients = 12
)

// Docs returns the sample's documents: each synthetic resource (raw) and
// its normalized JSON, in generation order.
func Docs() (raw, normalized [][]byte, err error) {
	g := synth.New(synth.Options{Patients: Patients, Seed: Seed})
	err = g.Each(func(typ string, doc json.RawMessage) error {
		rec, err := refresh.NewRecord("dict", doc, time.Unix(0, 0), "")
		if err != nil {
			return fmt.Errorf("normalizing a %s: %w", typ, err)
		}
		raw = append(raw, rec.Raw)
		normalized = append(normalized, rec.Normalized)
		return nil
	})
	return raw, normalized, err
}

// Build returns the serialized raw-resource and normalized-JSON
// dictionaries built from today's synthetic sample.
func Build() (raw, normalized []byte, err error) {
	g := synth.New(synth.Options{Patients: Patients, Seed: Seed})
	// Round-robin over types so that every type is represented near the end
	// of the sample (s2 keeps the last MaxDictSize bytes).
	byType := map[string][][2][]byte{}
	var order []string
	err = g.Each(func(typ string, doc json.RawMessage) error {
		rec, err := refresh.NewRecord("dict", doc, time.Unix(0, 0), "")
		if err != nil {
			return fmt.Errorf("normalizing a %s: %w", typ, err)
		}
		if _, ok := byType[typ]; !ok {
			order = append(order, typ)
		}
		byType[typ] = append(byType[typ], [2][]byte{rec.Raw, rec.Normalized})
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	var rawSample, normSample []byte
	for i := 0; len(rawSample) < 2*s2.MaxDictSize || len(normSample) < 2*s2.MaxDictSize; i++ {
		added := false
		for _, typ := range order {
			docs := byType[typ]
			if i*7 >= len(docs) {
				continue
			}
			d := docs[(i*7)%len(docs)]
			rawSample = append(rawSample, d[0]...)
			normSample = append(normSample, d[1]...)
			added = true
		}
		if !added {
			break
		}
	}
	rd := s2.MakeDict(rawSample, []byte(`{"resourceType":"`))
	nd := s2.MakeDict(normSample, []byte(`{"source":{"connection":"`))
	if rd == nil || nd == nil {
		return nil, nil, fmt.Errorf("building dictionaries: sample too small")
	}
	return rd.Bytes(), nd.Bytes(), nil
}
