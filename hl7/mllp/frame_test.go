package mllp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

const (
	sb = "\x0b"
	eb = "\x1c\x0d"
)

type frameResult struct {
	Frame string
	Err   string // "" for success, else the sentinel name
}

func errName(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrFrameTooLarge):
		return "too large"
	case errors.Is(err, ErrPartialFrame) && errors.Is(err, io.ErrUnexpectedEOF):
		return "partial eof"
	case errors.Is(err, ErrPartialFrame):
		return "partial"
	case errors.Is(err, io.EOF):
		return "eof"
	}
	return err.Error()
}

var frameCases = []struct {
	name string
	in   string
	max  int
	want []frameResult
}{
	{"one", sb + "MSH|a" + eb, 0, []frameResult{{"MSH|a", ""}, {"", "eof"}}},
	{"two", sb + "A" + eb + sb + "B" + eb, 0, []frameResult{{"A", ""}, {"B", ""}, {"", "eof"}}},
	{"empty frame", sb + eb, 0, []frameResult{{"", ""}, {"", "eof"}}},
	{"garbage before and between", "junk\r\n" + sb + "A" + eb + "\x00zz" + sb + "B" + eb + "tail", 0,
		[]frameResult{{"A", ""}, {"B", ""}, {"", "eof"}}},
	{"missing CR after end block", sb + "A\x1c" + sb + "B\x1c", 0, []frameResult{{"A", ""}, {"B", ""}, {"", "eof"}}},
	{"partial at eof", sb + "A" + eb + sb + "MSH|trunc", 0, []frameResult{{"A", ""}, {"", "partial eof"}}},
	{"new start inside frame", sb + "lost" + sb + "B" + eb, 0, []frameResult{{"", "partial"}, {"B", ""}, {"", "eof"}}},
	{"oversized then ok", sb + "0123456789" + eb + sb + "ok" + eb, 4,
		[]frameResult{{"0123", "too large"}, {"ok", ""}, {"", "eof"}}},
	{"exactly max", sb + "0123" + eb, 4, []frameResult{{"0123", ""}, {"", "eof"}}},
	{"only garbage", "hello", 0, []frameResult{{"", "eof"}}},
	{"empty stream", "", 0, []frameResult{{"", "eof"}}},
	{"segments with CR inside", sb + "MSH|x\rPID|1\r" + eb, 0, []frameResult{{"MSH|x\rPID|1\r", ""}, {"", "eof"}}},
}

func readAll(r *Reader) []frameResult {
	var out []frameResult
	for range 100 {
		f, err := r.ReadFrame()
		out = append(out, frameResult{string(f), errName(err)})
		if err != nil && !errors.Is(err, ErrFrameTooLarge) && !(errors.Is(err, ErrPartialFrame) && !errors.Is(err, io.ErrUnexpectedEOF)) {
			break
		}
	}
	return out
}

func TestReader(t *testing.T) {
	for _, tt := range frameCases {
		for _, mode := range []string{"whole", "onebyte", "halfreader"} {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				var src io.Reader = strings.NewReader(tt.in)
				switch mode {
				case "onebyte":
					src = iotest.OneByteReader(src)
				case "halfreader":
					src = iotest.HalfReader(src)
				}
				got := readAll(NewReader(src, tt.max))
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("ReadFrame sequence for %q (-want +got):\n%s", tt.in, diff)
				}
			})
		}
	}
}

func TestWriteFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	msgs := []string{"MSH|^~\\&|A\rPID|1\r", "", strings.Repeat("x", 100000)}
	for _, m := range msgs {
		if err := WriteFrame(&buf, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(iotest.DataErrReader(&buf), 0)
	for _, m := range msgs {
		got, err := r.ReadFrame()
		if err != nil || string(got) != m {
			t.Fatalf("ReadFrame() = %d bytes, %v, want %d bytes", len(got), err, len(m))
		}
	}
	if _, err := r.ReadFrame(); !errors.Is(err, io.EOF) {
		t.Errorf("ReadFrame() at end = %v, want io.EOF", err)
	}
}

func TestReaderPropagatesErrors(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(io.MultiReader(strings.NewReader(sb+"abc"), iotest.ErrReader(boom)), 0)
	if _, err := r.ReadFrame(); !errors.Is(err, boom) {
		t.Errorf("ReadFrame() error = %v, want boom", err)
	}
}

func FuzzFrameReader(f *testing.F) {
	for _, tt := range frameCases {
		f.Add([]byte(tt.in), uint16(tt.max))
	}
	f.Fuzz(func(t *testing.T, data []byte, max uint16) {
		limit := int(max%64) + 1
		r := NewReader(bytes.NewReader(data), limit)
		// Each call consumes at least one byte or ends the stream, so this
		// bound proves there is no livelock.
		for i := 0; i <= len(data)+1; i++ {
			f, err := r.ReadFrame()
			if len(f) > limit {
				t.Fatalf("frame of %d bytes exceeds limit %d", len(f), limit)
			}
			if bytes.ContainsAny(f, "\x0b\x1c") {
				t.Fatalf("frame contains a block character: %q", f)
			}
			switch {
			case err == nil, errors.Is(err, ErrFrameTooLarge):
			case errors.Is(err, ErrPartialFrame) && !errors.Is(err, io.ErrUnexpectedEOF):
			default:
				return
			}
		}
		t.Fatalf("reader did not reach end of %d-byte stream", len(data))
	})
}
