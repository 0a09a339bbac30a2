package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"ehrgate/store"
)

// Tokens and signing keys arrive sealed (envelope-encrypted by the caller,
// package secrets): the store keeps the KEK id, the wrapped data key and
// the ciphertext as opaque bytes and never sees a plaintext token or key.

const tokenSelect = `SELECT connection, kek_id, wrapped_key, ciphertext, status, status_reason, expires_at, updated_at FROM oauth_tokens`

func scanToken(r interface{ Scan(dest ...any) error }) (store.EncryptedToken, error) {
	var t store.EncryptedToken
	err := r.Scan(&t.Connection, &t.Sealed.KEKID, &t.Sealed.WrappedKey, &t.Sealed.Ciphertext, &t.Status, &t.StatusReason,
		TimeDest(&t.ExpiresAt), TimeDest(&t.UpdatedAt))
	return t, err
}

// GetToken implements store.TokenStore.
func (db *DB) GetToken(ctx context.Context, connection string) (store.EncryptedToken, error) {
	t, err := scanToken(db.queryRow(ctx, db.Read, tokenSelect+` WHERE connection=?`, connection))
	if errors.Is(err, sql.ErrNoRows) {
		return store.EncryptedToken{}, fmt.Errorf("reading token of %q: %w", connection, store.ErrNotFound)
	}
	if err != nil {
		return store.EncryptedToken{}, fmt.Errorf("reading token of %q: %w", connection, err)
	}
	return t, nil
}

// errUpdater marks an updater's own error, which UpdateToken returns as
// it is.
type errUpdater struct{ err error }

func (e errUpdater) Error() string { return e.err.Error() }
func (e errUpdater) Unwrap() error { return e.err }

// UpdateToken implements store.TokenStore. The updater runs inside a write
// transaction that holds the connection's token lock (Dialect.Lock, or the
// database's single writer), so it must be quick and must not do network
// I/O.
func (db *DB) UpdateToken(ctx context.Context, connection string, update func(cur *store.EncryptedToken) (*store.EncryptedToken, error)) error {
	err := db.Write(ctx, func(ctx context.Context, tx Querier) error {
		if err := db.Dialect.lock(ctx, tx, "oauth_tokens:"+connection); err != nil {
			return err
		}
		var cur *store.EncryptedToken
		t, err := scanToken(db.queryRow(ctx, tx, tokenSelect+` WHERE connection=?`, connection))
		switch {
		case err == nil:
			cur = &t
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		next, err := update(cur)
		if err != nil {
			return errUpdater{err}
		}
		if next == nil {
			return nil
		}
		status := next.Status
		if status == "" {
			status = store.TokenOK
		}
		_, err = db.exec(ctx, tx, `INSERT INTO oauth_tokens
			(connection, kek_id, wrapped_key, ciphertext, status, status_reason, expires_at, updated_at)
			VALUES (?,?,?,?,?,?,?,?)
			ON CONFLICT (connection) DO UPDATE SET kek_id=excluded.kek_id, wrapped_key=excluded.wrapped_key,
			ciphertext=excluded.ciphertext, status=excluded.status, status_reason=excluded.status_reason,
			expires_at=excluded.expires_at, updated_at=excluded.updated_at`,
			connection, next.Sealed.KEKID, NonNil(next.Sealed.WrappedKey), NonNil(next.Sealed.Ciphertext), status,
			next.StatusReason, db.Dialect.Time(next.ExpiresAt), db.Dialect.Time(next.UpdatedAt))
		return err
	})
	var ue errUpdater
	if errors.As(err, &ue) {
		return ue.err
	}
	if err != nil {
		return fmt.Errorf("updating token of %q: %w", connection, err)
	}
	return nil
}

// DeleteToken implements store.TokenStore. Deleting an absent token is not
// an error.
func (db *DB) DeleteToken(ctx context.Context, connection string) error {
	err := db.Write(ctx, func(ctx context.Context, tx Querier) error {
		_, err := db.exec(ctx, tx, `DELETE FROM oauth_tokens WHERE connection=?`, connection)
		return err
	})
	if err != nil {
		return fmt.Errorf("deleting token of %q: %w", connection, err)
	}
	return nil
}

// ListTokens implements store.TokenStore, ordered by connection.
func (db *DB) ListTokens(ctx context.Context) ([]store.EncryptedToken, error) {
	rows, err := db.query(ctx, db.Read, tokenSelect+` ORDER BY connection`)
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	out, err := scanAll(rows, func(r *sql.Rows) (store.EncryptedToken, error) { return scanToken(r) })
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	return out, nil
}

// PutSigningKey implements store.TokenStore.
func (db *DB) PutSigningKey(ctx context.Context, k store.SigningKey) error {
	if k.KID == "" {
		return errors.New("storing signing key: empty kid")
	}
	d := db.Dialect
	err := db.Write(ctx, func(ctx context.Context, tx Querier) error {
		_, err := db.exec(ctx, tx, `INSERT INTO signing_keys
			(kid, alg, public_jwk, kek_id, wrapped_key, ciphertext, created_at, active_at, retired_at)
			VALUES (?,?,?,?,?,?,?,?,?)
			ON CONFLICT (kid) DO UPDATE SET alg=excluded.alg, public_jwk=excluded.public_jwk, kek_id=excluded.kek_id,
			wrapped_key=excluded.wrapped_key, ciphertext=excluded.ciphertext, created_at=excluded.created_at,
			active_at=excluded.active_at, retired_at=excluded.retired_at`,
			k.KID, k.Alg, NonNil(k.Public), k.Private.KEKID, NonNil(k.Private.WrappedKey), NonNil(k.Private.Ciphertext),
			d.Time(k.CreatedAt), d.Time(k.ActiveAt), d.Time(k.RetiredAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("storing signing key %q: %w", k.KID, err)
	}
	return nil
}

// ListSigningKeys implements store.TokenStore.
func (db *DB) ListSigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	rows, err := db.query(ctx, db.Read, `SELECT kid, alg, public_jwk, kek_id, wrapped_key, ciphertext, created_at, active_at, retired_at
		FROM signing_keys ORDER BY created_at, kid`)
	if err != nil {
		return nil, fmt.Errorf("listing signing keys: %w", err)
	}
	out, err := scanAll(rows, func(r *sql.Rows) (store.SigningKey, error) {
		var k store.SigningKey
		err := r.Scan(&k.KID, &k.Alg, &k.Public, &k.Private.KEKID, &k.Private.WrappedKey, &k.Private.Ciphertext,
			TimeDest(&k.CreatedAt), TimeDest(&k.ActiveAt), TimeDest(&k.RetiredAt))
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing signing keys: %w", err)
	}
	return out, nil
}
