// Package secrets is ehrgate's envelope encryption for secrets at rest
// (OAuth tokens, client secrets, private signing keys).
//
// Each record is encrypted with AES-256-GCM under its own random 32-byte
// data-encryption key (DEK). The DEK is itself encrypted ("wrapped") with
// AES-256-GCM under a key-encryption key (KEK) that never touches the
// database. Both layers take associated data built by AAD from the record's
// owner and purpose (for example a connection name and "token"), so a
// ciphertext copied into another row fails to decrypt.
//
// A Keyring holds one primary KEK (used to wrap new DEKs) and any number of
// older KEKs (accepted for unwrapping only). Rotating the KEK is therefore:
// add a new primary, Rewrap every record (the bulk ciphertext is untouched;
// only the 60-byte wrapped DEK changes), then drop the old KEK. Readers keep
// working throughout because both KEKs unwrap.
//
// KEKs are identified by a short id derived from the key (HKDF-SHA-256), so
// a record names the KEK that wrapped it without configuration.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// KeySize is the size in bytes of a KEK and of a DEK (AES-256).
const KeySize = 32

// ErrUnknownKEK is returned (wrapped) when a record was wrapped by a KEK the
// keyring does not hold.
var ErrUnknownKEK = errors.New("secrets: unknown key-encryption key")

// ErrDecrypt is returned (wrapped) when a record fails authentication: it
// was tampered with, belongs to another owner or purpose, or the key is
// wrong. It never says which, on purpose.
var ErrDecrypt = errors.New("secrets: decryption failed")

// Sealed is one envelope-encrypted record. Its fields are safe to store and
// to log by length; none of them is secret on its own.
type Sealed struct {
	KEKID      string // id of the KEK that wrapped WrappedKey
	WrappedKey []byte // nonce || AES-GCM(KEK, DEK)
	Ciphertext []byte // nonce || AES-GCM(DEK, plaintext)
}

// KEK is a key-encryption key. Its bytes are never printed: String, GoString,
// Format and LogValue show only the id.
type KEK struct {
	id  string
	key []byte
}

// NewKEK returns a KEK from 32 raw bytes.
func NewKEK(key []byte) (KEK, error) {
	if len(key) != KeySize {
		return KEK{}, fmt.Errorf("secrets: a KEK is %d bytes, got %d", KeySize, len(key))
	}
	id, err := kekID(key)
	if err != nil {
		return KEK{}, err
	}
	return KEK{id: id, key: append([]byte(nil), key...)}, nil
}

// GenerateKEK returns a new random KEK.
func GenerateKEK() (KEK, error) {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		return KEK{}, fmt.Errorf("generating KEK: %w", err)
	}
	return NewKEK(b)
}

func kekID(key []byte) (string, error) {
	b, err := hkdf.Key(sha256.New, key, nil, "ehrgate kek id v1", 8)
	if err != nil {
		return "", fmt.Errorf("deriving KEK id: %w", err)
	}
	return "kek-" + hex.EncodeToString(b), nil
}

// ID returns the KEK's public identifier.
func (k KEK) ID() string { return k.id }

// Bytes returns a copy of the raw key, for writing a key file.
func (k KEK) Bytes() []byte { return append([]byte(nil), k.key...) }

// String implements fmt.Stringer without revealing the key.
func (k KEK) String() string { return "KEK(" + k.id + ")" }

// GoString implements fmt.GoStringer without revealing the key.
func (k KEK) GoString() string { return k.String() }

// Format implements fmt.Formatter so that every verb (%v, %+v, %#v, %x, %s)
// prints only the id.
func (k KEK) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }

// LogValue implements slog.LogValuer.
func (k KEK) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Keyring holds a primary KEK and older KEKs still accepted for reading. It
// is safe for concurrent use.
type Keyring struct {
	mu      sync.RWMutex
	primary KEK
	all     map[string]KEK
	reload  func() // optional: refresh keys from their source when it changed
}

func (r *Keyring) refresh() {
	if r.reload != nil {
		r.reload()
	}
}

// NewKeyring returns a keyring that wraps with primary and also unwraps
// with older.
func NewKeyring(primary KEK, older ...KEK) *Keyring {
	r := &Keyring{}
	r.Set(primary, older...)
	return r
}

// Set replaces the keyring's keys (used when a key file is reloaded).
func (r *Keyring) Set(primary KEK, older ...KEK) {
	all := map[string]KEK{primary.id: primary}
	for _, k := range older {
		all[k.id] = k
	}
	r.mu.Lock()
	r.primary, r.all = primary, all
	r.mu.Unlock()
}

// PrimaryID returns the id of the KEK new records are wrapped with.
func (r *Keyring) PrimaryID() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.primary.id
}

