//go:build !unix

package evloop

import (
	"errors"
	"net"
	"syscall"
)

// ErrWouldBlock is what TryRead returns when nothing is there to read.
var ErrWouldBlock = errors.New("evloop: nothing to read yet")

// Socket is unavailable here: every socket is read and written by net.
type Socket struct{}

// NewSocket returns nil here.
func NewSocket(net.Conn) *Socket { return nil }

func (*Socket) RawConn() syscall.RawConn       { return nil }
func (*Socket) TryRead([]byte) (int, error)    { return 0, ErrWouldBlock }
func (*Socket) TryWrite(b []byte) (int, error) { return 0, errors.ErrUnsupported }
