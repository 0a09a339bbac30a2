package store

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// ContentHash is the hash backends compare to decide whether a received
// resource changed: SHA-256 of its raw bytes.
func ContentHash(raw []byte) []byte {
	sum := sha256.Sum256(raw)
	return sum[:]
}

// RawHash returns the record's ContentHash: Hash when the producer set it
// (so a bulk writer does not hash on its single thread what workers hashed
// in parallel), else computed from Raw.
func (r *Record) RawHash() []byte {
	if len(r.Hash) == sha256.Size {
		return r.Hash
	}
	return ContentHash(r.Raw)
}

// StoredVersion is the version key a record is stored under: its
// meta.versionId, or a content-hash key when the server sent none.
func StoredVersion(versionID string, hash []byte) string {
	if versionID != "" {
		return versionID
	}
	return "h:" + hex.EncodeToString(hash[:8])
}

// DisambiguatedVersion is the version key used when the server sent
// different bytes under a versionId already stored: both are kept.
func DisambiguatedVersion(version string, hash []byte) string {
	return version + "~" + hex.EncodeToString(hash[:6])
}

// SearchText is the lower-cased haystack patient search matches against:
// names and MRNs separated by a unit separator, so a search word never spans
// two fields.
func (k *PatientKeys) SearchText() string {
	parts := make([]string, 0, len(k.Names)+len(k.MRNs))
	for _, n := range k.Names {
		parts = append(parts, strings.ToLower(n))
	}
	for _, m := range k.MRNs {
		parts = append(parts, strings.ToLower(m))
	}
	return "\x1f" + strings.Join(parts, "\x1f") + "\x1f"
}

// SearchWords splits a patient search text into the lower-cased words that
// must all occur in a patient's SearchText.
func SearchWords(text string) []string {
	return strings.Fields(strings.ToLower(strings.TrimSpace(text)))
}
