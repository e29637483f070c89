package proxy

import (
	"errors"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// errServerFull is the reason given when a server is at MaxPerServer.
var errServerFull = errors.New("at its limit of operations in flight (limits.max-operations-per-server)")

// timeoutFor is how long an attempt of req may wait for the server's next
// response.
func (p *Proxy) timeoutFor(req *Request) time.Duration {
	if req.Msg.OpTag == ldapwire.OpBindRequest && p.conf().BindTimeout > 0 && p.conf().BindTimeout < p.conf().OperationTimeout {
		return p.conf().BindTimeout
	}
	return p.conf().OperationTimeout
}

// timingFor bounds an attempt of req: the operation timeout measures the
// server's silence, a search may also be capped as a whole, and a
// long-lived search has no bound. A read may leave a server found not
// answering before its timeout (backend.Server.GiveUpInFlight).
func (p *Proxy) timingFor(req *Request) backend.Timing {
	read := isRead(req)
	switch {
	case req.state == longLived:
		return backend.Timing{Movable: read}
	case req.Msg.OpTag == ldapwire.OpSearchRequest:
		return backend.Timing{Silence: p.conf().OperationTimeout, Total: p.conf().SearchTimeLimit, Movable: read}
	}
	return backend.Timing{Silence: p.timeoutFor(req), Movable: read}
}
