package frontend

import (
	"crypto/tls"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/proxy"
)

// refuseInsecure answers confidentialityRequired (13) to a request that
// carries a password over an unencrypted connection when the configuration
// requires encryption. It reports whether it did; the request then never
// reaches a server.
func (s *Session) refuseInsecure(msg ldapwire.Message) bool {
	if !s.refusesPasswords() {
		return false
	}
	s.reply(msg, ldapwire.ConfidentialityRequired,
		"passwords are only accepted over an encrypted connection: use LDAPS or StartTLS (require-secure-bind)")
	return true
}

// refusesPasswords reports whether a password sent on this connection is
// refused (require-secure-bind on a connection that is not encrypted).
func (s *Session) refusesPasswords() bool { return s.srv.conf().RequireSecureBind && !s.isSecure() }

// unauthenticatedBind handles a DN with an empty password (RFC 4513,
// 5.1.2). The client stays anonymous either way. With
// allow-unauthenticated-binds it is answered success at once; otherwise
// the server answers it, where the client's own connection would (its
// refusal as it words it, and what becomes of a session it keeps), but a
// success is turned into a refusal (proxy.UnauthenticatedRefusal).
func (s *Session) unauthenticatedBind(msg ldapwire.Message) {
	if s.srv.conf().AllowUnauthenticatedBinds {
		s.reply(msg, ldapwire.Success, "")
		return
	}
	s.start(msg, func(req *proxy.Request) {
		req.Unauthenticated = true
		req.OnBindResult = func(int) { s.bound(req, proxy.Anonymous) }
	})
}

// startTLS answers the StartTLS operation (RFC 4511, 4.14; RFC 4513, 3).
func (s *Session) startTLS(msg ldapwire.Message) {
	switch {
	case s.tlsOn.Load():
		s.reply(msg, ldapwire.OperationsError, "TLS is already established")
	case !s.lc.StartTLS || s.lc.TLS == nil:
		s.reply(msg, ldapwire.Unavailable, "StartTLS is not configured on this listener")
	case s.outstanding() > 0:
		s.reply(msg, ldapwire.OperationsError, "StartTLS requested while operations are in progress")
	case s.reader.Buffered() > 0:
		s.disconnect(ldapwire.ProtocolError, "data sent after StartTLS before its response")
	default:
		s.upgrade(msg)
	}
}

// upgrade sends the StartTLS response in clear, after anything still
// queued, then runs the TLS handshake. A failed handshake ends the session.
func (s *Session) upgrade(msg ldapwire.Message) {
	s.wmu.Lock()
	timeout := s.srv.conf().WriteTimeout
	ok := s.writeLocked(timeout) && s.out.push(startTLSResponse(msg.ID)) && s.writeLocked(timeout)
	tc := tls.Server(s.conn, s.lc.TLS.ServerConfig())
	s.conn = tc
	s.direct = nil
	s.wmu.Unlock()
	s.secured = true
	if !ok {
		s.close()
		return
	}
	s.setReadDeadline(time.Now().Add(s.srv.conf().requestTimeout()))
	if err := tc.HandshakeContext(s.ctx); err != nil {
		s.srv.log.Debug("dropping client: TLS handshake after StartTLS failed", "conn", s.id, "client", s.remote, "err", err)
		s.close()
		return
	}
	s.tlsOn.Store(true)
}

// startTLSResponse is a successful ExtendedResponse naming StartTLS.
func startTLSResponse(id int32) []byte {
	oid := ldapwire.OIDStartTLS
	body := []byte{0x0a, 1, ldapwire.Success, 0x04, 0, 0x04, 0, 0x8a, byte(len(oid))}
	body = append(body, oid...)
	op := append([]byte{ldapwire.OpExtendedResponse, byte(len(body))}, body...)
	return ldapwire.AppendMessage(nil, id, op, nil, nil)
}

// refuseConnectionState answers unwillingToPerform to requests that would
// act on a shared server connection (proxy.RefusedExtensions and
// RefusedControls: Cancel names a message ID, which on a shared connection
// may be anybody's; transactions span requests); it reports whether it did.
func (s *Session) refuseConnectionState(msg ldapwire.Message) bool {
	what := proxy.RefusedExtensions[string(msg.ExtendedOID())]
	_ = ldapwire.EachControl(msg.Controls, func(c ldapwire.Control) bool {
		if name, ok := proxy.RefusedControls[string(c.OID)]; ok && !isProxiedAuthz(c.OID) {
			what = name + " control"
		}
		return what == ""
	})
	if what == "" {
		return false
	}
	s.reply(msg, ldapwire.UnwillingToPerform, what+" acts on the whole connection, which ldapmux shares between clients: not supported")
	return true
}

// isProxiedAuthz tells the proxied authorization controls, refused with
// their own result code by operation.
func isProxiedAuthz(oid []byte) bool {
	return string(oid) == ldapwire.OIDProxiedAuthzV2 || string(oid) == ldapwire.OIDProxiedAuthzV1
}
