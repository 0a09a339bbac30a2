package storetest

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"ehrgate/store"
)

// RunDocumentTests runs the store.Documents conformance suite against
// stores made by newStore (a fresh, empty store per subtest).
func RunDocumentTests(t *testing.T, newStore func(t *testing.T) store.Documents) {
	ctx := context.Background()
	t.Run("GetMissing", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.GetDocument(ctx, "k", "missing"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetDocument(missing) error = %v, want ErrNotFound", err)
		}
	})
	t.Run("UpdateCreatesThenSeesOld", func(t *testing.T) {
		s := newStore(t)
		var seen [][]byte
		for _, body := range []string{`{"v":1}`, `{"v":2}`} {
			err := s.UpdateDocument(ctx, "k", "a", func(old []byte) ([]byte, error) {
				seen = append(seen, old)
				return []byte(body), nil
			})
			if err != nil {
				t.Fatalf("UpdateDocument: %v", err)
			}
		}
		if seen[0] != nil || string(seen[1]) != `{"v":1}` {
			t.Errorf("updaters saw %q, want [nil {\"v\":1}]", seen)
		}
		d, err := s.GetDocument(ctx, "k", "a")
		if err != nil || string(d.Body) != `{"v":2}` || d.UpdatedAt.IsZero() {
			t.Errorf("GetDocument = %q at %v, %v; want {\"v\":2} with a time", d.Body, d.UpdatedAt, err)
		}
	})
	t.Run("FailedUpdateWritesNothing", func(t *testing.T) {
		s := newStore(t)
		boom := errors.New("boom")
		if err := s.UpdateDocument(ctx, "k", "a", func([]byte) ([]byte, error) { return []byte("x"), boom }); !errors.Is(err, boom) {
			t.Fatalf("UpdateDocument error = %v, want the updater's", err)
		}
		if _, err := s.GetDocument(ctx, "k", "a"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after a failed update, GetDocument error = %v, want ErrNotFound", err)
		}
	})
	t.Run("ListByKind", func(t *testing.T) {
		s := newStore(t)
		for _, kn := range [][2]string{{"k", "b"}, {"k", "a"}, {"other", "c"}} {
			if err := s.UpdateDocument(ctx, kn[0], kn[1], func([]byte) ([]byte, error) { return []byte("{}"), nil }); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.ListDocuments(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"a", "b"}, got); diff != "" {
			t.Errorf("ListDocuments(k) (-want +got):\n%s", diff)
		}
		if got, err := s.ListDocuments(ctx, "none"); err != nil || len(got) != 0 {
			t.Errorf("ListDocuments(none) = %v, %v; want empty", got, err)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		s := newStore(t)
		if err := s.UpdateDocument(ctx, "k", "a", func([]byte) ([]byte, error) { return []byte("{}"), nil }); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.DeleteDocument(ctx, "k", "a"); !ok || err != nil {
			t.Fatalf("DeleteDocument = %v, %v; want true", ok, err)
		}
		if ok, err := s.DeleteDocument(ctx, "k", "a"); ok || err != nil {
			t.Errorf("second DeleteDocument = %v, %v; want false", ok, err)
		}
		if _, err := s.GetDocument(ctx, "k", "a"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetDocument after delete = %v, want ErrNotFound", err)
		}
	})
	t.Run("ConcurrentUpdatesSerialise", func(t *testing.T) {
		s := newStore(t)
		const n = 40
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- s.UpdateDocument(ctx, "k", "counter", func(old []byte) ([]byte, error) {
					v := 0
					if old != nil {
						var err error
						if v, err = strconv.Atoi(string(old)); err != nil {
							return nil, err
						}
					}
					return []byte(strconv.Itoa(v + 1)), nil
				})
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		d, err := s.GetDocument(ctx, "k", "counter")
		if err != nil || string(d.Body) != strconv.Itoa(n) {
			t.Errorf("after %d concurrent increments the counter is %q (%v)", n, d.Body, err)
		}
	})
}
