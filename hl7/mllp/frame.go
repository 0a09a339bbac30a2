// Package mllp implements the Minimal Lower Layer Protocol (HL7 v2
// Implementation Guide, appendix C) used to carry HL7 v2 messages over TCP:
// framing, a store-and-forward server and a retrying client.
//
// A frame is a start block (0x0B), the message, and an end block (0x1C 0x0D).
//
// Lifecycle of a message on the Server, original acknowledgment mode:
//
//  1. a connection goroutine reads one frame (at most MaxFrameSize bytes);
//  2. it waits for one of QueueSize processing slots shared by all
//     connections — while it waits it reads nothing more, so TCP flow
//     control pushes back on the sender and nothing is dropped;
//  3. it parses the frame; if that fails the raw bytes go to the
//     Quarantiner and the sender gets AR;
//  4. it calls Handler.HandleMessage, the durable-store hook;
//  5. only when that returns nil (or ErrDuplicate) does it write AA; an error
//     yields AE, telling the sender to keep the message and retry;
//  6. it releases the slot and reads the next frame of that connection, so
//     per-connection order is preserved.
//
// Message content is protected health information: the package logs
// connection addresses, control IDs, sizes and error kinds only.
package mllp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Frame delimiters.
const (
	StartBlock     = 0x0B
	EndBlock       = 0x1C
	CarriageReturn = 0x0D
)

// DefaultMaxFrameSize bounds a frame when no size is configured (16 MiB):
// results carry embedded documents (a base64 PDF in an ED OBX-5 runs to
// several megabytes), and refusing them would lose results. Each
// connection holds at most one frame, and Server.QueueSize bounds how many
// are handled at once.
const DefaultMaxFrameSize = 16 << 20

var (
	// ErrFrameTooLarge reports a frame longer than the reader's limit. The
	// reader has discarded the rest of the frame up to its end block, so the
	// stream stays in sync and the next ReadFrame returns the next frame.
	ErrFrameTooLarge = errors.New("mllp: frame too large")
	// ErrPartialFrame reports a frame cut short: by end of stream (the
	// error then also matches io.ErrUnexpectedEOF), or by a new start block
	// before the end block, in which case the next ReadFrame returns the
	// frame that start block began.
	ErrPartialFrame = errors.New("mllp: partial frame")
)

// Reader reads MLLP frames from a byte stream. Bytes outside frames
// (garbage, a stray CR after the end block) are skipped. A Reader is not
// safe for concurrent use.
type Reader struct {
	br      *bufio.Reader
	max     int
	inFrame bool // a start block was consumed by the previous call
}

// NewReader returns a Reader over r. maxFrameSize <= 0 means
// DefaultMaxFrameSize.
func NewReader(r io.Reader, maxFrameSize int) *Reader {
	if maxFrameSize <= 0 {
		maxFrameSize = DefaultMaxFrameSize
	}
	return &Reader{br: bufio.NewReaderSize(r, 32<<10), max: maxFrameSize}
}

// ReadFrame returns the content of the next frame, without the delimiters,
// in a newly allocated slice the caller owns. At a clean end of stream
// (no partial frame pending) it returns io.EOF. For an oversized frame it
// returns the first maxFrameSize bytes together with ErrFrameTooLarge, so a
// caller can still read the MSH and reject the message. Other read errors
// (including deadline expiry) are returned as they are.
func (r *Reader) ReadFrame() ([]byte, error) {
	if !r.inFrame {
		for {
			b, err := r.br.ReadByte()
			if err != nil {
				return nil, err
			}
			if b == StartBlock {
				break
			}
			// Skip garbage quickly up to the next start block.
			if n := r.br.Buffered(); n > 0 {
				p, _ := r.br.Peek(n)
				i := bytes.IndexByte(p, StartBlock)
				if i < 0 {
					i = n
				}
				_, _ = r.br.Discard(i)
			}
		}
	}
	r.inFrame = false
	var frame []byte
	tooLarge := false
	for {
		n := r.br.Buffered()
		if n == 0 {
			if _, err := r.br.Peek(1); err != nil {
				if err == io.EOF {
					err = fmt.Errorf("%w: %w", ErrPartialFrame, io.ErrUnexpectedEOF)
				}
				return nil, err
			}
			n = r.br.Buffered()
		}
		p, _ := r.br.Peek(n)
		i := bytes.IndexAny(p, "\x0b\x1c")
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if !tooLarge {
			if room := r.max - len(frame); len(chunk) > room {
				frame = append(frame, chunk[:room]...)
				tooLarge = true
			} else {
				frame = append(frame, chunk...)
			}
		}
		if i < 0 {
			_, _ = r.br.Discard(n)
			continue
		}
		_, _ = r.br.Discard(i + 1)
		if p[i] == StartBlock {
			r.inFrame = true
			return nil, ErrPartialFrame
		}
		// End block. Consume the CR if it is already here; if not, it will
		// be skipped as garbage before the next start block. Never block
		// waiting for it: a sender that omits it is waiting for our ACK.
		if r.br.Buffered() > 0 {
			if c, _ := r.br.Peek(1); c[0] == CarriageReturn {
				_, _ = r.br.Discard(1)
			}
		}
		if tooLarge {
			return frame, ErrFrameTooLarge
		}
		if frame == nil {
			frame = []byte{}
		}
		return frame, nil
	}
}

// AppendFrame appends msg wrapped in MLLP delimiters to dst.
func AppendFrame(dst, msg []byte) []byte {
	dst = append(dst, StartBlock)
	dst = append(dst, msg...)
	return append(dst, EndBlock, CarriageReturn)
}

// WriteFrame writes msg as one frame with a single Write call.
func WriteFrame(w io.Writer, msg []byte) error {
	if _, err := w.Write(AppendFrame(make([]byte, 0, len(msg)+3), msg)); err != nil {
		return err
	}
	return nil
}
