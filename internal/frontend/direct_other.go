//go:build !unix

package frontend

import "net"

// directWriter is unavailable here: every response goes through the
// session's writer goroutine.
type directWriter struct{}

func newDirectWriter(net.Conn) *directWriter { return nil }

func (*directWriter) tryWrite([]byte) (int, error) { return 0, nil }
