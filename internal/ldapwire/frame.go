package ldapwire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"
)

// DefaultMaxMessageSize bounds one LDAPMessage unless configured otherwise.
const DefaultMaxMessageSize = 16 << 20

// ErrTooLarge is wrapped when a message announces a length above the limit.
var ErrTooLarge = errors.New("LDAP message too large")

// Reader frames LDAPMessages from a byte stream. The slice returned by Next
// stays valid until the following call: callers copy what they keep.
//
// A message already whole in the read buffer is returned in place (no copy);
// only messages that arrive in pieces are assembled in a frame buffer, so an
// idle or lightly used connection holds no frame buffer at all.
type Reader struct {
	r    *bufio.Reader // nil while released (Release)
	src  io.Reader
	size int
	pool *sync.Pool // where Release puts r, shared by Readers of its size
	max  int
	buf  []byte
	hdr  [6]byte
	lent int // bytes of the read buffer returned by the last Next, discarded by the next

	partial bool // Next is reading the rest of a message already begun
}

// NewReader frames messages of at most max bytes (0 means DefaultMaxMessageSize).
func NewReader(r io.Reader, max int) *Reader { return NewReaderSize(r, max, 16<<10) }

// NewReaderSize is NewReader with a read buffer of size bytes: client
// sessions, many and mostly idle, use a small one.
func NewReaderSize(r io.Reader, max, size int) *Reader {
	if max <= 0 {
		max = DefaultMaxMessageSize
	}
	return &Reader{r: bufio.NewReaderSize(r, size), src: r, size: size, pool: readerPool(size), max: max}
}

// readerPools recycle the read buffers of released Readers, one pool per
// buffer size.
var readerPools sync.Map // int → *sync.Pool of *bufio.Reader

func readerPool(size int) *sync.Pool {
	if p, ok := readerPools.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := readerPools.LoadOrStore(size, &sync.Pool{})
	return p.(*sync.Pool)
}

// Release gives the read buffer back to a pool shared by Readers of its
// size when nothing is buffered, and reports whether it did: a
// connection waiting for its next message then holds no buffer. The
// message lent by the last Next is no longer valid. The next Fill or Next
// takes a buffer again.
func (fr *Reader) Release() bool {
	if fr.r == nil {
		return true
	}
	fr.release()
	if fr.r.Buffered() > 0 {
		return false
	}
	fr.pool.Put(fr.r)
	fr.r = nil
	return true
}

// take makes sure the Reader has a read buffer.
func (fr *Reader) take() {
	if fr.r != nil {
		return
	}
	if br, ok := fr.pool.Get().(*bufio.Reader); ok {
		br.Reset(fr.src)
		fr.r = br
		return
	}
	fr.r = bufio.NewReaderSize(fr.src, fr.size)
}

// Next returns the next complete message (tag, length and content).
// io.EOF is returned only at a clean message boundary; a stream cut inside a
// message gives io.ErrUnexpectedEOF.
func (fr *Reader) Next() ([]byte, error) {
	fr.take()
	fr.release()
	if frame := fr.inPlace(); frame != nil {
		return frame, nil
	}
	fr.partial = fr.r.Buffered() > 0
	defer func() { fr.partial = false }()
	header, size, err := fr.readHeader()
	if err != nil {
		return nil, err
	}
	total := len(header) + size
	fr.shrink(total)
	if cap(fr.buf) < total {
		fr.buf = make([]byte, total, growSize(total))
	}
	fr.buf = fr.buf[:total]
	copy(fr.buf, header)
	if _, err := io.ReadFull(fr.r, fr.buf[len(header):]); err != nil {
		return nil, unexpected(err)
	}
	return fr.buf, nil
}

// Buffered is the number of bytes read from the stream but not yet
// returned: more than zero means a next message has begun.
func (fr *Reader) Buffered() int {
	if fr.r == nil {
		return 0
	}
	return fr.r.Buffered() - fr.lent
}

// Ready reports whether a whole next message is already buffered, so that
// Next will return without reading the stream.
func (fr *Reader) Ready() bool {
	b, total, ok := fr.peekFrame()
	return ok && total <= len(b)
}

