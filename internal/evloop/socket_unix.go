//go:build unix

package evloop

import (
	"errors"
	"io"
	"net"
	"syscall"
)

// ErrWouldBlock is what TryRead returns when nothing is there to read.
var ErrWouldBlock = errors.New("evloop: nothing to read yet")

// Socket reads and writes a socket without ever waiting for it: one system
// call each, on the caller's goroutine. One reader and one writer may use
// it at the same time.
type Socket struct {
	rc syscall.RawConn

	rbuf    []byte
	rn      int
	rerr    error
	readFn  func(fd uintptr) bool // bound once: no allocation per call
	wbuf    []byte
	wn      int
	werr    error
	writeFn func(fd uintptr) bool
}

// NewSocket returns a Socket for a plain TCP (or Unix) connection, or nil
// when nc is not one (TLS, a pipe in tests).
func NewSocket(nc net.Conn) *Socket {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	s := &Socket{rc: rc}
	s.readFn, s.writeFn = s.read, s.write
	return s
}

// RawConn is the socket's descriptor access, for Loop.Add.
func (s *Socket) RawConn() syscall.RawConn { return s.rc }

func (s *Socket) read(fd uintptr) bool {
	s.rn, s.rerr = rawRead(int(fd), s.rbuf)
	return true
}

func (s *Socket) write(fd uintptr) bool {
	s.wn, s.werr = rawWrite(int(fd), s.wbuf)
	return true
}

// TryRead reads what is there: ErrWouldBlock when nothing, io.EOF at the
// end of the stream. A read deadline that has passed fails it, as it
// would fail net's Read.
func (s *Socket) TryRead(p []byte) (int, error) {
	s.rbuf = p
	err := s.rc.Read(s.readFn)
	s.rbuf = nil
	n, rerr := s.rn, s.rerr
	s.rn, s.rerr = 0, nil
	switch {
	case err != nil:
		return 0, err
	case rerr == syscall.EAGAIN || rerr == syscall.EINTR:
		return 0, ErrWouldBlock
	case rerr != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: rerr}
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// TryWrite writes what the socket takes at once; a full socket is not an
// error (n is then short).
func (s *Socket) TryWrite(b []byte) (int, error) {
	s.wbuf = b
	err := s.rc.Write(s.writeFn)
	s.wbuf = nil
	n, werr := max(s.wn, 0), s.werr
	s.wn, s.werr = 0, nil
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
