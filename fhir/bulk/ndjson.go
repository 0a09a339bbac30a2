package bulk

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxLine is the longest NDJSON line a Reader returns whole (16 MiB).
const DefaultMaxLine = 16 << 20

// Line is one non-blank NDJSON line.
type Line struct {
	Num    int64  // 1-based line number in the stream (blank lines counted)
	Offset int64  // byte offset of the line's first byte
	End    int64  // byte offset just past the line's newline: where the next line starts
	Bytes  []byte // the line without its line ending; valid until the next call to Next
	// TooLong is set when the line exceeded the maximum: Bytes then holds
	// only its first bytes and Size its full length.
	TooLong bool
	Size    int64
}

// Reader reads NDJSON line by line in bounded memory: a line longer than the
// maximum is reported (TooLong, with its first bytes) and skipped, never
// buffered whole. Blank lines are skipped; CRLF endings are accepted.
type Reader struct {
	br   *bufio.Reader
	max  int
	off  int64
	num  int64
	long []byte
}

// NewReader returns a Reader over r that starts counting at offset and line
// (use 0, 0 for a fresh stream; a resumed stream passes the checkpoint's
// values). maxLine <= 0 means DefaultMaxLine.
func NewReader(r io.Reader, maxLine int, offset, line int64) *Reader {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	size := 64 << 10
	if maxLine+1 < size {
		size = max(maxLine+1, 16)
	}
	return &Reader{br: bufio.NewReaderSize(r, size), max: maxLine, off: offset, num: line}
}

// Offset returns the byte offset of the next unread line.
func (r *Reader) Offset() int64 { return r.off }

// Next returns the next non-blank line, io.EOF at the clean end of the
// stream, or the underlying read error (for example io.ErrUnexpectedEOF on
// a truncated transfer) without returning the partial line before it.
func (r *Reader) Next() (Line, error) {
	for {
		l, err := r.next()
		if err != nil {
			return Line{}, err
		}
		if !l.TooLong && len(bytes.TrimSpace(l.Bytes)) == 0 {
			continue
		}
		return l, nil
	}
}

func (r *Reader) next() (Line, error) {
	start := r.off
	buf, err := r.br.ReadSlice('\n')
	switch {
	case err == nil:
	case errors.Is(err, bufio.ErrBufferFull) || (err == nil && len(buf) > r.max):
		return r.skipLong(start, buf)
	case errors.Is(err, io.EOF):
		if len(buf) == 0 {
			return Line{}, io.EOF
		}
		// A last line without a newline is a complete line.
	default:
		return Line{}, fmt.Errorf("reading line %d: %w", r.num+1, err)
	}
	n := int64(len(buf))
	content := trimEOL(buf)
	if len(content) > r.max {
		r.off += n
		r.num++
		return Line{Num: r.num, Offset: start, End: r.off, Bytes: content[:r.max], TooLong: true, Size: int64(len(content))}, nil
	}
	r.off += n
	r.num++
	return Line{Num: r.num, Offset: start, End: r.off, Bytes: content, Size: int64(len(content))}, nil
}

// skipLong consumes the rest of an over-long line, keeping its first bytes.
func (r *Reader) skipLong(start int64, first []byte) (Line, error) {
	keep := min(len(first), r.max, 4096)
	r.long = append(r.long[:0], first[:keep]...)
	total := int64(len(first))
	for {
		buf, err := r.br.ReadSlice('\n')
		total += int64(len(buf))
		if err == nil || errors.Is(err, io.EOF) {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return Line{}, fmt.Errorf("reading line %d: %w", r.num+1, err)
		}
	}
	r.off += total
	r.num++
	return Line{Num: r.num, Offset: start, End: r.off, Bytes: r.long, TooLong: true, Size: total}, nil
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	return bytes.TrimSuffix(b, []byte{'\r'})
}
