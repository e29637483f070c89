package proxy

import (
	"errors"
	"sync"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// call is one attempt's view of an operation in flight on a backend
// connection. It implements backend.Handler. Exactly one of the final
// Response, Lost and interrupt ends it; that one reports the end to the
// proxy.
type call struct {
	req     *Request
	srv     *backend.Server
	conn    *backend.Conn
	lease   *lease // the client's leased connection conn belongs to, if any
	started int64  // from Server.StartOp
	id      int32  // the message ID on conn, set before the request is written
	// addsPolicy: the request carries policyRequest, which the client did
	// not ask for (decided once, before it is sent: the server's
	// capabilities may be read again before its answer comes)
	addsPolicy bool

	mu        sync.Mutex // mu guards the fields below
	finished  bool
	delivered int
	// cleanBind is set when a bind succeeded and its answer said nothing
	// of the session: the connection is bound as the client, and nothing
	// else. ownBind is set when one succeeded and its answer says the
	// server restricts the session (a password that must be changed): the
	// session on that connection becomes the client's own (keepOwnBinding),
	// as when the server would not let the proxy assume its DN.
	// A bind whose answer only warns (an expiring password) gets neither:
	// its client's operations carry the control as before.
	cleanBind, ownBind bool
	// bindOK: a bind on a pool bind connection succeeded (releaseConn
	// then asks whether the server would assume its DN, unassumable).
	bindOK bool
}

// encode writes the request with the backend message ID; every operation but
// a bind, or one sent on an unbound connection (client-bind leases, the
// anonymous pool, bound connections), carries the client's identity as a
// Proxied Authorization control.
func (c *call) encode(dst []byte, id int32) []byte {
	c.id = id
	return ldapwire.AppendMessage(dst, id, c.req.Msg.Op, c.req.Msg.Controls, c.extraControls())
}

// Response passes a backend response on to the client with its message ID.
// The final one ends the attempt.
func (c *call) Response(_ []byte, msg ldapwire.Message, final bool) backend.Flusher {
	sink := c.req.Sink // the request may be reused once the attempt ended
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return nil
	}
	code := -1
	var declines error // the server answered busy or unavailable
	switch {
	case final:
		c.finished = true
		msg = c.req.proxy.matchResponse(c, msg)
		code = resultCode(msg)
		if code == ldapwire.Busy || code == ldapwire.Unavailable {
			declines = declinedError(msg, code)
		}
		if declines != nil && c.delivered == 0 && c.req.proxy.passesOn(c.req) {
			c.mu.Unlock()
			c.req.proxy.health.OperationDeclined(c.srv, declines.Error())
			c.req.proxy.attemptEnded(c, attemptResult{status: declined, code: code, err: declines})
			return nil
		}
		if c.req.recordsWrite {
			msg = c.req.proxy.recordWrite(c, msg, code)
		}
		if c.lease != nil && c.req.state == cursorOp { // before the client can send the next page
			if next, said := responseCursor(msg); said {
				c.req.Leases.moveCursor(c.lease, c.req.cursor, next)
			}
		}
		if c.req.Unauthenticated && code == ldapwire.Success {
			msg, code = refusedUnauthenticated(c.req.Msg.ID)
		}
		if c.lease != nil && c.req.Msg.OpTag == ldapwire.OpBindRequest {
			c.req.Leases.bindResult(c.lease, code == ldapwire.Success)
		}
		if c.req.OnBindResult != nil {
			c.req.keptSession = code != ldapwire.Success && c.srv.Capabilities().KeepsSessionAfter(code)
			c.req.OnBindResult(code)
		}
		if c.req.Msg.OpTag == ldapwire.OpBindRequest {
			msg = c.bindAnswer(msg, code)
		}
	case !c.req.proxy.expectedPartial(c, msg):
		c.mu.Unlock()
		return nil
	case c.req.rootDSE && msg.OpTag == ldapwire.OpSearchResultEntry:
		msg = filterRootDSE(msg)
	}
	sink.SendMessage(msg, c.req.Msg.ID) // under mu: nothing follows an error reply
	c.delivered++
	delivered := c.delivered
	c.mu.Unlock()
	if declines != nil {
		c.req.proxy.health.OperationDeclined(c.srv, declines.Error())
	}
	if code == ldapwire.AuthorizationDenied {
		c.req.proxy.noteRefusedIdentity(c)
	}
	if final {
		c.req.proxy.attemptEnded(c, attemptResult{status: answered, code: code, delivered: delivered})
	}
	return sink
}

