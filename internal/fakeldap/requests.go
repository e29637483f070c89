package fakeldap

import (
	"net"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// ServeRequests reads the requests of nc in order and hands each to handle
// until the connection ends, an unbind arrives or a request is malformed
// (reported to malformed when it is not nil). A message is valid only until
// handle returns. It is the read loop of every fake server in the tests.
func ServeRequests(nc net.Conn, handle func(ldapwire.Message), malformed func(error)) {
	r := ldapwire.NewReader(nc, 0)
	for {
		frame, err := r.Next()
		if err != nil {
			return
		}
		msg, err := ldapwire.Parse(frame)
		if err != nil {
			if malformed != nil {
				malformed(err)
			}
			return
		}
		if msg.OpTag == ldapwire.OpUnbindRequest {
			return
		}
		handle(msg)
	}
}
