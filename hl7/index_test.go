package hl7

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkIndexAgainstScan compares every indexed accessor of m with the
// scanning implementation (split/count over the raw bytes) that the index
// replaced: same raw bytes, same counts, same values, out-of-range parts
// included.
func checkIndexAgainstScan(t *testing.T, m *Message) {
	t.Helper()
	d := m.Delimiters()
	for i := range m.Len() {
		s := m.SegmentAt(i)
		raw := s.Raw()
		elems := bytes.Split(raw, []byte{d.Field})
		wantFields := len(elems) - 1
		first := 1
		if s.isHeader() {
			wantFields++
			first = 3
		}
		if got := s.NumFields(); got != wantFields {
			t.Fatalf("segment %d: NumFields() = %d, want %d", i+1, got, wantFields)
		}
		for n := first; n <= wantFields+2; n++ {
			k := n
			if s.isHeader() {
				k = n - 1
			}
			var want []byte
			if k < len(elems) {
				want = elems[k]
			}
			f := s.Field(n)
			if !bytes.Equal(f.Raw(), want) {
				t.Fatalf("segment %d: Field(%d).Raw() = %q, want %q", i+1, n, f.Raw(), want)
			}
			if got, w := f.NumRepetitions(), count(want, d.Repetition); got != w {
				t.Fatalf("segment %d: Field(%d).NumRepetitions() = %d, want %d", i+1, n, got, w)
			}
			for r := 0; r <= count(want, d.Repetition)+1; r++ {
				wr := split(want, d.Repetition, r)
				rep := f.Repetition(r)
				if !bytes.Equal(rep.Raw(), wr) {
					t.Fatalf("segment %d: Field(%d).Repetition(%d).Raw() = %q, want %q", i+1, n, r, rep.Raw(), wr)
				}
				if got, w := rep.NumComponents(), count(wr, d.Component); got != w {
					t.Fatalf("segment %d: %d[%d].NumComponents() = %d, want %d", i+1, n, r, got, w)
				}
				for c := 0; c <= count(wr, d.Component)+1; c++ {
					wc := split(wr, d.Component, c)
					comp := rep.Component(c)
					if !bytes.Equal(comp.Raw(), wc) {
						t.Fatalf("segment %d: %d[%d].%d Raw() = %q, want %q", i+1, n, r, c, comp.Raw(), wc)
					}
					if got, w := comp.NumSubComponents(), count(wc, d.SubComponent); got != w {
						t.Fatalf("segment %d: %d[%d].%d NumSubComponents() = %d, want %d", i+1, n, r, c, got, w)
					}
					for sc := 0; sc <= count(wc, d.SubComponent)+1; sc++ {
						ws := string(split(wc, d.SubComponent, sc))
						if bytes.IndexByte([]byte(ws), d.Escape) >= 0 {
							ws = string(unescape(nil, []byte(ws), &d))
						}
						if got := comp.SubComponent(sc); got != ws {
							t.Fatalf("segment %d: %d[%d].%d.%d = %q, want %q", i+1, n, r, c, sc, got, ws)
						}
					}
				}
			}
		}
	}
}

func TestIndexMatchesScan(t *testing.T) {
	for _, tt := range parseCases {
		for _, strict := range []bool{false, true} {
			m, err := Parse([]byte(tt.in), ParseOptions{Strict: strict})
			if err != nil {
				continue
			}
			checkIndexAgainstScan(t, m) // first reads scan, then the index
			checkIndexAgainstScan(t, m) // every segment indexed
		}
	}
}

func TestIndexMatchesScanFixtures(t *testing.T) {
	var files []string
	dir := filepath.Join(fixturesDir(t), "hl7v2")
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".hl7") {
			files = append(files, p)
		}
		return nil
	})
	if len(files) == 0 {
		t.Skipf("no .hl7 fixtures under %s (set EHRGATE_FIXTURES to the shared fixtures)", dir)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Parse(data, ParseOptions{})
		if err != nil {
			t.Fatalf("Parse(%s) error = %v", f, err)
		}
		checkIndexAgainstScan(t, m)
		checkIndexAgainstScan(t, m)
	}
	t.Logf("%d fixture messages: every indexed accessor matches the scan", len(files))
}

// TestIndexConcurrentReaders builds the lazy index from many goroutines at
// once (run with -race).
func TestIndexConcurrentReaders(t *testing.T) {
	m, err := Parse([]byte(adt), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := m.Get("PID-5.2")
	done := make(chan string)
	for range 8 {
		go func() { done <- m.Get("PID-5.2") }()
	}
	for range 8 {
		if got := <-done; got != want {
			t.Fatalf("concurrent Get = %q, want %q", got, want)
		}
	}
}
