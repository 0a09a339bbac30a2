package hl7

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// adt is a synthetic ADT^A01 used across tests and benchmarks.
const adt = "MSH|^~\\&|SENDAPP|SENDFAC|RECVAPP|RECVFAC|20240101120000||ADT^A01^ADT_A01|MSG00001|P|2.5.1\r" +
	"EVN|A01|20240101120000\r" +
	"PID|1||12345^^^HOSP^MR~67890^^^STATE^SS||DOE^JOHN^Q^JR^DR||19700101|M|||123 MAIN ST^APT 4&UNIT B^ANYTOWN^CA^90210||555-1234\r" +
	"NK1|1|DOE^JANE|SPO\r" +
	"PV1|1|I|WARD^101^A\r" +
	"OBX|1|ST|8867-4^Heart rate^LN||Fast \\T\\ irregular \\F\\ see note\\.br\\line2||||||F\r" +
	"ZPI|custom^value|42\r"

func mustParse(t testing.TB, s string, opts ParseOptions) *Message {
	t.Helper()
	m, err := Parse([]byte(s), opts)
	if err != nil {
		t.Fatalf("Parse() error = %v", err)
	}
	return m
}

func TestGet(t *testing.T) {
	m := mustParse(t, adt, ParseOptions{Strict: true})
	tests := []struct {
		path string
		want string
		ok   bool
	}{
		{"MSH-1", "|", true},
		{"MSH-2", "^~\\&", true},
		{"MSH-3", "SENDAPP", true},
		{"MSH-9", "ADT", true},
		{"MSH-9.2", "A01", true},
		{"MSH-9.3", "ADT_A01", true},
		{"MSH-10", "MSG00001", true},
		{"MSH-12", "2.5.1", true},
		{"PID-3", "12345", true},
		{"PID-3[1].1", "12345", true},
		{"PID-3[1].4", "HOSP", true},
		{"PID-3[2].1", "67890", true},
		{"PID-3[2].5", "SS", true},
		{"PID-3[3].1", "", true},
		{"PID-5.2", "JOHN", true},
		{"PID-5.5", "DR", true},
		{"PID-11.2", "APT 4", true},
		{"PID-11.2.2", "UNIT B", true},
		{"PID-11.2.3", "", true},
		{"OBX-3.2", "Heart rate", true},
		{"OBX-5", "Fast & irregular | see note\nline2", true},
		{"OBX-11", "F", true},
		{"OBX(1)-1", "1", true},
		{"OBX[2]-1", "", false},
		{"ZPI-1.2", "value", true},
		{"ZPI-2", "42", true},
		{"PID-99", "", false},
		{"XXX-1", "", false},
		{"PID-0", "", false},
		{"PID", "", false},
		{"PID-3[x]", "", false},
		{"PID-3.", "", false},
		{"PID-3.1.1.1", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, ok := m.Lookup(tt.path)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Lookup(%q) = %q, %v, want %q, %v", tt.path, got, ok, tt.want, tt.ok)
			}
			if g := m.Get(tt.path); g != tt.want {
				t.Errorf("Get(%q) = %q, want %q", tt.path, g, tt.want)
			}
		})
	}
}

func TestHeaderHelpers(t *testing.T) {
	m := mustParse(t, adt, ParseOptions{})
	if got, want := m.MessageType(), (MessageType{"ADT", "A01", "ADT_A01"}); got != want {
		t.Errorf("MessageType() = %v, want %v", got, want)
	}
	if got := m.ControlID(); got != "MSG00001" {
		t.Errorf("ControlID() = %q, want MSG00001", got)
	}
	if got := m.Version(); got != "2.5.1" {
		t.Errorf("Version() = %q, want 2.5.1", got)
	}
	if got := m.ProcessingID(); got != "P" {
		t.Errorf("ProcessingID() = %q, want P", got)
	}
	var names []string
	for i := range m.Len() {
		names = append(names, m.SegmentAt(i).Name())
	}
	if diff := cmp.Diff([]string{"MSH", "EVN", "PID", "NK1", "PV1", "OBX", "ZPI"}, names); diff != "" {
		t.Errorf("segment names (-want +got):\n%s", diff)
	}
	if got := len(m.Segments("ZPI")); got != 1 {
		t.Errorf("len(Segments(ZPI)) = %d, want 1", got)
	}
}

