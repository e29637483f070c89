package proxy

import (
	"fmt"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// Client-bind mode (servers without proxied authorization, such as Active
// Directory): a client's bind is performed on a connection leased to its
// session, which then carries the client's operations to that server, with
// no control: the server sees the client's own identity. Anonymous clients
// get an unbound leased connection. The client's password is never kept:
// when the connection it is bound on is lost, its operations fail with a
// message asking it to bind again (it may have been moved to another
// server by then, with its new bind).

// knowMode makes sure that srv's identity mode is known before an
// operation chooses how to reach it. The mode is read from the root DSE
// when a connection bound as the service account opens, which nothing may
// have done yet (the first clients after a start or a reload, before the
// identity check ran): without it a client's bind would go to a shared bind
// connection and its operations would carry a control, or go anonymously,
// to a server in client-bind mode. A connection of its own is dialed for
// it (Pool.Detect), and closed. ok is false, and res says why, when the
// mode could not be learnt (errMustWait without mayWait).
func (p *Proxy) knowMode(req *Request, srv *backend.Server, mayWait bool) (res attemptResult, ok bool) {
	if srv.Capabilities() != nil {
		return attemptResult{}, true
	}
	ctx, cancel, res := p.waitContext(req, mayWait)
	if ctx == nil {
		return res, false
	}
	defer cancel()
	if _, err := srv.Pool().Detect(ctx); err != nil && srv.Capabilities() == nil {
		return dialResult(req, err), false
	}
	return attemptResult{}, true
}

// pinToBinding sends the operations of a client bound in client-bind mode
// to the connection it is bound on. It reports false when the request was
// answered instead (that connection was lost).
func (p *Proxy) pinToBinding(req *Request) bool {
	l, gone, why := req.Leases.binding()
	if gone != nil {
		msg := fmt.Sprintf("the connection to server %s on which this client is bound was lost; bind again (ldapmux keeps no password to do it for you)", gone.Name)
		if why != "" {
			msg = fmt.Sprintf("the connection to server %s on which this client is bound could not be kept: %s; bind again", gone.Name, why)
		}
		req.out.Code = p.fail(req, ldapwire.Unavailable, msg)
		p.complete(req)
		return false
	}
	if l != nil {
		p.pinTo(req, l)
	}
	return true
}

// pinTo makes l's server the only candidate of req, and l its connection.
func (p *Proxy) pinTo(req *Request, l *lease) {
	req.pinned = l
	req.cands = req.candBuf[:0]
	for i, s := range req.snap.Servers {
		if s.Server == l.srv {
			req.cands = append(req.cands, i)
		}
	}
}

// directConn returns the connection carrying the client's own identity to
// srv: the one it is bound on, the session's unbound one for an anonymous
// client (for a bind too: Leases.rebindOn), or a new unbound one.
func (p *Proxy) directConn(req *Request, srv *backend.Server, mayWait bool) (*lease, attemptResult) {
	bind := req.Msg.OpTag == ldapwire.OpBindRequest
	if l := req.pinned; l != nil { // a bind's too: the client's own connection (Leases.rebindOn)
		return p.usePinned(req, l)
	}
	if !bind {
		if l := req.Leases.take(srv, true); l != nil {
			return l, attemptResult{}
		}
	}
	return p.newLease(req, srv, mayWait, lease{direct: true, sticky: !bind}, (*backend.Pool).LeaseUnbound)
}

// usePinned reserves an operation on the lease req is pinned to.
func (p *Proxy) usePinned(req *Request, l *lease) (*lease, attemptResult) {
	if l.conn.Err() != nil {
		return nil, attemptResult{status: notSent, err: errLeaseLost}
	}
	req.Leases.mu.Lock()
	req.Leases.use(l)
	req.Leases.mu.Unlock()
	return l, attemptResult{}
}

// keepOwnBinding makes the bind connection of c, whose bind succeeded and
// whose answer says the server restricts the session (a password that must
// be changed, an expired one in its grace logins), the connection the
// client is bound on, as in client-bind mode: its operations go there
// without a control, and the server treats them exactly as on the
// client's own connection. With the control instead, the server would
// apply none of that session's restrictions. When no connection may be
// leased, the client is told to bind again rather than be served without
// them.
func (p *Proxy) keepOwnBinding(c *call) {
	pool := c.srv.Pool()
	if !pool.LeaseBind(c.conn) {
		pool.ReleaseBind(c.conn) // the next bind on it resets the session
		c.req.Leases.lostBinding(c.srv, "every connection that may be leased is (pool.leased-connections-per-server)")
		return
	}
	l, spare := c.req.Leases.addLease(&lease{srv: c.srv, pool: pool, conn: c.conn, direct: true})
	if l == nil {
		pool.ReleaseLease(spare) // the client left
		return
	}
	c.req.Leases.bindResult(l, true)
	c.req.Leases.release(l, 0)
}