// IDs returns the ids of every KEK the keyring accepts.
func (r *Keyring) IDs() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ids := make([]string, 0, len(r.all))
	for id := range r.all {
		ids = append(ids, id)
	}
	return ids
}

// String implements fmt.Stringer without revealing keys.
func (r *Keyring) String() string { return "Keyring(primary=" + r.PrimaryID() + ")" }

// LogValue implements slog.LogValuer.
func (r *Keyring) LogValue() slog.Value { return slog.StringValue(r.String()) }

// AAD returns associated data binding a record to its owner (for example a
// connection name or a key id) and its purpose ("access-token",
// "signing-key"). The encoding is length-prefixed, so ("ab","c") and
// ("a","bc") differ.
func AAD(owner, purpose string) []byte {
	b := make([]byte, 0, 16+len(owner)+len(purpose))
	b = append(b, "ehrgate/v1"...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(owner)))
	b = append(b, owner...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(purpose)))
	b = append(b, purpose...)
	return b
}

// Seal encrypts plaintext under a fresh DEK wrapped by the primary KEK.
func (r *Keyring) Seal(plaintext, aad []byte) (Sealed, error) {
	dek := make([]byte, KeySize)
	if _, err := rand.Read(dek); err != nil {
		return Sealed{}, fmt.Errorf("generating data key: %w", err)
	}
	ct, err := gcmSeal(dek, plaintext, aad)
	if err != nil {
		return Sealed{}, fmt.Errorf("encrypting record: %w", err)
	}
	r.refresh()
	r.mu.RLock()
	kek := r.primary
	r.mu.RUnlock()
	wrapped, err := gcmSeal(kek.key, dek, wrapAAD(kek.id, aad))
	if err != nil {
		return Sealed{}, fmt.Errorf("wrapping data key: %w", err)
	}
	return Sealed{KEKID: kek.id, WrappedKey: wrapped, Ciphertext: ct}, nil
}

// Open decrypts a sealed record. aad must equal the one given to Seal.
func (r *Keyring) Open(s Sealed, aad []byte) ([]byte, error) {
	dek, err := r.unwrap(s, aad)
	if err != nil {
		return nil, err
	}
	pt, err := gcmOpen(dek, s.Ciphertext, aad)
	if err != nil {
		return nil, fmt.Errorf("decrypting record: %w", ErrDecrypt)
	}
	return pt, nil
}

// Rewrap re-wraps a record's DEK under the primary KEK, leaving the
// ciphertext unchanged. A record already under the primary is returned as is.
func (r *Keyring) Rewrap(s Sealed, aad []byte) (Sealed, error) {
	r.refresh()
	r.mu.RLock()
	kek := r.primary
	r.mu.RUnlock()
	if s.KEKID == kek.id {
		return s, nil
	}
	dek, err := r.unwrap(s, aad)
	if err != nil {
		return Sealed{}, err
	}
	// Verify the record before committing to the new wrapping, so a
	// corrupt row is reported rather than silently carried forward.
	if _, err := gcmOpen(dek, s.Ciphertext, aad); err != nil {
		return Sealed{}, fmt.Errorf("verifying record before re-wrapping: %w", ErrDecrypt)
	}
	wrapped, err := gcmSeal(kek.key, dek, wrapAAD(kek.id, aad))
	if err != nil {
		return Sealed{}, fmt.Errorf("re-wrapping data key: %w", err)
	}
	return Sealed{KEKID: kek.id, WrappedKey: wrapped, Ciphertext: s.Ciphertext}, nil
}

func (r *Keyring) unwrap(s Sealed, aad []byte) ([]byte, error) {
	r.mu.RLock()
	kek, ok := r.all[s.KEKID]
	r.mu.RUnlock()
	if !ok {
		r.refresh()
		r.mu.RLock()
		kek, ok = r.all[s.KEKID]
		r.mu.RUnlock()
	}
	if !ok {
		return nil, fmt.Errorf("unwrapping data key wrapped by %q: %w", s.KEKID, ErrUnknownKEK)
	}
	dek, err := gcmOpen(kek.key, s.WrappedKey, wrapAAD(kek.id, aad))
	if err != nil || len(dek) != KeySize {
		return nil, fmt.Errorf("unwrapping data key: %w", ErrDecrypt)
	}
	return dek, nil
}

func wrapAAD(kekID string, aad []byte) []byte {
	b := append([]byte("ehrgate/dek/"+kekID+"/"), aad...)
	return b
}

func gcmSeal(key, plaintext, aad []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, g.NonceSize(), g.NonceSize()+len(plaintext)+g.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return g.Seal(nonce, nonce, plaintext, aad), nil
}

func gcmOpen(key, sealed, aad []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if len(sealed) < g.NonceSize()+g.Overhead() {
		return nil, errors.New("short ciphertext")
	}
	return g.Open(nil, sealed[:g.NonceSize()], sealed[g.NonceSize():], aad)
}
