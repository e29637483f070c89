//go:build unix

package frontend

import (
	"errors"
	"net"
	"syscall"
)

// directWriter writes to a client socket without waiting: when the kernel
// takes the whole batch, which is the common case, the response leaves on
// the goroutine that produced it (the backend reader) instead of waking the
// session's writer goroutine, a scheduler handoff per operation.
type directWriter struct {
	rc  syscall.RawConn
	buf []byte
	n   int
	err error
	fn  func(fd uintptr) bool // d.write, bound once: no allocation per write
}

// newDirectWriter returns a writer for a plain TCP connection, or nil.
func newDirectWriter(nc net.Conn) *directWriter {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	d := &directWriter{rc: rc}
	d.fn = d.write
	return d
}

func (d *directWriter) write(fd uintptr) bool {
	d.n, d.err = syscall.Write(int(fd), d.buf)
	return true // never wait for the socket to become writable
}

// tryWrite writes what the socket takes at once; a full socket is not an
// error (n is then short).
func (d *directWriter) tryWrite(b []byte) (int, error) {
	d.buf = b
	err := d.rc.Write(d.fn)
	d.buf = nil
	if err != nil {
		return 0, err
	}
	n, werr := max(d.n, 0), d.err
	d.err = nil
	if errors.Is(werr, syscall.EAGAIN) || errors.Is(werr, syscall.EINTR) {
		werr = nil
	}
	return n, werr
}