// Lost ends the call when its connection fails or its timeout passes first.
func (c *call) Lost(err error) {
	delivered, ok := c.finish()
	if !ok {
		return
	}
	st := lost
	if errors.Is(err, backend.ErrTimeout) {
		st = timedOut
	}
	c.req.proxy.attemptEnded(c, attemptResult{status: st, err: err, delivered: delivered})
}

// finish ends the call without its final response, unless something else
// ended it first, and returns the responses already delivered.
func (c *call) finish() (delivered int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return 0, false
	}
	c.finished = true
	return c.delivered, true
}

// interrupt stops the call for a client that abandoned the operation or
// left, unless a result won the race, and releases it on the server.
func (c *call) interrupt() {
	delivered, ok := c.finish()
	if !ok {
		return
	}
	if c.conn.Kind() != backend.BindConn { // a bind connection is closed by releaseConn
		c.conn.Abandon(c.id)
	}
	c.req.proxy.attemptEnded(c, attemptResult{status: abandoned, err: errInterrupted, delivered: delivered})
}

// policyRequest is the non-critical password policy request control the
// proxy adds to the binds it checks on bind connections: a server with a
// password policy then says in its answer when the session it opens is
// restricted (a password that must be changed), which OpenLDAP otherwise
// keeps to itself.
var policyRequest = ldapwire.AppendControl(nil, ldapwire.OIDPasswordPolicy, false, nil)

// addsPolicyRequest reports whether the proxy adds policyRequest to this
// bind: one on a pool bind connection whose client did not ask for it, to
// a server that may have a password policy. A server that does not list
// the control has none to report, and slapd spends 8–25 µs more on a bind
// that carries a control it does not know (a fifth of a bind's cost).
func (c *call) addsPolicyRequest() bool {
	if c.req.Msg.OpTag != ldapwire.OpBindRequest || c.lease != nil || c.conn.Kind() != backend.BindConn {
		return false
	}
	if caps := c.srv.Capabilities(); caps != nil && !caps.PasswordPolicy {
		return false
	}
	_, asked := ldapwire.FindControl(c.req.Msg.Controls, ldapwire.OIDPasswordPolicy)
	return !asked
}

// unassumable reports whether the server would refuse proxied
// authorization as the DN this bind is for (389's Directory Manager, a DN
// it refused before): the session it opens then stays the client's own, as
// a restricted one does.
func (c *call) unassumable() bool {
	if c.req.BindAs == nil {
		return false
	}
	dn := c.req.BindAs.boundDN()
	return c.srv.Capabilities().CannotAssume(dn) || dn != "" && c.srv.Refused(dn)
}

// noteRefusedIdentity remembers a DN whose proxied authorization the server
// refused (authorizationDenied: outside the service account's authzTo), so
// that its clients' next binds keep a connection of their own; the
// operation itself has failed, as the server answered it.
func (p *Proxy) noteRefusedIdentity(c *call) {
	dn := c.req.Identity.boundDN()
	if dn == "" || !c.carriesIdentity() || !c.srv.NoteRefused(dn) {
		return
	}
	p.log.Warn("the server refused to let the service account act as a client (add it to the account's authzTo): clients bound as it are served on a connection of their own from their next bind",
		"server", c.srv.Name, "dn", dn)
}

// UnauthenticatedRefusal is how ldapmux refuses an unauthenticated bind (a
// DN with no password) that a server accepted: in OpenLDAP's words, as
// slapd refuses them by default. Clients that took such a success for a
// valid password would let anyone in as anyone (RFC 4513, 6.3.1).
const UnauthenticatedRefusal = "unauthenticated bind (DN with no password) disallowed"

// refusedUnauthenticated is the answer to an unauthenticated bind that a
// server accepted: unwillingToPerform, as slapd's default refusal. The
// server's connection is anonymous after it, as after a refused bind.
func refusedUnauthenticated(id int32) (ldapwire.Message, int) {
	msg, _ := ldapwire.Parse(ldapwire.AppendResult(nil, id, ldapwire.OpBindResponse, ldapwire.UnwillingToPerform, UnauthenticatedRefusal))
	return msg, ldapwire.UnwillingToPerform
}

// bindAnswer notes what a bind's answer says of the session it opened, and
// returns the answer without the proxy's policy control (the client gets
// what the server would have told it). Caller holds mu.
func (c *call) bindAnswer(msg ldapwire.Message, code int) ldapwire.Message {
	ok := code == ldapwire.Success
	said, restricted := ldapwire.BindAnswer(msg.Controls)
	c.cleanBind = ok && !said
	c.bindOK = ok && c.lease == nil && c.conn.Kind() == backend.BindConn
	c.ownBind = c.bindOK && restricted
	if c.addsPolicy {
		msg.Controls = ldapwire.WithoutControl(msg.Controls, ldapwire.OIDPasswordPolicy)
	}
	return msg
}
