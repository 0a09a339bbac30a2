package sqlite

import (
	_ "embed"
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/s2"

	"ehrgate/store"
)

// Resource bodies (raw and normalized JSON) are stored compressed with S2
// and a dictionary of typical FHIR content: one resource is a small
// document (~0.5-2 KB) that compresses poorly on its own, but most of its
// bytes (element names, code system and profile URLs) are in the
// dictionary. A stored body is either the plain bytes (always a JSON value,
// so never starting with packMagic, which is not valid UTF-8) or
//
//	packMagic, dictionary id, S2 block encoded against that dictionary
//
// Rows written before compression existed stay plain and read as before.
// Dictionaries are never changed once released: a new one gets a new id
// and the old ones stay so that old rows remain readable. New ones are built
// by `go run ./internal/dictbuild/cmd dict RAWID NORMID`.
const packMagic = 0xF5

var (
	// Released dictionaries, kept so that rows written with them stay
	// readable: 1 and 2 were built before the model had extensions and
	// medication periods.
	//go:embed dict/raw-1.s2dict
	rawDict1 []byte
	//go:embed dict/normalized-2.s2dict
	normDict2 []byte
	// The dictionaries of new rows, as `go generate` builds them now.
	//go:embed dict/raw-3.s2dict
	rawDict3 []byte
	//go:embed dict/normalized-4.s2dict
	normDict4 []byte

	// dicts by id.
	dicts = map[byte]*s2.Dict{1: s2.NewDict(rawDict1), 2: s2.NewDict(normDict2),
		3: s2.NewDict(rawDict3), 4: s2.NewDict(normDict4)}
)

// Dictionary ids used for new rows.
const (
	rawDictID        = 3
	normalizedDictID = 4
)

// packedBackend names the encoding in store.Encoded.
const packedBackend = "sqlite/s2dict-3-4"

// pack returns b in storage form: compressed with dictionary id when that
// is smaller, else b itself.
func pack(b []byte, id byte) []byte {
	if len(b) == 0 {
		return b
	}
	d := dicts[id]
	scratch, _ := packScratch.Get().(*[]byte)
	if scratch == nil {
		scratch = new([]byte)
	}
	if n := s2.MaxEncodedLen(len(b)); cap(*scratch) < n {
		*scratch = make([]byte, n)
	}
	enc := d.Encode((*scratch)[:cap(*scratch)], b)
	defer packScratch.Put(scratch)
	if 2+len(enc) >= len(b) {
		return b
	}
	// An exact-size copy: the record may wait in a queue for a while, and
	// a worst-case-size buffer per body raised bulk ingest's peak RSS by
	// a fifth.
	out := make([]byte, 2+len(enc))
	out[0], out[1] = packMagic, id
	copy(out[2:], enc)
	return out
}

// packScratch holds encode buffers of the worst-case size.
var packScratch sync.Pool

// unpack returns the plain bytes of a stored body.
func unpack(b []byte) ([]byte, error) {
	if len(b) == 0 || b[0] != packMagic {
		return b, nil
	}
	if len(b) < 2 {
		return nil, errors.New("stored body: truncated header")
	}
	d := dicts[b[1]]
	if d == nil {
		return nil, fmt.Errorf("stored body: unknown dictionary %d (written by a newer ehrgate?)", b[1])
	}
	out, err := d.Decode(nil, b[2:])
	if err != nil {
		return nil, fmt.Errorf("stored body: %w", err)
	}
	return out, nil
}

// PrepareRecord computes rec's storage form (compressed bodies) ahead of
// the write, so that callers with parallel workers (bulk ingest) take the
// compression off the single writer thread. Writes of records without it
// compress on the writer.
func (s *Store) PrepareRecord(rec *store.Record) {
	rec.Encoded = &store.Encoded{Backend: packedBackend, Raw: pack(rec.Raw, rawDictID),
		Normalized: pack(rec.Normalized, normalizedDictID)}
}

// storedBodies returns rec's raw and normalized bytes as stored.
func storedBodies(rec *store.Record) (raw, normalized []byte) {
	if e := rec.Encoded; e != nil && e.Backend == packedBackend {
		return e.Raw, e.Normalized
	}
	return pack(rec.Raw, rawDictID), pack(rec.Normalized, normalizedDictID)
}
