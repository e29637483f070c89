package backend

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"

	"github.com/ldapmux/ldapmux/internal/evloop"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// connStream is what a connection's framer reads: the socket itself,
// blocking, while a goroutine reads it (the service bind, a message larger
// than the read buffer, TLS); one non-blocking read per readiness event
// while an event loop serves it (see evloop).
type connStream struct {
	nc     net.Conn
	rc     syscall.RawConn // nil under TLS
	nowait bool            // owner only: the loop serves the connection
	n      int
	err    error
	buf    []byte
	readFn func(fd uintptr) bool // read, bound once: no allocation per read
}

// errWouldBlock is what a non-blocking read of an empty socket returns.
var errWouldBlock = errors.New("backend: nothing to read yet")

func newConnStream(nc net.Conn) *connStream {
	s := &connStream{nc: nc}
	if tc, ok := nc.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			s.rc = rc
		}
	}
	s.readFn = s.read
	return s
}

func (s *connStream) read(fd uintptr) bool {
	s.n, s.err = syscall.Read(int(fd), s.buf)
	return true // never wait: the loop said there is something
}

func (s *connStream) Read(p []byte) (int, error) {
	if !s.nowait {
		return s.nc.Read(p)
	}
	s.buf = p
	err := s.rc.Read(s.readFn)
	s.buf = nil
	n, rerr := s.n, s.err
	s.n, s.err = 0, nil
	switch {
	case err != nil:
		return 0, err
	case rerr == syscall.EAGAIN || rerr == syscall.EINTR:
		return 0, errWouldBlock
	case rerr != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: rerr}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// eventReader serves a plain connection's responses from an event loop:
// one read per readiness event, every whole response in it dispatched, the
// clients flushed once. A response larger than the read buffer is read by
// a goroutine, which hands the connection back once it has caught up.
type eventReader struct {
	c      *Conn
	r      *ldapwire.Reader
	stream *connStream
	loop   *evloop.Loop
	reg    atomic.Pointer[evloop.Registration]
	dirty  flushSet // owner only
}

// startReading has the connection's responses read by an event loop when
// one is running and the connection is plain TCP, by a goroutine otherwise.
func (c *Conn) startReading(r *ldapwire.Reader, stream *connStream) {
	if g := evloop.Shared(); g != nil && stream.rc != nil {
		e := &eventReader{c: c, r: r, stream: stream, loop: g.Pick()}
		c.events = e
		if e.register() {
			return
		}
		c.events = nil
	}
	go c.readLoop(r)
}

// register hands the connection to the loop; false when the loop would
// not take it (the caller keeps reading).
func (e *eventReader) register() bool {
	e.stream.nowait = true
	reg, err := e.loop.Add(e.stream.rc, e)
	if err != nil {
		e.stream.nowait = false
		return false
	}
	e.reg.Store(reg)
	if !e.c.isOpen() { // closed meanwhile: its Close may have missed reg
		reg.Remove()
	}
	return true
}

// unregister stops the loop's reports (Close, or a goroutine takes over).
func (e *eventReader) unregister() {
	if reg := e.reg.Swap(nil); reg != nil {
		reg.Remove()
	}
}

// Readable runs on the loop (evloop.Handler).
func (e *eventReader) Readable() {
	if e.reg.Load() == nil { // a report from before the goroutine took over
		return
	}
	err := e.r.Fill()
	if errors.Is(err, errWouldBlock) {
		return
	}
	c := e.c
	for e.r.Ready() {
		frame, _ := e.r.Next() // whole in the buffer: no read
		f, derr := c.dispatch(frame)
		if derr != nil {
			e.dirty.flush()
			e.unregister()
			c.Close(derr)
			return
		}
		e.dirty.add(f)
	}
	e.dirty.flush()
	if err != nil {
		e.unregister()
		c.Close(fmt.Errorf("backend %s: read: %w", c.server.Name, unexpectedEOF(err, e.r)))
		return
	}
	if partial, fits := e.r.Incomplete(); partial && !fits {
		e.unregister()
		e.stream.nowait = false
		go e.readUntilCaughtUp()
	}
}

// unexpectedEOF reports an end of stream inside a response as such.
func unexpectedEOF(err error, r *ldapwire.Reader) error {
	if errors.Is(err, io.EOF) && r.Buffered() > 0 {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readUntilCaughtUp reads with blocking reads until nothing is left
// half-read, then hands the connection back to the loop.
func (e *eventReader) readUntilCaughtUp() {
	c := e.c
	for {
		frame, err := e.r.Next()
		if err != nil {
			e.dirty.flush()
			c.Close(fmt.Errorf("backend %s: read: %w", c.server.Name, err))
			return
		}
		f, err := c.dispatch(frame)
		if err != nil {
			e.dirty.flush()
			c.Close(err)
			return
		}
		e.dirty.add(f)
		if e.r.Ready() {
			continue
		}
		e.dirty.flush()
		if partial, _ := e.r.Incomplete(); !partial && e.register() {
			return
		}
	}
}

// rawWriter writes to a plain socket without waiting for it.
type rawWriter struct {
	rc      syscall.RawConn
	buf     []byte
	n       int
	err     error
	writeFn func(fd uintptr) bool
}

func newRawWriter(rc syscall.RawConn) *rawWriter {
	w := &rawWriter{rc: rc}
	w.writeFn = w.write
	return w
}

func (w *rawWriter) write(fd uintptr) bool {
	w.n, w.err = syscall.Write(int(fd), w.buf)
	return true
}

// tryWrite writes what the socket takes at once; a full socket is not an
// error (n is then short).
func (w *rawWriter) tryWrite(b []byte) (int, error) {
	w.buf = b
	err := w.rc.Write(w.writeFn)
	w.buf = nil
	n, werr := max(w.n, 0), w.err
	w.n, w.err = 0, nil
	switch {
	case err != nil:
		return 0, err
	case werr == syscall.EAGAIN || werr == syscall.EINTR:
		return n, nil
	case werr != nil:
		return 0, &net.OpError{Op: "write", Net: "tcp", Err: werr}
	}
	return n, nil
}