func TestStructure(t *testing.T) {
	m := mustParse(t, adt, ParseOptions{})
	pid := m.Segments("PID")[0]
	f := pid.Field(3)
	if got := f.NumRepetitions(); got != 2 {
		t.Errorf("PID-3 NumRepetitions() = %d, want 2", got)
	}
	if got := f.Repetition(2).NumComponents(); got != 5 {
		t.Errorf("PID-3[2] NumComponents() = %d, want 5", got)
	}
	if got := pid.Field(11).Component(2).NumSubComponents(); got != 2 {
		t.Errorf("PID-11.2 NumSubComponents() = %d, want 2", got)
	}
	if got := string(pid.Field(5).Raw()); got != "DOE^JOHN^Q^JR^DR" {
		t.Errorf("PID-5 Raw() = %q", got)
	}
	if got := pid.NumFields(); got != 13 {
		t.Errorf("PID NumFields() = %d, want 13", got)
	}
	msh := m.Header()
	if got := msh.NumFields(); got != 12 {
		t.Errorf("MSH NumFields() = %d, want 12", got)
	}
	if got := msh.Field(2).Repetition(1).NumComponents(); got != 1 {
		t.Errorf("MSH-2 NumComponents() = %d, want 1 (never split)", got)
	}
	if !pid.Field(2).IsEmpty() || pid.Field(40).IsEmpty() != true {
		t.Errorf("IsEmpty wrong for PID-2/PID-40")
	}
	null := mustParse(t, "MSH|^~\\&|A\rPID|1|\"\"\r", ParseOptions{})
	if !null.Segments("PID")[0].Field(2).IsNull() {
		t.Errorf(`IsNull() = false for ""`)
	}
}