// Fill reads the stream once, into what the read buffer has free, for a
// caller that knows from a readiness event that the stream has bytes: the
// following Next calls return the messages made whole, without reading,
// as long as Ready says so. more reports that the read filled the free
// space (or that there was none), so the stream may hold more: read again
// once Next has made room. err is the read's, which for a non-blocking
// stream may say that nothing was there; the frames already buffered stay.
func (fr *Reader) Fill() (more bool, err error) {
	fr.take()
	fr.release()
	n := fr.r.Buffered()
	free := fr.r.Size() - n
	if free <= 0 {
		return true, nil
	}
	_, err = fr.r.Peek(n + 1)
	if errors.Is(err, bufio.ErrBufferFull) {
		err = nil
	}
	return fr.r.Buffered()-n == free, err
}

// Incomplete reports whether a next message has begun in the buffer
// without being whole, and whether it can become whole there: fits is
// false when it is larger than the read buffer, or its header is not
// valid (Next then reports why). Only Next can read such a message.
func (fr *Reader) Incomplete() (partial, fits bool) {
	left := fr.Buffered()
	if left == 0 {
		return false, true
	}
	b, _ := fr.r.Peek(fr.r.Buffered()) // buffered: no read
	b = b[fr.lent:]
	if b[0] != tagSequence {
		return true, false
	}
	length, used, err := parseLength(b[1:])
	switch {
	case err != nil:
		return true, false
	case used == 0: // length octets still to come
		return true, true
	case length > fr.max:
		return true, false
	}
	total := 1 + used + length
	return total > len(b), total <= fr.r.Size()
}

// Partial reports, while Next reads the stream, whether that read is for
// the rest of a message already begun (not the wait for a next one): the
// caller of Next may bound it more tightly.
func (fr *Reader) Partial() bool { return fr.partial }

// release discards the message lent by the previous Next.
func (fr *Reader) release() {
	if fr.lent > 0 && fr.r != nil {
		fr.r.Discard(fr.lent)
		fr.lent = 0
	}
}

// inPlace returns the next message as a slice of the read buffer when it is
// wholly buffered and well formed, or nil to take the reading path (which
// also reports errors).
func (fr *Reader) inPlace() []byte {
	b, total, ok := fr.peekFrame()
	if !ok || total > len(b) {
		return nil
	}
	fr.lent = total
	return b[:total]
}

// peekFrame looks at the buffered bytes after the lent message without
// reading the stream: ok when they start with a valid message header of at
// most max bytes; total is that message's whole size.
func (fr *Reader) peekFrame() (b []byte, total int, ok bool) {
	if fr.r == nil {
		return nil, 0, false
	}
	n := fr.r.Buffered()
	if n-fr.lent < 2 {
		return nil, 0, false
	}
	b, _ = fr.r.Peek(n) // n bytes are buffered: no read
	b = b[fr.lent:]
	if b[0] != tagSequence {
		return nil, 0, false
	}
	length, used, err := parseLength(b[1:])
	if err != nil || used == 0 || length > fr.max {
		return nil, 0, false
	}
	return b, 1 + used + length, true
}

// growSize rounds allocations up so steady traffic reuses one buffer.
func growSize(n int) int {
	if n < 4096 {
		return 4096
	}
	return n
}

// shrink drops, before a small message of total bytes is assembled, a
// buffer that an earlier large message grew far beyond the usual size. It
// runs before the buffer is filled, never after: the frame returned is
// always the buffer just read into.
func (fr *Reader) shrink(total int) {
	if cap(fr.buf) > 1<<20 && total < 64<<10 {
		fr.buf = nil
	}
}

// readHeader reads the SEQUENCE tag and length octets and returns them with
// the content length. The returned header aliases a small internal array.
func (fr *Reader) readHeader() ([]byte, int, error) {
	tag, err := fr.r.ReadByte()
	if err != nil {
		return nil, 0, err
	}
	fr.partial = true
	if tag != tagSequence {
		return nil, 0, malformed("message starts with tag 0x%02x, want SEQUENCE (0x30)", tag)
	}
	hdr := fr.hdr[:]
	hdr[0] = tag
	n := 1
	for {
		b, err := fr.r.ReadByte()
		if err != nil {
			return nil, 0, unexpected(err)
		}
		hdr[n] = b
		n++
		length, used, err := parseLength(hdr[1:n])
		if err != nil {
			return nil, 0, err
		}
		if used == 0 {
			continue
		}
		if length > fr.max {
			return nil, 0, fmt.Errorf("ldapwire: %w: %d bytes announced, limit %d", ErrTooLarge, length, fr.max)
		}
		return hdr[:n], length, nil
	}
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
