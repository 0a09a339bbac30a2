package authz

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"ehrgate/secrets"
	"ehrgate/store"
)

// keyDoc is the one document holding every token-signing key (kind
// kindKeys, name keysName): public halves in the clear, private halves
// sealed with the keyring.
type keyDoc struct {
	Keys []keyRecord `json:"keys"`
}

type keyRecord struct {
	KID     string          `json:"kid"`
	Alg     string          `json:"alg"`
	Public  json.RawMessage `json:"public"`
	Private store.Sealed    `json:"private"`
	Created time.Time       `json:"created"`
	// Retire is when the key stops being published (zero: it signs).
	Retire time.Time `json:"retire,omitzero"`
}

const keysName = "token-signing-keys"

// keyReload is how often a replica rereads the keys (to follow a rotation
// made by another).
const keyReload = time.Minute

// keyStore owns the token-signing keys: the newest signs, the older ones
// stay published until no token they signed can still be valid.
type keyStore struct {
	docs store.Documents
	ring *secrets.Keyring
	now  func() time.Time
	keep time.Duration // how long a superseded key stays published

	mu     sync.Mutex
	loaded time.Time
	signer *jose.JSONWebKey
	public *jose.JSONWebKeySet
}

func keyAAD(kid string) []byte { return secrets.AAD(kid, "authz-token-signing-key") }

func (k *keyStore) newKey() (keyRecord, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return keyRecord{}, fmt.Errorf("generating a signing key: %w", err)
	}
	pub := jose.JSONWebKey{Key: priv.Public(), Algorithm: string(jose.ES384), Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return keyRecord{}, err
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	pubJSON, err := pub.MarshalJSON()
	if err != nil {
		return keyRecord{}, err
	}
	privJSON, err := (&jose.JSONWebKey{Key: priv, KeyID: pub.KeyID, Algorithm: pub.Algorithm, Use: "sig"}).MarshalJSON()
	if err != nil {
		return keyRecord{}, err
	}
	sealed, err := k.ring.Seal(privJSON, keyAAD(pub.KeyID))
	if err != nil {
		return keyRecord{}, fmt.Errorf("sealing the signing key: %w", err)
	}
	return keyRecord{KID: pub.KeyID, Alg: pub.Algorithm, Public: pubJSON, Private: store.Sealed(sealed), Created: k.now().UTC()}, nil
}

// ensure creates the first key when there is none that signs.
func (k *keyStore) ensure(ctx context.Context) error {
	return k.update(ctx, func(d *keyDoc) error {
		for _, r := range d.Keys {
			if r.Retire.IsZero() {
				return nil
			}
		}
		r, err := k.newKey()
		if err != nil {
			return err
		}
		d.Keys = append(d.Keys, r)
		return nil
	})
}

// rotate adds a key that signs from now on; the others are published
// until keep has passed, then dropped.
func (k *keyStore) rotate(ctx context.Context) (string, error) {
	var kid string
	err := k.update(ctx, func(d *keyDoc) error {
		r, err := k.newKey()
		if err != nil {
			return err
		}
		now := k.now().UTC()
		for i := range d.Keys {
			if d.Keys[i].Retire.IsZero() {
				d.Keys[i].Retire = now.Add(k.keep)
			}
		}
		d.Keys = append(d.Keys, r)
		kid = r.KID
		return nil
	})
	return kid, err
}

func (k *keyStore) update(ctx context.Context, fn func(*keyDoc) error) error {
	err := k.docs.UpdateDocument(ctx, kindKeys, keysName, func(old []byte) ([]byte, error) {
		var d keyDoc
		if old != nil {
			if err := json.Unmarshal(old, &d); err != nil {
				return nil, fmt.Errorf("decoding the signing keys: %w", err)
			}
		}
		if err := fn(&d); err != nil {
			return nil, err
		}
		now := k.now()
		live := d.Keys[:0]
		for _, r := range d.Keys {
			if r.Retire.IsZero() || now.Before(r.Retire) {
				live = append(live, r)
			}
		}
		d.Keys = live
		return json.Marshal(d)
	})
	if err != nil {
		return fmt.Errorf("updating the token-signing keys: %w", err)
	}
	k.mu.Lock()
	k.loaded = time.Time{}
	k.mu.Unlock()
	return nil
}

// load returns the signing key and the published set, reading the store
// at most once a keyReload.
func (k *keyStore) load(ctx context.Context) (*jose.JSONWebKey, *jose.JSONWebKeySet, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	if k.signer != nil && now.Sub(k.loaded) < keyReload && !now.Before(k.loaded) {
		return k.signer, k.public, nil
	}
	doc, err := k.docs.GetDocument(ctx, kindKeys, keysName)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the token-signing keys: %w", err)
	}
	var d keyDoc
	if err := json.Unmarshal(doc.Body, &d); err != nil {
		return nil, nil, fmt.Errorf("decoding the token-signing keys: %w", err)
	}
	set := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	var signing *keyRecord
	for i, r := range d.Keys {
		if !r.Retire.IsZero() && !now.Before(r.Retire) {
			continue
		}
		var pub jose.JSONWebKey
		if err := pub.UnmarshalJSON(r.Public); err != nil {
			return nil, nil, fmt.Errorf("decoding signing key %s: %w", r.KID, err)
		}
		set.Keys = append(set.Keys, pub)
		if r.Retire.IsZero() && (signing == nil || r.Created.After(signing.Created)) {
			signing = &d.Keys[i]
		}
	}
	if signing == nil {
		return nil, nil, errors.New("no token-signing key signs now")
	}
	plain, err := k.ring.Open(secrets.Sealed(signing.Private), keyAAD(signing.KID))
	if err != nil {
		return nil, nil, fmt.Errorf("opening signing key %s: %w", signing.KID, err)
	}
	var priv jose.JSONWebKey
	if err := priv.UnmarshalJSON(plain); err != nil {
		return nil, nil, fmt.Errorf("decoding signing key %s: %w", signing.KID, err)
	}
	k.signer, k.public, k.loaded = &priv, set, now
	return k.signer, k.public, nil
}

// publicSet is the JWKS to publish (apiauth.Options.KeySet).
func (k *keyStore) publicSet(ctx context.Context) (*jose.JSONWebKeySet, error) {
	_, set, err := k.load(ctx)
	return set, err
}

// RotateKey makes a new token-signing key sign from now on (on every
// replica within a minute); the old one stays published until the tokens
// it signed have expired. It returns the new key's id.
func (s *Server) RotateKey(ctx context.Context) (string, error) { return s.keys.rotate(ctx) }

// RewrapKeys re-seals what the server keeps sealed (Rewrap) under the
// keyring's primary KEK.
func (s *Server) RewrapKeys(ctx context.Context) error {
	_, err := Rewrap(ctx, s.o.Docs, s.keys.ring)
	return err
}
