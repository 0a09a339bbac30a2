package bulk

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

type gotLine struct {
	Num     int64
	Offset  int64
	End     int64
	Text    string
	TooLong bool
}

func readAll(t *testing.T, r *Reader) ([]gotLine, error) {
	t.Helper()
	var out []gotLine
	for {
		l, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, gotLine{l.Num, l.Offset, l.End, string(l.Bytes), l.TooLong})
	}
}

func TestReader(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want []gotLine
	}{
		{"empty", "", 0, nil},
		{"two lines", "{\"a\":1}\n{\"b\":2}\n", 0, []gotLine{{1, 0, 8, `{"a":1}`, false}, {2, 8, 16, `{"b":2}`, false}}},
		{"no final newline", "{}\n{\"x\":1}", 0, []gotLine{{1, 0, 3, `{}`, false}, {2, 3, 10, `{"x":1}`, false}}},
		{"blank lines skipped but counted", "\n{}\n\r\n  \n{}\n", 0, []gotLine{{2, 1, 4, `{}`, false}, {5, 9, 12, `{}`, false}}},
		{"crlf", "{}\r\n{}\r\n", 0, []gotLine{{1, 0, 4, `{}`, false}, {2, 4, 8, `{}`, false}}},
		{"too long", "{}\n" + strings.Repeat("x", 40) + "\n{}\n", 16, []gotLine{{1, 0, 3, `{}`, false}, {2, 3, 44, strings.Repeat("x", 16), true}, {3, 44, 47, `{}`, false}}},
		{"too long at end", strings.Repeat("y", 100), 10, []gotLine{{1, 0, 100, strings.Repeat("y", 10), true}}},
		{"exactly max", "0123456789\n", 10, []gotLine{{1, 0, 11, "0123456789", false}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(t, NewReader(strings.NewReader(tc.in), tc.max, 0, 0))
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("lines = %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("line %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestReaderResumesAtOffset(t *testing.T) {
	r := NewReader(strings.NewReader("{\"c\":3}\n"), 0, 16, 2)
	l, err := r.Next()
	if err != nil || l.Num != 3 || l.Offset != 16 || l.End != 24 {
		t.Fatalf("Next = %+v, %v; want line 3 at 16..24", l, err)
	}
}

func TestReaderTruncatedStreamIsAnError(t *testing.T) {
	in := io.MultiReader(strings.NewReader("{}\n{\"half"), iotest.ErrReader(io.ErrUnexpectedEOF))
	r := NewReader(in, 0, 0, 0)
	if _, err := r.Next(); err != nil {
		t.Fatalf("first line: %v", err)
	}
	if _, err := r.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Next on a truncated line = %v, want io.ErrUnexpectedEOF (the partial line must not be returned)", err)
	}
	if r.Offset() != 3 {
		t.Errorf("Offset = %d, want 3 (start of the unfinished line)", r.Offset())
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte("{\"a\":1}\n{\"b\":2}\n"), 8)
	f.Add([]byte("\n\r\n{}"), 4)
	f.Add([]byte(strings.Repeat("x", 100)+"\n{}"), 16)
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		if max <= 0 || max > 1<<12 {
			max = 64
		}
		r := NewReader(strings.NewReader(string(in)), max, 0, 0)
		var prevEnd int64
		var prevNum int64
		for {
			l, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if len(l.Bytes) > max {
				t.Fatalf("line of %d bytes returned with max %d", len(l.Bytes), max)
			}
			if l.Offset < prevEnd || l.End <= l.Offset || l.End > int64(len(in)) || l.Num <= prevNum {
				t.Fatalf("line %+v out of order (prev end %d, num %d, input %d)", l, prevEnd, prevNum, len(in))
			}
			if !l.TooLong && string(in[l.Offset:l.Offset+int64(len(l.Bytes))]) != string(l.Bytes) {
				t.Fatalf("line bytes %q differ from input at %d", l.Bytes, l.Offset)
			}
			prevEnd, prevNum = l.End, l.Num
		}
		if r.Offset() != int64(len(in)) {
			t.Fatalf("Offset at EOF = %d, want %d", r.Offset(), len(in))
		}
	})
}