// parseCases feed both the table test and the fuzz corpus.
var parseCases = []struct {
	name      string
	in        string
	strictErr error // nil: strict parse succeeds
	lenErr    error // nil: lenient parse succeeds
	path      string
	want      string
}{
	{"cr", "MSH|^~\\&|A|B\rPID|1||X\r", nil, nil, "PID-3", "X"},
	{"lf", "MSH|^~\\&|A|B\nPID|1||X\n", nil, nil, "PID-3", "X"},
	{"crlf", "MSH|^~\\&|A|B\r\nPID|1||X\r\n", nil, nil, "PID-3", "X"},
	{"mixed and no final terminator", "MSH|^~\\&|A|B\r\nEVN|A01\nPID|1||X", nil, nil, "PID-3", "X"},
	{"blank lines", "MSH|^~\\&|A|B\r\r\n\nPID|1||X\r\r", nil, nil, "PID-3", "X"},
	{"custom delimiters", "MSH#*@!%#A#B\rPID#1##X*Y@Z%W*!F!#\r", nil, nil, "PID-3[2].1.2", "W"},
	{"custom delimiters escape", "MSH#*@!%#A#B\rPID#1##!S!!F!!R!!T!!E!\r", nil, nil, "PID-3", "*#@%!"},
	{"truncation char", "MSH|^~\\&#|A|B|||||||||2.7\rPID|1||a\\P\\b\r", nil, nil, "PID-3", "a#b"},
	{"escape F", "MSH|^~\\&|A\rPID|1||a\\F\\b\r", nil, nil, "PID-3", "a|b"},
	{"escape S", "MSH|^~\\&|A\rPID|1||a\\S\\b\r", nil, nil, "PID-3", "a^b"},
	{"escape T", "MSH|^~\\&|A\rPID|1||a\\T\\b\r", nil, nil, "PID-3", "a&b"},
	{"escape R", "MSH|^~\\&|A\rPID|1||a\\R\\b\r", nil, nil, "PID-3", "a~b"},
	{"escape E", "MSH|^~\\&|A\rPID|1||a\\E\\b\r", nil, nil, "PID-3", "a\\b"},
	{"escape X", "MSH|^~\\&|A\rPID|1||\\X41C3A9\\\r", nil, nil, "PID-3", "Aé"},
	{"escape br", "MSH|^~\\&|A\rNTE|1||one\\.br\\two\r", nil, nil, "NTE-3", "one\ntwo"},
	{"formatting H N kept", "MSH|^~\\&|A\rNTE|1||\\H\\bold\\N\\\r", nil, nil, "NTE-3", "\\H\\bold\\N\\"},
	{"unknown escape", "MSH|^~\\&|A\rNTE|1||a\\Q\\b\r", ErrBadEscape, nil, "NTE-3", "a\\Q\\b"},
	{"bad hex escape", "MSH|^~\\&|A\rNTE|1||\\XZZ\\\r", ErrBadEscape, nil, "NTE-3", "\\XZZ\\"},
	{"unterminated escape", "MSH|^~\\&|A\rPID|1||ab\\F|next\r", ErrBadEscape, nil, "PID-4", "next"},
	{"unterminated escape at end", "MSH|^~\\&|A\rPID|1||ab\\\r", ErrBadEscape, nil, "PID-3", "ab\\"},
	{"z segment", "MSH|^~\\&|A\rZZ1|x^y\r", nil, nil, "ZZ1-1.2", "y"},
	{"bom", "\xEF\xBB\xBFMSH|^~\\&|A\rPID|1||X\r", ErrNoMSH, nil, "PID-3", "X"},
	{"leading blank line", "\r\nMSH|^~\\&|A\rPID|1||X\r", ErrNoMSH, nil, "PID-3", "X"},
	{"batch header", "FHS|^~\\&|A\rBHS|^~\\&|A\rMSH|^~\\&|A|||||||C1\rPID|1||X\rBTS|1\rFTS|1\r", ErrNoMSH, nil, "MSH-10", "C1"},
	{"no msh", "PID|1||X\r", ErrNoMSH, ErrNoMSH, "", ""},
	{"empty", "", ErrEmpty, ErrEmpty, "", ""},
	{"whitespace only", " \r\n ", ErrEmpty, ErrEmpty, "", ""},
	{"short msh", "MSH", ErrNoMSH, ErrNoMSH, "", ""},
	{"short encoding chars", "MSH|^~|A\rPID|1||a&b\r", ErrBadDelimiters, nil, "PID-3.1.2", "b"},
	{"duplicate delimiters", "MSH|^^\\&|A\r", ErrBadDelimiters, ErrBadDelimiters, "", ""},
	{"alnum field separator", "MSHA^~\\&A\r", ErrBadDelimiters, ErrBadDelimiters, "", ""},
	{"six encoding chars", "MSH|^~\\&#$|A\rPID|1||X\r", ErrBadDelimiters, nil, "PID-3", "X"},
	{"lowercase segment", "MSH|^~\\&|A\rpid|1||X\r", ErrBadSegmentName, nil, "MSH-3", "A"},
	{"long segment name", "MSH|^~\\&|A\rPIDX|1\r", ErrBadSegmentName, nil, "MSH-3", "A"},
	{"segment name with digit first", "MSH|^~\\&|A\r1ID|1\r", ErrBadSegmentName, nil, "MSH-3", "A"},
	{"whitespace line", "MSH|^~\\&|A\r   \rPID|1||X\r", ErrBadSegmentName, nil, "PID-3", "X"},
	{"wrapped text with LF", "MSH|^~\\&|A\rNTE|1||line one\nline two\rPID|1||X\r", ErrBadSegmentName, nil, "NTE-3", "line one\nline two"},
	{"LF terminators with wrapped text", "MSH|^~\\&|A\nNTE|1||a\nb c\n\nPID|1||X\n", ErrBadSegmentName, nil, "NTE-3", "a\nb c"},
	{"LF wrapped text then segment", "MSH|^~\\&|A\nNTE|1||a\nb c\nPID|1||X\n", ErrBadSegmentName, nil, "PID-3", "X"},
	{"bare second MSH", "MSH|^~\\&|A\rMSH\rPID|1||X\r", nil, nil, "PID-3", "X"},
	{"segment with no fields", "MSH|^~\\&|A\rPID\r", nil, nil, "PID-1", ""},
	{"v23", "MSH|^~\\&|A|B|C|D|20010101||ADT^A04|Q1|P|2.3\rPID|1\r", nil, nil, "MSH-12", "2.3"},
	{"v28", "MSH|^~\\&#|A|B|C|D|20240101||ADT^A04^ADT_A01|Q1|P|2.8\rPID|1\r", nil, nil, "MSH-9.3", "ADT_A01"},
}

