package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// SASL binds.
//
// In client-bind mode a SASL bind goes on the client's own connection
// (saslOnOwnConnection), as a simple bind does. Otherwise:
//
// A SASL bind may take several rounds (saslBindInProgress) that must all
// reach the same server connection, and its outcome is an authorization
// identity that the exchange does not show. So each negotiation gets a
// connection of its own (backend.Pool.DialSASL), held between rounds in the
// client's SASLExchange for at most the bind timeout and closed when the
// bind is over. After a successful bind the proxy asks the server "Who am
// I?" (RFC 4532) on that connection, and the answer goes into the Proxied
// Authorization control of the client's next operations. A mechanism that
// installs a security layer cannot pass a multiplexing proxy: the Who am I?
// request then fails and the client gets an error instead of success.

// SASLExchange is a client's SASL negotiation between two rounds. A
// session owns one; it is safe for concurrent use.
type SASLExchange struct {
	mu    sync.Mutex
	srv   *backend.Server
	conn  *backend.Conn
	mech  string
	timer *time.Timer
}

// hold keeps conn for the next round of mech, and closes it if that round
// does not come within idle.
func (x *SASLExchange) hold(srv *backend.Server, conn *backend.Conn, mech string, idle time.Duration) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.closeLocked()
	x.srv, x.conn, x.mech = srv, conn, mech
	x.timer = time.AfterFunc(idle, func() { x.expire(conn) })
}

// expire ends the negotiation on conn if it is still the one held.
func (x *SASLExchange) expire(conn *backend.Conn) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.conn == conn {
		x.closeLocked()
	}
}

// take hands over the held connection when the next round continues the
// same mechanism on it; any other negotiation is closed.
func (x *SASLExchange) take(mech string) (*backend.Server, *backend.Conn) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.conn == nil || x.mech != mech || x.conn.Err() != nil {
		x.closeLocked()
		return nil, nil
	}
	srv, conn := x.srv, x.conn
	x.timer.Stop()
	x.srv, x.conn, x.mech, x.timer = nil, nil, "", nil
	return srv, conn
}

// Holding reports whether a negotiation waits for its next round.
func (x *SASLExchange) Holding() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.conn != nil
}

// Close ends the negotiation in progress, if any: the client bound
// otherwise, or left.
func (x *SASLExchange) Close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.closeLocked()
}

func (x *SASLExchange) closeLocked() {
	if x.timer != nil {
		x.timer.Stop()
	}
	if x.conn != nil {
		go x.conn.Retire()
	}
	x.srv, x.conn, x.mech, x.timer = nil, nil, "", nil
}

// saslBind forwards one round of a SASL bind. It waits for the server, so
// it runs on a goroutine of its own.
func (p *Proxy) saslBind(req *Request) {
	br, err := ldapwire.ParseBind(req.Msg.Body)
	if err != nil { // the session validated it
		req.out.Code = p.fail(req, ldapwire.ProtocolError, "malformed bind request")
		p.complete(req)
		return
	}
	mech := string(br.Mechanism)
	if !req.SASL.Holding() {
		if srv := clientBindTarget(req); srv != nil {
			p.saslOnOwnConnection(req, srv)
			return
		}
	}
	if req.Leases != nil {
		req.Leases.Retire() // the identity the server reports replaces the session's own connection
	}
	srv, conn := req.SASL.take(mech)
	if conn == nil {
		if srv, conn = p.saslConn(req); conn == nil {
			return // answered
		}
	}
	if res, ok := p.knowMode(req, srv, true); !ok {
		go conn.Retire()
		req.out.Server = srv.Name
		p.saslLost(req, srv, res.err)
		return
	}
	if srv.ClientBind() { // found only now, its capabilities not known before
		go conn.Retire()
		p.saslOnOwnConnection(req, srv)
		return
	}
	started, _ := srv.StartOp(0)
	res := p.roundTrip(req, conn, func(dst []byte, id int32) []byte {
		return ldapwire.AppendMessage(dst, id, req.Msg.Op, req.Msg.Controls, nil)
	})
	srv.EndOp(started)
	req.out.Server = srv.Name
	if res.err != nil {
		conn.Close(res.err)
		p.saslLost(req, srv, res.err)
		return
	}
	code := resultCode(res.msg)
	switch code {
	case ldapwire.SaslBindInProgress:
		req.SASL.hold(srv, conn, mech, p.timeoutFor(req))
	case ldapwire.Success:
		ident, err := p.whoAmI(req, conn)
		go conn.Retire()
		if err != nil {
			p.log.Warn("SASL bind succeeded but the identity is unknown: the client is told it failed",
				"conn", req.ConnID, "server", srv.Name, "mechanism", mech, "err", err)
			req.out.Code = p.fail(req, ldapwire.Other, fmt.Sprintf(
				"the server accepted the %s bind but ldapmux cannot tell as whom (Who am I?: %v); "+
					"mechanisms that negotiate a security layer cannot be used through ldapmux", mech, err))
			p.complete(req)
			return
		}
		req.SASLBound(ident)
	default:
		go conn.Retire()
	}
	p.saslAnswered(req, srv, res.msg, code)
}

