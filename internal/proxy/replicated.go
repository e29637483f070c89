package proxy

import (
	"fmt"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/replpos"
	"github.com/ldapmux/ldapmux/internal/route"
)

// Read-your-writes by replication position (affinity until replicated):
// a write carries the Post-Read control (RFC 4527) asking for entryCSN, so
// that its answer says which change it made; the proxy records the CSN for
// the client before the client hears of the success, and removes the
// control from the answer. A delete has no entry left to read (Pre-Read
// would give the CSN of the entry's last change, not of the delete), and a
// server may not return the control (no right to read entryCSN, no
// support): the write is then recorded without a CSN, and the writer's
// contextCSN, read after the write, stands for it.

// OIDPostRead is the Post-Read control (RFC 4527).
const OIDPostRead = "1.3.6.1.1.13.2"

// postReadCSN is a non-critical Post-Read control asking for entryCSN.
var postReadCSN = ldapwire.AppendControl(nil, OIDPostRead, false,
	ldapwire.AppendElement(nil, 0x30, ldapwire.AppendElement(nil, 0x04, []byte("entryCSN"))))

// wantsPostRead reports whether the proxy adds its Post-Read control to
// req: a write whose success is recorded with its CSN, except a delete and
// a request already carrying Post-Read (the client's own asks for what it
// wants; its answer is left alone).
func wantsPostRead(req *Request) bool {
	if req.Msg.OpTag == ldapwire.OpDelRequest {
		return false
	}
	_, asked := ldapwire.FindControl(req.Msg.Controls, OIDPostRead)
	return !asked
}

// extraControls is what call.encode appends to the request's controls.
func (c *call) extraControls() []byte {
	if c.req.Msg.OpTag == ldapwire.OpBindRequest {
		if c.addsPolicy {
			return policyRequest
		}
		return nil
	}
	var ident []byte
	if c.carriesIdentity() {
		ident = c.req.Identity.control
	}
	if !c.req.postRead || !answersCSN(c.srv.Capabilities()) {
		return ident
	}
	if ident == nil {
		return postReadCSN
	}
	return c.req.Identity.withPostRead()
}

// carriesIdentity reports whether the request carries the client's
// identity in a control (a bind never does).
func (c *call) carriesIdentity() bool {
	return c.req.Msg.OpTag != ldapwire.OpBindRequest && (c.lease == nil || !c.lease.direct) && carriesIdentity(c.conn.Kind())
}

// carriesIdentity reports whether operations on a connection of kind need
// the client's identity in a control: not on an unbound one (anonymous
// clients) nor on one bound as the client.
func carriesIdentity(kind backend.Kind) bool {
	return kind != backend.AnonConn && kind != backend.BoundConn
}

// answersCSN reports whether a server of caps (nil: not detected yet) may
// answer the Post-Read control with an entryCSN: 389 Directory Server
// answers it with no attributes and Active Directory does not implement it,
// so their writes are resolved by the writer's position read after the
// write, without costing them an entry read per write.
func answersCSN(caps *backend.Capabilities) bool {
	return caps == nil || (caps.Type != backend.Type389DS && caps.Type != backend.TypeAD)
}

// withPostRead is the identity's control followed by the Post-Read
// control, made once per identity.
func (id *Identity) withPostRead() []byte {
	if b := id.postRead.Load(); b != nil {
		return *b
	}
	b := append(append([]byte(nil), id.control...), postReadCSN...)
	id.postRead.Store(&b)
	return b
}

// recordWrite records a successful write of the client with the CSN its
// answer carries, and returns the answer without the proxy's Post-Read
// control. It runs before the client can see the answer.
func (p *Proxy) recordWrite(c *call, msg ldapwire.Message, code int) ldapwire.Message {
	req := c.req
	var csn replpos.CSN
	known := false
	if req.postRead {
		if ctrl, ok := ldapwire.FindControl(msg.Controls, OIDPostRead); ok {
			if v, found := ldapwire.ReadEntryValue(ctrl.Value, "entryCSN"); found {
				var err error
				csn, err = replpos.ParseCSN(v)
				known = err == nil
			}
			msg.Controls = ldapwire.WithoutControl(msg.Controls, OIDPostRead)
		}
	}
	if code != ldapwire.Success {
		return msg
	}
	server := -1
	for i, s := range req.snap.Servers {
		if s.Server == c.srv {
			server = i
			break
		}
	}
	if server >= 0 {
		req.router.RecordWrite(&req.Route, server, csn, known, time.Now())
	}
	return msg
}

// awaitPositions waits, on a goroutine of its own, until the replication
// positions a read of a client that wrote needs are read again (at most
// the budget Candidates gave: max-wait when no candidate is known to have
// the write, much less when one is), then places and starts the read.
func (p *Proxy) awaitPositions(req *Request) {
	deadline := time.Now().Add(req.Route.Await.Budget)
	req.router.NoteWaited()
	for round := 0; req.Route.Await.Servers != 0; round++ {
		began := time.Now()
		ok := req.router.AwaitPositions(&req.Route.Await, deadline)
		if req.isAbandoned() {
			p.complete(req)
			return
		}
		if ok && round > 0 && time.Since(began) < minPositionRound { // pace rounds that found nothing new
			time.Sleep(min(minPositionRound-time.Since(began), time.Until(deadline)))
		}
		req.snap = p.registry.Snapshot()
		req.Route.Await = route.PositionWait{Forced: !ok || !time.Now().Before(deadline), After: req.Route.Await.After}
		req.cands, req.out.Algorithm = req.router.Candidates(req.snap, &req.Route, req.candBuf[:0])
	}
	if p.refuseLostWrite(req) {
		return
	}
	if len(req.cands) == 0 {
		req.out.Code = p.fail(req, ldapwire.Unavailable, noServerMessage(req.snap))
		p.complete(req)
		return
	}
	p.advance(req, true)
}

// minPositionRound spaces the reads of positions while a read waits for
// a write nobody is known to have.
const minPositionRound = 10 * time.Millisecond

// refuseLostWrite answers a read whose client's last write is on a server
// that cannot be used, when no other server has it: the client would not
// see its own write. It reports whether it did.
func (p *Proxy) refuseLostWrite(req *Request) bool {
	if gone := req.Route.Await.GaveUp; gone != "" {
		p.log.Warn("a client's last write is treated as lost: the server that took it has been unusable for longer than affinity.lost-write-timeout and no other server has it; the client's reads go to the other servers and may not show it",
			"conn", req.ConnID, "msgid", req.Msg.ID, "writer", gone)
	}
	lost := req.Route.Await.Lost
	if lost == "" {
		return false
	}
	p.log.Warn("read refused: the server that took this client's last write is unusable and no other server has the change yet",
		"conn", req.ConnID, "msgid", req.Msg.ID, "writer", lost)
	req.out.Code = p.fail(req, ldapwire.Unavailable, fmt.Sprintf(
		"server %s, which took this client's last write, is unavailable and no other server has that change yet; try again later", lost))
	p.complete(req)
	return true
}
