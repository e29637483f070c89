package proxy

import (
	"errors"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// errServerFull is the reason given when a server is at MaxPerServer.
var errServerFull = errors.New("at its limit of operations in flight (limits.max-operations-per-server)")

// timeoutFor is how long an attempt of req waits for its final response.
func (p *Proxy) timeoutFor(req *Request) time.Duration {
	if req.Msg.OpTag == ldapwire.OpBindRequest && p.conf().BindTimeout > 0 && p.conf().BindTimeout < p.conf().OperationTimeout {
		return p.conf().BindTimeout
	}
	return p.conf().OperationTimeout
}