// saslAnswered passes srv's answer to a round of a SASL bind on to the
// client and ends the operation.
func (p *Proxy) saslAnswered(req *Request, srv *backend.Server, msg ldapwire.Message, code int) {
	req.Sink.SendMessage(msg, req.Msg.ID)
	req.Sink.Flush()
	req.out.Code = code
	req.router.Record(&req.Route, srv.Name, code, time.Now())
	p.complete(req)
}

// clientBindTarget is the server a SASL bind goes to in client-bind mode:
// the first of its candidates whose capabilities are known, when that one
// is used in client-bind mode; nil otherwise.
func clientBindTarget(req *Request) *backend.Server {
	if req.Leases == nil {
		return nil
	}
	for _, i := range req.cands {
		srv := req.snap.Servers[i].Server
		if srv.Capabilities() != nil {
			if srv.ClientBind() {
				return srv
			}
			return nil
		}
	}
	return nil
}

// saslOnOwnConnection forwards one round of a SASL bind in client-bind mode
// on the client's own connection, as a simple bind goes (Leases.rebindOn):
// the one it is bound on or its unbound one, else a new unbound one kept
// for it. Its later rounds find it there, and the server decides what the
// bind makes of the session, as on the client's own connection. A success
// gives the client that connection as the one it is bound on; the
// identity it authenticated as is the server's to know (routes by bind DN
// do not apply). A mechanism that installs a security layer leaves the
// client's next requests unreadable: ldapmux then closes its connection.
func (p *Proxy) saslOnOwnConnection(req *Request, srv *backend.Server) {
	l, res := p.ownConnection(req, srv)
	if l == nil {
		req.out.Server = srv.Name
		if res.status == abandoned {
			p.complete(req)
			return
		}
		p.saslLost(req, srv, res.err)
		return
	}
	srv = l.srv
	req.out.Server = srv.Name
	started, _ := srv.StartOp(0)
	r := p.roundTrip(req, l.conn, func(dst []byte, id int32) []byte {
		return ldapwire.AppendMessage(dst, id, req.Msg.Op, req.Msg.Controls, nil)
	})
	srv.EndOp(started)
	if r.err != nil {
		l.conn.Close(r.err)
		req.Leases.release(l, 0)
		p.saslLost(req, srv, r.err)
		return
	}
	code := resultCode(r.msg)
	if code == ldapwire.Success {
		req.Leases.bindResult(l, true)
		req.SASLBound(Anonymous)
	}
	req.Leases.release(l, 0)
	p.saslAnswered(req, srv, r.msg, code)
}

// ownConnection reserves the client's own connection for a bind in
// client-bind mode: the one Leases.rebindOn finds, or a new unbound one on
// srv, kept for the session.
func (p *Proxy) ownConnection(req *Request, srv *backend.Server) (*lease, attemptResult) {
	if l := req.Leases.rebindOn(req.isCandidate); l != nil {
		return p.usePinned(req, l)
	}
	return p.newLease(req, srv, true, lease{direct: true, sticky: true}, (*backend.Pool).LeaseUnbound)
}

