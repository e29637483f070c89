package proxy

import (
	"strings"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// A client changing its own password with Password Modify (RFC 3062) and
// giving its old one: some directories (389 Directory Server) ignore
// proxied authorization on extended operations and would act as the
// service account. The request goes instead on a connection of its own,
// bound as the client with the old password it sent, without any control
// — what a direct connection does. If that bind fails, the request takes
// the usual way and the server answers it.

// selfBoundConn returns such a connection for req, as a lease that ends
// with the operation; ok is false when req is not such a request or the
// bind failed.
func (p *Proxy) selfBoundConn(req *Request, srv *backend.Server, mayWait bool) (*lease, attemptResult, bool) {
	oldPassword, ok := ownPasswordChange(req)
	if !ok {
		return nil, attemptResult{}, false
	}
	ctx, cancel, res := p.waitContext(req, mayWait)
	if ctx == nil {
		return nil, res, true
	}
	defer cancel()
	pool := srv.Pool()
	conn, err := pool.LeaseUnbound(ctx)
	if err != nil {
		return nil, attemptResult{}, false
	}
	bind := p.roundTrip(req, conn, func(dst []byte, id int32) []byte {
		return ldapwire.AppendSimpleBind(dst, id, req.Identity.DN, string(oldPassword))
	})
	if bind.err != nil || resultCode(bind.msg) != ldapwire.Success {
		pool.ReleaseLease(conn)
		return nil, attemptResult{}, false
	}
	l, res := recordLease(req, &lease{srv: srv, pool: pool, conn: conn, direct: true})
	return l, res, true
}

// ownPasswordChange reports whether req changes its bound client's own
// password giving the old one, and returns it.
func ownPasswordChange(req *Request) ([]byte, bool) {
	if req.Leases == nil || req.Msg.OpTag != ldapwire.OpExtendedRequest || string(req.Msg.ExtendedOID()) != ldapwire.OIDPasswordModify {
		return nil, false
	}
	dn := req.Identity.DN
	if !strings.Contains(dn, "=") {
		return nil, false
	}
	pm, err := ldapwire.ParsePasswordModify(req.Msg.Body)
	if err != nil || pm.OldPassword == nil {
		return nil, false
	}
	user := string(pm.UserIdentity)
	if pm.UserIdentity != nil && !strings.EqualFold(user, dn) && !strings.EqualFold(user, "dn:"+dn) {
		return nil, false
	}
	return pm.OldPassword, true
}
