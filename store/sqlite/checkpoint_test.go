package sqlite

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ehrgate/store"
)

// TestCheckpointsRunBesideTheWriter: committed writes reach the database
// file without any commit checkpointing them (the backstop is 64 MiB of
// WAL, far above what this test writes): the background checkpointer
// copies them back, so the WAL does not grow until a commit pays for it.
func TestCheckpointsRunBesideTheWriter(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	size := func() int64 {
		st, err := os.Stat(filepath.Join(dir, FileName))
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	before := size()
	for b := range 8 {
		var recs []store.Record
		for i := range 100 {
			id := fmt.Sprintf("o%d-%d", b, i)
			pad := make([]byte, 2000)
			rand.Read(pad)
			recs = append(recs, store.Record{Key: store.Key{Connection: "c", Type: "Observation", ID: id, VersionID: "1"},
				PatientID: "p", Raw: []byte(`{"id":"` + id + `","pad":"` + hex.EncodeToString(pad) + `"}`), FetchedAt: time.Now()})
		}
		if _, err := s.PutResources(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for size()-before < 1<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("the database file grew %d bytes in 10 s after 3.2 MB of commits: nothing checkpointed them", size()-before)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