// saslConn opens a connection for a new negotiation on the first
// candidate that takes one. On failure it answers the client and returns
// nil.
func (p *Proxy) saslConn(req *Request) (*backend.Server, *backend.Conn) {
	for req.next < len(req.cands) && req.out.Attempts < p.conf().MaxAttempts {
		srv := req.snap.Servers[req.cands[req.next]].Server
		req.next++
		req.out.Attempts++
		ctx, cancel := context.WithTimeout(context.Background(), p.conf().ConnectTimeout)
		if !req.setDialCancel(cancel) {
			cancel()
			p.complete(req)
			return nil, nil
		}
		conn, err := srv.Pool().DialSASL(ctx)
		req.setDialCancel(nil)
		cancel()
		if err == nil {
			return srv, conn
		}
		if req.isAbandoned() { // the dial was cancelled: the server did not fail
			p.complete(req)
			return nil, nil
		}
		if !p.afterFailure(req, srv, attemptResult{status: notSent, err: err}) {
			return nil, nil
		}
	}
	if len(req.cands) == 0 {
		req.out.Code = p.fail(req, ldapwire.Unavailable, noServerMessage(req.snap))
		p.complete(req)
		return nil, nil
	}
	p.giveUp(req)
	return nil, nil
}

// saslLost answers a round whose connection failed or timed out. A round
// is never retried elsewhere: the negotiation lived on that connection.
func (p *Proxy) saslLost(req *Request, srv *backend.Server, err error) {
	if req.isAbandoned() {
		p.complete(req)
		return
	}
	p.health.OperationFailed(srv, err)
	req.out.Failed = append(req.out.Failed, srv.Name)
	st := lost
	if errors.Is(err, backend.ErrTimeout) {
		st = timedOut
	}
	code, msg := failureReply(req, srv, attemptResult{status: st, err: err})
	req.out.Code = p.fail(req, code, msg)
	p.complete(req)
}

// whoAmI asks the server whom conn is bound as (RFC 4532).
func (p *Proxy) whoAmI(req *Request, conn *backend.Conn) (*Identity, error) {
	res := p.roundTrip(req, conn, ldapwire.AppendWhoAmI)
	if res.err != nil {
		return nil, res.err
	}
	r, err := ldapwire.ParseResult(res.msg.Body)
	if err != nil {
		return nil, err
	}
	if r.Code != ldapwire.Success {
		return nil, fmt.Errorf("result %d: %s", r.Code, r.Diagnostic)
	}
	value, _, err := ldapwire.ParseExtendedValue(res.msg.Body)
	if err != nil {
		return nil, err
	}
	return IdentityFromAuthzID(string(value))
}

// IdentityFromAuthzID is the identity of an authorization ID as RFC 4513
// writes it: "dn:" and a DN, "u:" and a user name, or empty (anonymous).
// 389 Directory Server's "Who am I?" puts a space after "dn:".
func IdentityFromAuthzID(authz string) (*Identity, error) {
	if dn, ok := strings.CutPrefix(authz, "dn:"); ok {
		authz = "dn:" + strings.TrimLeft(dn, " ")
	}
	switch {
	case authz == "" || authz == "dn:":
		return Anonymous, nil
	case strings.HasPrefix(authz, "dn:"):
		return NewIdentity(authz[len("dn:"):]), nil
	case strings.HasPrefix(authz, "u:") && len(authz) > len("u:"):
		return &Identity{AuthzID: authz, control: ldapwire.ProxiedAuthzControl(authz)}, nil
	}
	return nil, fmt.Errorf("unknown authorization ID form %q", authz)
}

// roundTrip sends one request on conn and waits for its response; the
// client abandoning or leaving closes conn.
func (p *Proxy) roundTrip(req *Request, conn *backend.Conn, encode func([]byte, int32) []byte) oneShotResult {
	h := &oneShot{done: make(chan oneShotResult, 1)}
	if !req.setDialCancel(func() { conn.Close(errInterrupted) }) {
		return oneShotResult{err: errInterrupted}
	}
	defer req.setDialCancel(nil)
	if _, err := conn.Send(h, encode, p.timeoutFor(req)); err != nil {
		return oneShotResult{err: err}
	}
	return <-h.done
}

// oneShot is a backend.Handler waiting for one response.
type oneShot struct{ done chan oneShotResult }

type oneShotResult struct {
	msg ldapwire.Message // refers to its own copy of the frame
	err error
}

// Response implements backend.Handler.
func (o *oneShot) Response(frame []byte, _ ldapwire.Message, final bool) backend.Flusher {
	if final {
		msg, err := ldapwire.Parse(append([]byte(nil), frame...))
		o.done <- oneShotResult{msg: msg, err: err}
	}
	return nil
}

// Lost implements backend.Handler.
func (o *oneShot) Lost(err error) { o.done <- oneShotResult{err: err} }
