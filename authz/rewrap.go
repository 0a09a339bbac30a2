package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"ehrgate/secrets"
	"ehrgate/store"
)

// Rewrap re-seals, under ring's primary key-encryption key, everything
// the authorization server keeps sealed in docs: its token-signing keys
// and the sessions (person, patient in context) of stored codes, tokens
// and PKCE requests. `ehrgate keys rotate-kek` runs it, so that codes and
// refresh tokens issued before a rotation still work once the old KEK is
// dropped. It needs no running Server and returns how many records it
// re-sealed.
func Rewrap(ctx context.Context, docs store.Documents, ring *secrets.Keyring) (int, error) {
	n := 0
	err := docs.UpdateDocument(ctx, kindKeys, keysName, func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, errNoChange
		}
		var d keyDoc
		if err := json.Unmarshal(old, &d); err != nil {
			return nil, fmt.Errorf("reading the signing keys: %w", err)
		}
		for i, r := range d.Keys {
			sealed, err := ring.Rewrap(secrets.Sealed(r.Private), keyAAD(r.KID))
			if err != nil {
				return nil, fmt.Errorf("re-wrapping signing key %s: %w", r.KID, err)
			}
			d.Keys[i].Private = store.Sealed(sealed)
			n++
		}
		return json.Marshal(d)
	})
	if err != nil && !errors.Is(err, errNoChange) {
		return n, err
	}
	for _, kind := range []string{kindCode, kindPKCE, kindAccess, kindRefresh} {
		names, err := docs.ListDocuments(ctx, kind)
		if err != nil {
			return n, fmt.Errorf("listing %s: %w", kind, err)
		}
		for _, name := range names {
			err := docs.UpdateDocument(ctx, kind, name, func(old []byte) ([]byte, error) {
				if old == nil {
					return nil, errNoChange // purged meanwhile
				}
				var r record
				if err := json.Unmarshal(old, &r); err != nil {
					return nil, fmt.Errorf("reading %s record: %w", kind, err)
				}
				if r.Request.SealedSession.WrappedKey == nil {
					return nil, errNoChange
				}
				sealed, err := ring.Rewrap(secrets.Sealed(r.Request.SealedSession), sessionAAD(r.Request.ID))
				if err != nil {
					return nil, fmt.Errorf("re-wrapping a %s session: %w", kind, err)
				}
				r.Request.SealedSession = store.Sealed(sealed)
				n++
				return json.Marshal(r)
			})
			if err != nil && !errors.Is(err, errNoChange) {
				return n, err
			}
		}
	}
	return n, nil
}

// errNoChange makes UpdateDocument write nothing.
var errNoChange = errors.New("authz: nothing to change")

// RotateKey makes a new token-signing key sign from now on, without a
// running server (`ehrgate keys rotate-api`; running replicas pick it up
// within a minute); the keys it supersedes stay published for keep (the
// longest access-token lifetime plus a margin), then drop out. It returns
// the new key's id.
func RotateKey(ctx context.Context, docs store.Documents, ring *secrets.Keyring, keep time.Duration) (string, error) {
	k := &keyStore{docs: docs, ring: ring, now: time.Now, keep: keep}
	return k.rotate(ctx)
}