func TestParseModes(t *testing.T) {
	for _, tt := range parseCases {
		for _, strict := range []bool{true, false} {
			wantErr := tt.lenErr
			if strict {
				wantErr = tt.strictErr
			}
			name := tt.name + map[bool]string{true: "/strict", false: "/lenient"}[strict]
			t.Run(name, func(t *testing.T) {
				m, err := Parse([]byte(tt.in), ParseOptions{Strict: strict})
				if !errors.Is(err, wantErr) {
					t.Fatalf("Parse(%q) error = %v, want %v", tt.in, err, wantErr)
				}
				if err != nil {
					var pe *ParseError
					if !errors.As(err, &pe) {
						t.Errorf("error %T is not *ParseError", err)
					}
					return
				}
				if tt.path == "" {
					return
				}
				if got := m.Get(tt.path); got != tt.want {
					t.Errorf("Get(%q) = %q, want %q", tt.path, got, tt.want)
				}
			})
		}
	}
}

func TestParseErrorPosition(t *testing.T) {
	_, err := Parse([]byte("MSH|^~\\&|A\rEVN|1\rPID|1||secret\\F|x\r"), ParseOptions{Strict: true})
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("Parse() error = %v, want *ParseError", err)
	}
	if pe.Segment != 3 || pe.Field != 3 {
		t.Errorf("ParseError position = segment %d field %d, want 3, 3", pe.Segment, pe.Field)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q leaks message content", err)
	}
	_, err = Parse([]byte("MSH|^~\\&|A|B|C|D|E||F|G|H|I\\Q\\\r"), ParseOptions{Strict: true})
	if !errors.As(err, &pe) || pe.Segment != 1 || pe.Field != 12 {
		t.Errorf("MSH escape error = %v, want segment 1 field 12", err)
	}
}

func TestEscapeRoundTrip(t *testing.T) {
	d5 := DefaultDelimiters
	d5.Truncation = '#'
	tests := []struct {
		in   string
		d    Delimiters
		want string
	}{
		{"plain", DefaultDelimiters, "plain"},
		{"a|b^c&d~e\\f", DefaultDelimiters, "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f"},
		{"line1\rline2\n", DefaultDelimiters, "line1\\X0D\\line2\\X0A\\"},
		{"50#", d5, "50\\P\\"},
		{"50#", DefaultDelimiters, "50#"},
	}
	for _, tt := range tests {
		got := Escape(tt.in, tt.d)
		if got != tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
		back, err := UnescapeStrict(got, tt.d)
		if err != nil || back != tt.in {
			t.Errorf("UnescapeStrict(%q) = %q, %v, want %q", got, back, err, tt.in)
		}
	}
}

