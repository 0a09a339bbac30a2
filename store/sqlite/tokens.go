package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"ehrgate/store"
)

// The token store writes through the writer connection in its own
// transaction (BEGIN IMMEDIATE, from the DSN's _txlock), so an UpdateToken
// excludes every other writer, in this process or another, for the short
// time its updater runs. Updaters must not do network I/O.

// GetToken implements store.TokenStore.
func (s *Store) GetToken(ctx context.Context, connection string) (store.EncryptedToken, error) {
	t, err := scanToken(s.r.QueryRowContext(ctx, tokenSelect+` WHERE connection=?`, connection))
	if errors.Is(err, sql.ErrNoRows) {
		return store.EncryptedToken{}, fmt.Errorf("reading token of %q: %w", connection, store.ErrNotFound)
	}
	if err != nil {
		return store.EncryptedToken{}, fmt.Errorf("reading token of %q: %w", connection, err)
	}
	return t, nil
}

const tokenSelect = `SELECT connection, kek_id, wrapped_key, ciphertext, status, status_reason, expires_at, updated_at FROM oauth_tokens`

type rowScanner interface{ Scan(dest ...any) error }

func scanToken(r rowScanner) (store.EncryptedToken, error) {
	var t store.EncryptedToken
	var exp, upd string
	err := r.Scan(&t.Connection, &t.Sealed.KEKID, &t.Sealed.WrappedKey, &t.Sealed.Ciphertext, &t.Status, &t.StatusReason, &exp, &upd)
	t.ExpiresAt, t.UpdatedAt = parseTime(exp), parseTime(upd)
	return t, err
}

// UpdateToken implements store.TokenStore.
func (s *Store) UpdateToken(ctx context.Context, connection string, update func(cur *store.EncryptedToken) (*store.EncryptedToken, error)) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("updating token of %q: %w", connection, err)
	}
	defer tx.Rollback()
	var cur *store.EncryptedToken
	t, err := scanToken(tx.QueryRowContext(ctx, tokenSelect+` WHERE connection=?`, connection))
	switch {
	case err == nil:
		cur = &t
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("updating token of %q: %w", connection, err)
	}
	next, err := update(cur)
	if err != nil {
		return err
	}
	if next == nil {
		return nil
	}
	status := next.Status
	if status == "" {
		status = store.TokenOK
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO oauth_tokens
		(connection, kek_id, wrapped_key, ciphertext, status, status_reason, expires_at, updated_at)
		VALUES (?,?,?,?,?,?,?,?)
		ON CONFLICT (connection) DO UPDATE SET kek_id=excluded.kek_id, wrapped_key=excluded.wrapped_key,
		ciphertext=excluded.ciphertext, status=excluded.status, status_reason=excluded.status_reason,
		expires_at=excluded.expires_at, updated_at=excluded.updated_at`,
		connection, next.Sealed.KEKID, nonNil(next.Sealed.WrappedKey), nonNil(next.Sealed.Ciphertext), status, next.StatusReason,
		formatTime(next.ExpiresAt), formatTime(next.UpdatedAt)); err != nil {
		return fmt.Errorf("updating token of %q: %w", connection, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("updating token of %q: %w", connection, err)
	}
	return nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// DeleteToken implements store.TokenStore. Deleting an absent token is not
// an error.
func (s *Store) DeleteToken(ctx context.Context, connection string) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM oauth_tokens WHERE connection=?`, connection); err != nil {
		return fmt.Errorf("deleting token of %q: %w", connection, err)
	}
	return nil
}

// ListTokens implements store.TokenStore, ordered by connection.
func (s *Store) ListTokens(ctx context.Context) ([]store.EncryptedToken, error) {
	rows, err := s.r.QueryContext(ctx, tokenSelect+` ORDER BY connection`)
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	defer rows.Close()
	var out []store.EncryptedToken
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("listing tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	return out, nil
}

// PutSigningKey implements store.TokenStore.
func (s *Store) PutSigningKey(ctx context.Context, k store.SigningKey) error {
	if k.KID == "" {
		return errors.New("storing signing key: empty kid")
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO signing_keys
		(kid, alg, public_jwk, kek_id, wrapped_key, ciphertext, created_at, active_at, retired_at)
		VALUES (?,?,?,?,?,?,?,?,?)
		ON CONFLICT (kid) DO UPDATE SET alg=excluded.alg, public_jwk=excluded.public_jwk, kek_id=excluded.kek_id,
		wrapped_key=excluded.wrapped_key, ciphertext=excluded.ciphertext, created_at=excluded.created_at,
		active_at=excluded.active_at, retired_at=excluded.retired_at`,
		k.KID, k.Alg, nonNil(k.Public), k.Private.KEKID, nonNil(k.Private.WrappedKey), nonNil(k.Private.Ciphertext),
		formatTime(k.CreatedAt), formatTime(k.ActiveAt), formatTime(k.RetiredAt)); err != nil {
		return fmt.Errorf("storing signing key %q: %w", k.KID, err)
	}
	return nil
}

// ListSigningKeys implements store.TokenStore.
func (s *Store) ListSigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT kid, alg, public_jwk, kek_id, wrapped_key, ciphertext, created_at, active_at, retired_at
		FROM signing_keys ORDER BY created_at, kid`)
	if err != nil {
		return nil, fmt.Errorf("listing signing keys: %w", err)
	}
	defer rows.Close()
	var out []store.SigningKey
	for rows.Next() {
		var k store.SigningKey
		var c, a, r string
		if err := rows.Scan(&k.KID, &k.Alg, &k.Public, &k.Private.KEKID, &k.Private.WrappedKey, &k.Private.Ciphertext, &c, &a, &r); err != nil {
			return nil, fmt.Errorf("listing signing keys: %w", err)
		}
		k.CreatedAt, k.ActiveAt, k.RetiredAt = parseTime(c), parseTime(a), parseTime(r)
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing signing keys: %w", err)
	}
	return out, nil
}

var _ store.TokenStore = (*Store)(nil)
