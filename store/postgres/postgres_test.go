package postgres

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"ehrgate/internal/pgtest"
	"ehrgate/secrets"
	"ehrgate/store"
	"ehrgate/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

// openTest returns a store on a fresh database, closed when t ends.
func openTest(t testing.TB) *Store {
	t.Helper()
	s, err := Open(context.Background(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.RunTests(t, func(t *testing.T) store.Store { return openTest(t) })
}

func TestTokenConformance(t *testing.T) {
	storetest.RunTokenTests(t, func(t *testing.T) store.TokenStore { return openTest(t) })
}

func TestScanConformance(t *testing.T) {
	storetest.RunScanTests(t, func(t *testing.T) storetest.ScanStore { return openTest(t) })
}

func TestBatchConformance(t *testing.T) {
	storetest.RunBatchTests(t, func(t *testing.T) storetest.BatchStore { return openTest(t) })
}

func TestBulkConformance(t *testing.T) {
	storetest.RunBulkTests(t, func(t *testing.T) storetest.BulkStore { return openTest(t) })
}

func TestPendingExportConformance(t *testing.T) {
	storetest.RunPendingExportTests(t, func(t *testing.T) storetest.PendingExportStore { return openTest(t) })
}

func TestHL7Conformance(t *testing.T) {
	storetest.RunHL7Tests(t, func(t *testing.T) storetest.HL7Store { return openTest(t) })
}

func TestHL7StatsConformance(t *testing.T) {
	storetest.RunHL7StatsTests(t, func(t *testing.T) storetest.HL7StatsStore { return openTest(t) })
}

func TestMigrationsAreIdempotent(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	for i := 0; i < 2; i++ {
		s, err := Open(context.Background(), dsn)
		if err != nil {
			t.Fatalf("Open #%d: %v", i+1, err)
		}
		s.Close()
	}
}

// TestNoPlaintextSecretsAtRest stores an envelope-encrypted token and
// signing key, checkpoints, and then reads the tables' files and the WAL
// in the server's data directory for the plaintexts (with a server
// elsewhere, EHRGATE_TEST_POSTGRES_DSN, only the rows are checked).
func TestNoPlaintextSecretsAtRest(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	kek, err := secrets.GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}
	ring := secrets.NewKeyring(kek)
	const access, refresh, private = "ACCESS-plaintext-7f3a9c", "REFRESH-plaintext-41bd02", "PRIVATE-JWK-plaintext-9e01d7"
	tok, err := ring.Seal([]byte(`{"access_token":"`+access+`","refresh_token":"`+refresh+`"}`), secrets.AAD("c", "token"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ring.Seal([]byte(`{"d":"`+private+`"}`), secrets.AAD("k1", "signing-key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateToken(ctx, "c", func(*store.EncryptedToken) (*store.EncryptedToken, error) {
		return &store.EncryptedToken{Sealed: store.Sealed(tok)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSigningKey(ctx, store.SigningKey{KID: "k1", Alg: "ES384", Public: []byte(`{"kty":"EC"}`), Private: store.Sealed(key)}); err != nil {
		t.Fatal(err)
	}
	plaintexts := []string{access, refresh, private}
	check := func(what string, b []byte) {
		t.Helper()
		for _, p := range plaintexts {
			if bytes.Contains(b, []byte(p)) {
				t.Errorf("%s contains plaintext %q", what, p)
			}
		}
	}

	// Every column of every row, as the server returns it.
	for _, table := range []string{"oauth_tokens", "signing_keys"} {
		var row []byte
		if err := s.db.QueryRowContext(ctx, `SELECT convert_to(string_agg(t::text, ','), 'UTF8') || string_agg(t.ciphertext, ''::bytea) || string_agg(t.wrapped_key, ''::bytea)
			FROM `+table+` t`).Scan(&row); err != nil {
			t.Fatal(err)
		}
		check(table+" rows", row)
	}

	// The files: the tables' heap files after a checkpoint, and the WAL.
	if _, err := s.db.ExecContext(ctx, `CHECKPOINT`); err != nil {
		t.Skipf("cannot checkpoint (not a superuser?): %v", err)
	}
	var dataDir, tokFile, keyFile string
	if err := s.db.QueryRowContext(ctx, `SELECT current_setting('data_directory'), pg_relation_filepath('oauth_tokens'),
		pg_relation_filepath('signing_keys')`).Scan(&dataDir, &tokFile, &keyFile); err != nil {
		t.Fatal(err)
	}
	heap, err := os.ReadFile(filepath.Join(dataDir, tokFile))
	if err != nil {
		t.Skipf("the server's files are not readable here (%v); rows checked only", err)
	}
	if !bytes.Contains(heap, tok.Ciphertext) {
		t.Fatalf("%s does not hold the sealed token: not the table's file", tokFile)
	}
	check(tokFile, heap)
	keyHeap, err := os.ReadFile(filepath.Join(dataDir, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	check(keyFile, keyHeap)
	wal, err := filepath.Glob(filepath.Join(dataDir, "pg_wal", "0*"))
	if err != nil || len(wal) == 0 {
		t.Fatalf("no WAL segment found: %v", err)
	}
	for _, f := range wal {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		check(f, b)
	}

	// The sealed record still opens: the scan looked at real data.
	got, err := s.GetToken(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	pt, err := ring.Open(secrets.Sealed(got.Sealed), secrets.AAD("c", "token"))
	if err != nil || !bytes.Contains(pt, []byte(refresh)) {
		t.Fatalf("stored token does not open: %v", err)
	}
}

// TestHL7SeqFollowsCommitOrder has writers log messages concurrently while
// a reader follows the log as the MLLP listener's converter does, from the
// last Seq it saw: with Seq growing in commit order it sees every message
// (without PutHL7's lock it missed a few percent here).
func TestHL7SeqFollowsCommitOrder(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	const writers, each = 6, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("%d-%d", w, i)
				m := store.HL7Message{Connection: "hl7", SendingApp: "LAB", SendingFacility: "F", ControlID: id,
					MessageType: "ADT^A01", Raw: []byte("MSH|" + id)}
				if _, err := s.PutHL7(ctx, m, nil); err != nil {
					t.Errorf("PutHL7: %v", err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	seen := map[string]bool{}
	var after int64
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true // one more pass reads what committed last
		default:
		}
		page, err := s.PendingHL7(ctx, "hl7", after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page {
			seen[m.ControlID] = true
			after = m.Seq
		}
	}
	if len(seen) != writers*each {
		t.Errorf("the reader saw %d of %d messages: a Seq committed after a larger one was skipped", len(seen), writers*each)
	}
}

func TestVersionConformance(t *testing.T) {
	storetest.RunVersionTests(t, func(t *testing.T) storetest.VersionStore { return openTest(t) })
}

func TestEventLogConformance(t *testing.T) {
	storetest.RunEventLogTests(t, func(t *testing.T) store.EventLog { return openTest(t) })
}