func TestUnescape(t *testing.T) {
	tests := []struct {
		in, want string
		strictOK bool
	}{
		{"\\H\\x\\N\\", "\\H\\x\\N\\", true},
		{"\\.sp 2\\", "\\.sp 2\\", true},
		{"\\Zfoo\\", "\\Zfoo\\", true},
		{"\\X0\\", "\\X0\\", false},
		{"\\\\", "\\\\", false},
		{"open\\F", "open\\F", false},
		{"\\X4142\\\\.br\\", "AB\n", true},
		{"\\P\\", "\\P\\", false},
	}
	for _, tt := range tests {
		if got := Unescape(tt.in, DefaultDelimiters); got != tt.want {
			t.Errorf("Unescape(%q) = %q, want %q", tt.in, got, tt.want)
		}
		_, err := UnescapeStrict(tt.in, DefaultDelimiters)
		if (err == nil) != tt.strictOK {
			t.Errorf("UnescapeStrict(%q) error = %v, want ok=%v", tt.in, err, tt.strictOK)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, tt := range parseCases {
		if tt.lenErr != nil {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			m := mustParse(t, tt.in, ParseOptions{})
			enc := m.Encode()
			m2 := mustParse(t, string(enc), ParseOptions{})
			if diff := cmp.Diff(segmentsOf(m), segmentsOf(m2)); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
			if enc2 := m2.Encode(); string(enc2) != string(enc) {
				t.Errorf("Encode not idempotent: %q then %q", enc, enc2)
			}
			if tt.name == "bare second MSH" {
				return // the Builder always writes MSH-1 and MSH-2
			}
			// Rebuild field by field with the Builder.
			b := NewBuilder(m.Delimiters())
			for i := range m.Len() {
				s := m.SegmentAt(i)
				var fields []string
				first := 1
				if s.isHeader() {
					first = 3
				}
				for n := first; n <= s.NumFields(); n++ {
					fields = append(fields, string(s.Field(n).Raw()))
				}
				b.Segment(s.Name(), fields...)
			}
			m3 := mustParse(t, string(b.Bytes()), ParseOptions{})
			if m3.Delimiters() != m.Delimiters() {
				t.Errorf("builder delimiters = %+v, want %+v", m3.Delimiters(), m.Delimiters())
			}
			if diff := cmp.Diff(valuesOf(m), valuesOf(m3)); diff != "" {
				t.Errorf("builder round trip (-want +got):\n%s", diff)
			}
		})
	}
	// CR-terminated input encodes to itself.
	if got := string(mustParse(t, adt, ParseOptions{Strict: true}).Encode()); got != adt {
		t.Errorf("Encode(adt) = %q, want the input", got)
	}
}

func segmentsOf(m *Message) []string {
	var out []string
	for i := range m.Len() {
		out = append(out, string(m.SegmentAt(i).Raw()))
	}
	return out
}

// valuesOf lists every non-empty primitive as path=value.
func valuesOf(m *Message) []string {
	var out []string
	occ := map[string]int{}
	for i := range m.Len() {
		s := m.SegmentAt(i)
		occ[s.Name()]++
		for n := 1; n <= s.NumFields(); n++ {
			if s.isHeader() && n == 2 {
				continue // encoding characters: compared via Delimiters
			}
			f := s.Field(n)
			for r := 1; r <= f.NumRepetitions(); r++ {
				rep := f.Repetition(r)
				for c := 1; c <= rep.NumComponents(); c++ {
					comp := rep.Component(c)
					for sc := 1; sc <= comp.NumSubComponents(); sc++ {
						if v := comp.SubComponent(sc); v != "" {
							out = append(out, Path{s.Name(), occ[s.Name()], n, r, c, sc}.String()+"="+v)
						}
					}
				}
			}
		}
	}
	return out
}

func TestParsePath(t *testing.T) {
	tests := []struct {
		in   string
		want Path
	}{
		{"PID-3", Path{"PID", 1, 3, 1, 1, 1}},
		{"PID-3[2].4.1", Path{"PID", 1, 3, 2, 4, 1}},
		{"OBX(3)-5.2", Path{"OBX", 3, 5, 1, 2, 1}},
		{"OBX[3]-5[2]", Path{"OBX", 3, 5, 2, 1, 1}},
	}
	for _, tt := range tests {
		got, err := ParsePath(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParsePath(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "P-1", "PID-", "PID-a", "PID-1[0]", "PID-1[", "PID-1.0", "PIDD-1", "PID[0]-1", "PID-1.1.1.1", "PID-1x"} {
		if _, err := ParsePath(bad); !errors.Is(err, ErrBadPath) {
			t.Errorf("ParsePath(%q) error = %v, want ErrBadPath", bad, err)
		}
	}
}
