package hl7

import (
	"testing"
)

var fuzzPaths = []string{"MSH-1", "MSH-2", "MSH-9.2", "MSH-10", "PID-3[2].1", "PID-11.2.2", "OBX(2)-5", "ZPI-1.2", "ZZZ-99[9].9.9"}

func FuzzParse(f *testing.F) {
	for i, tt := range parseCases {
		f.Add([]byte(tt.in), fuzzPaths[i%len(fuzzPaths)])
		if tt.path != "" {
			f.Add([]byte(tt.in), tt.path)
		}
	}
	f.Add([]byte(adt), "PID-3[2].1")
	f.Fuzz(func(t *testing.T, data []byte, path string) {
		for _, part := range SplitBatch(data) {
			_, _ = Parse(part, ParseOptions{})
		}
		for _, strict := range []bool{true, false} {
			m, err := Parse(data, ParseOptions{Strict: strict})
			if err != nil {
				continue
			}
			for _, p := range fuzzPaths {
				_ = m.Get(p)
			}
			_, _ = m.Lookup(path)
			_ = m.MessageType()
			_ = m.ControlID()
			// Walk everything; nothing may panic.
			for i := range m.Len() {
				s := m.SegmentAt(i)
				for n := 0; n <= s.NumFields()+1; n++ {
					fl := s.Field(n)
					for r := 1; r <= fl.NumRepetitions()+1; r++ {
						rep := fl.Repetition(r)
						for c := 1; c <= rep.NumComponents()+1; c++ {
							comp := rep.Component(c)
							for sc := 1; sc <= comp.NumSubComponents()+1; sc++ {
								v := comp.SubComponent(sc)
								_ = Escape(v, m.Delimiters())
							}
						}
					}
				}
			}
			checkIndexAgainstScan(t, m)
			for _, mode := range []string{"components", "raw", "subcomponents"} {
				n, size := readAll(m, mode)
				if wn, wsize := readAllNaive(m, mode); n != wn || size != wsize {
					t.Fatalf("readAll(%s) = %d, %d; naive split = %d, %d", mode, n, size, wn, wsize)
				}
			}
			enc := m.Encode()
			m2, err := Parse(enc, ParseOptions{})
			if err != nil {
				t.Fatalf("re-parse of encoded message failed: %v", err)
			}
			if m2.Len() != m.Len() {
				t.Fatalf("re-parse has %d segments, want %d", m2.Len(), m.Len())
			}
			_ = BuildACK(m, AckApplicationError, "x", fixedNow)
		}
	})
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"plain", "a|b^c&d~e\\f", "\r\n", "#", "\\X41\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := DefaultDelimiters
		d.Truncation = '#'
		if got := Unescape(Escape(s, d), d); got != s {
			t.Fatalf("Unescape(Escape(%q)) = %q", s, got)
		}
		_, _ = UnescapeStrict(s, d)
	})
}
