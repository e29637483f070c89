package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// status is how one attempt on one server ended.
type status int

const (
	answered  status = iota // the final response reached the client
	abandoned               // the client abandoned the operation or left
	notSent                 // no connection, or the request was not written
	lost                    // the connection failed after the request was sent
	timedOut                // no final response within the operation timeout
	full                    // the server is at its operation limit: not sent
	declined                // the server answered a read busy or unavailable, before any other response
)

// attemptResult is the end of one attempt.
type attemptResult struct {
	status    status
	code      int
	err       error
	delivered int // responses already passed to the client
}

// retryable reports whether another server may be tried after r.
func (r attemptResult) retryable(req *Request) bool {
	switch r.status {
	case notSent, declined:
		return true
	case lost, timedOut:
		return r.delivered == 0 && isRead(req) && !errors.Is(r.err, backend.ErrTimeLimit) && req.losses < maxLosses
	}
	return false
}

// maxLosses is how many servers may lose a read (the connection lost, or
// no answer in time) before it is sent to no other: a request that brings
// servers down — a query that crashes or hangs them — would otherwise take
// each replica down in turn. Two servers failing on the same request at
// once by chance is rare enough.
const maxLosses = 2

// Start forwards req: it sends the request to the first server the router
// chooses and returns; the responses go to req.Sink as they arrive, and
// req.Sink.Ended(req) is called once the operation is over.
//
// When the chosen server has an open connection, the request is written on
// the caller's goroutine (the client's read loop) and the operation is
// completed by the backend connection's reader: no goroutine and no timer
// per operation. Only what has to wait — a bind, a connection being dialed,
// a retry on another server — continues in a goroutine of its own.
func (p *Proxy) Start(req *Request) {
	req.begin(p)
	if req.SASL != nil {
		go p.saslBind(req)
		return
	}
	if req.Leases != nil && req.Msg.OpTag != ldapwire.OpBindRequest && !p.pinToBinding(req) {
		return
	}
	if req.Leases != nil && req.Msg.OpTag == ldapwire.OpBindRequest {
		if l := req.Leases.rebindOn(req.isCandidate); l != nil {
			p.pinTo(req, l)
		}
	}
	if req.cursor != "" && !p.pinToCursor(req) {
		return
	}
	if req.state == cursorOp && req.cursor == "" {
		preferCursorServer(req)
	}
	if req.pinned == nil && req.Route.Await.Servers != 0 {
		go p.awaitPositions(req)
		return
	}
	if req.pinned == nil && p.refuseLostWrite(req) {
		return
	}
	if len(req.cands) == 0 {
		req.out.Code = p.fail(req, ldapwire.Unavailable, noServerMessage(req.snap))
		p.complete(req)
		return
	}
	p.advance(req, false)
}

// Abandon stops req: the attempt in flight is abandoned on its server (a
// bind's connection is closed) and no other server is tried. The caller
// must not let req be reused until Ended.
func (p *Proxy) Abandon(req *Request) {
	req.mu.Lock()
	req.abandoned = true
	c, cancel := req.cur, req.cancelDial
	req.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if c != nil {
		c.interrupt()
	}
}

// Cancel stops req as Abandon does, but the client hears of it (RFC 3909):
// unless the server's final response came first, req is answered with
// canceled. Sink.Ended follows either way.
func (p *Proxy) Cancel(req *Request) {
	req.mu.Lock()
	req.canceled = true
	req.mu.Unlock()
	p.Abandon(req)
}

// advance tries the remaining candidates until one takes the request. On
// the caller's goroutine (mayWait false) it only uses open connections and
// hands over to a goroutine as soon as it would have to wait.
func (p *Proxy) advance(req *Request, mayWait bool) {
	for req.next < len(req.cands) && req.out.Attempts < p.conf().MaxAttempts {
		srv := req.snap.Servers[req.cands[req.next]].Server
		if req.isAbandoned() {
			p.complete(req)
			return
		}
		res, sent := p.send(req, srv, mayWait)
		switch {
		case sent:
			return
		case res.err == errMustWait:
			go p.advance(req, true)
			return
		case res.status == abandoned:
			p.complete(req)
			return
		}
		req.next++
		req.out.Attempts++
		if !p.afterFailure(req, srv, res) {
			return
		}
	}
	p.giveUp(req)
}

// errMustWait means that the attempt needs a goroutine that may wait.
var errMustWait = errors.New("attempt must wait")

// send starts one attempt of req on srv. It reports true once the request
// is on its way: the attempt's end then comes through its call.
func (p *Proxy) send(req *Request, srv *backend.Server, mayWait bool) (attemptResult, bool) {
	started, ok := srv.StartOp(p.conf().MaxPerServer)
	if !ok {
		return attemptResult{status: full, err: errServerFull}, false
	}
	for picks := 1; ; picks++ {
		res, sent, raced := p.sendOn(req, srv, mayWait, started)
		if sent {
			return res, true
		}
		if !raced || picks == maxPicks {
			srv.CancelOp()
			return res, false
		}
	}
}

// maxPicks bounds the connections one attempt picks on a server when
// other senders keep taking the last slot of the one it picked.
const maxPicks = 3

// sendOn picks a connection on srv and sends req on it. raced reports that
// another sender took the picked shared connection's last slot first
// (backend.ErrBusy from the send): another pick may find room elsewhere,
// and an unbound connection at its cap sends it the service-bound way.
func (p *Proxy) sendOn(req *Request, srv *backend.Server, mayWait bool, started int64) (res attemptResult, sent, raced bool) {
	conn, l, res := p.connFor(req, srv, mayWait)
	if conn == nil {
		return res, false, false
	}
	c := req.newCall(srv, conn, l, started)
	req.mu.Lock()
	defer req.mu.Unlock() // held while sending: Abandon finds the call with its ID
	if req.abandoned {
		p.releaseConn(c, false)
		return attemptResult{status: abandoned}, false, false
	}
	timing := p.timingFor(req)
	if !mayWait {
		timing.Batch = req.Batch // on the caller's goroutine: the loop's batch may carry the write
	}
	if _, err := conn.SendTimed(c, c.encode, timing); err != nil {
		p.releaseConn(c, false)
		return connError(err), false, l == nil && errors.Is(err, backend.ErrBusy)
	}
	req.cur = c
	return attemptResult{}, true, false
}

// connFor gets a bind connection for binds, the client's leased one for
// operations on state kept per connection, and a shared one for the rest.
// Without mayWait it returns errMustWait instead of waiting for one.
func (p *Proxy) connFor(req *Request, srv *backend.Server, mayWait bool) (*backend.Conn, *lease, attemptResult) {
	if res, ok := p.knowMode(req, srv, mayWait); !ok {
		return nil, nil, res
	}
	if !srv.ClientBind() && req.Msg.OpTag == ldapwire.OpExtendedRequest && req.pinned == nil {
		if l, res, ok := p.selfBoundConn(req, srv, mayWait); ok {
			if l == nil {
				return nil, nil, res
			}
			return l.conn, l, res
		}
	}
	if srv.ClientBind() || req.pinned != nil && req.pinned.direct {
		l, res := p.directConn(req, srv, mayWait)
		if l == nil {
			return nil, nil, res
		}
		return l.conn, l, res
	}
	if readsOwnEntryOf389(req, srv) {
		if dn := req.Identity.boundDN(); dn != "" {
			if c := srv.Pool().BoundConn(dn); c != nil {
				return c, nil, attemptResult{}
			}
		}
		c, res := p.opConn(req, srv.Pool().Anonymous(), mayWait)
		return c, nil, res
	}
	if req.state != stateless || ownConnection(req) {
		l, res := p.leasedConn(req, srv, mayWait)
		if l == nil {
			return nil, nil, res
		}
		return l.conn, l, res
	}
	c, res := p.pooledConn(req, srv, mayWait)
	return c, nil, res
}

// waitContext bounds the wait for a connection by the connect timeout and
// lets Abandon stop it. ctx is nil, and res says why, when the attempt may
// not wait (errMustWait) or the operation is already abandoned.
func (p *Proxy) waitContext(req *Request, mayWait bool) (ctx context.Context, cancel context.CancelFunc, res attemptResult) {
	if !mayWait {
		return nil, nil, attemptResult{status: notSent, err: errMustWait}
	}
	ctx, stop := context.WithTimeout(context.Background(), p.conf().ConnectTimeout)
	if !req.setDialCancel(stop) {
		stop()
		return nil, nil, attemptResult{status: abandoned}
	}
	return ctx, func() { req.setDialCancel(nil); stop() }, attemptResult{}
}

// largeRequest is the size past which a request goes on a connection of
// its own (a lease for this operation alone) rather than on a shared one.
// Directories close the connection of a client whose request exceeds their
// limit (OpenLDAP sockbuf_max_incoming, 262143 bytes for anonymous
// sessions, and sockbuf_max_incoming_auth, 4 MiB; 389 Directory Server
// nsslapd-maxbersize, 2 MiB): on a shared connection that would end every
// other client's operation on it, as if the server had failed. Such
// requests are rare (photos, certificates, large groups), so the dial they
// cost does not matter.
const largeRequest = 255 << 10

// anonymousOwnConn leases an unbound connection for an anonymous client's
// request that goes on a connection of its own: the server sees it
// exactly as on the client's own, its limits for anonymous sessions
// included (OpenLDAP's sockbuf_max_incoming, 256 KiB), which a
// service-bound connection would lift.
func (p *Proxy) anonymousOwnConn(req *Request, srv *backend.Server, mayWait bool) (*lease, attemptResult) {
	if l := req.Leases.take(srv, true); l != nil {
		return l, attemptResult{}
	}
	return p.newLease(req, srv, mayWait, lease{direct: true}, (*backend.Pool).LeaseUnbound)
}

// ownConnection reports whether req goes on a connection of its own: for
// its size, or as a sync search, whose refresh may send a replica the
// whole directory: on a connection of its own the server waits for a
// client that reads slowly (backend.Backlog), as it would on the client's
// own, instead of the client being dropped for what piles up in ldapmux.
// Binds never do (bind connections carry one bind at a time).
func ownConnection(req *Request) bool {
	if req.Leases == nil || req.Msg.OpTag == ldapwire.OpBindRequest {
		return false
	}
	return len(req.Raw) > largeRequest ||
		req.Msg.OpTag == ldapwire.OpSearchRequest && req.Msg.Controls != nil && ldapwire.HasControl(req.Msg.Controls, ldapwire.OIDSyncRequest)
}

// pooledConn gets a bind connection for binds and a shared one for the
// rest: an unbound one for anonymous clients, one bound as the service
// account, where the client's identity travels in a control, for others.
// An extended operation the server does not advertise goes unbound too:
// it answers it unsupported whoever asks, while the control, which it
// does not take with an operation it does not know, would make that
// unavailableCriticalExtension.
func (p *Proxy) pooledConn(req *Request, srv *backend.Server, mayWait bool) (*backend.Conn, attemptResult) {
	if req.Msg.OpTag == ldapwire.OpBindRequest {
		return p.bindConn(req, srv, mayWait)
	}
	if dn := req.Identity.boundDN(); dn != "" && onBoundConn(req.Msg.OpTag) {
		if c := srv.Pool().BoundConn(dn); c != nil {
			return c, attemptResult{}
		}
	}
	if req.Identity.AuthzID == "" || req.Msg.OpTag == ldapwire.OpExtendedRequest && !srv.Capabilities().Advertises(string(req.Msg.ExtendedOID())) {
		c, res := p.opConn(req, srv.Pool().Anonymous(), mayWait)
		if res.status != full {
			return c, res
		}
		// every unbound connection carries its most (a burst while they
		// grow): the service account's take it, the identity in a control
	}
	return p.opConn(req, srv.Pool(), mayWait)
}

// onBoundConn reports whether an operation may go on a connection bound as
// the client: the operations of the data model, never an extended one,
// which could change what the session is.
func onBoundConn(tag byte) bool {
	switch tag {
	case ldapwire.OpSearchRequest, ldapwire.OpCompareRequest, ldapwire.OpModifyRequest,
		ldapwire.OpAddRequest, ldapwire.OpDelRequest, ldapwire.OpModifyDNRequest:
		return true
	}
	return false
}

// opConn gets an operation connection of pool: an open one at once, else
// (on a goroutine that may wait) the first one being dialed.
func (p *Proxy) opConn(req *Request, pool *backend.Pool, mayWait bool) (*backend.Conn, attemptResult) {
	if c, err := pool.ReadyOpConn(req.Loop); c != nil || err != nil {
		return c, connError(err)
	}
	ctx, cancel, res := p.waitContext(req, mayWait)
	if ctx == nil {
		return nil, res
	}
	defer cancel()
	c, err := pool.OpConn(ctx)
	return c, dialResult(req, err)
}

// bindConn lends a bind connection: an idle one at once, else (on a
// goroutine that may wait) a new one or the next one given back.
func (p *Proxy) bindConn(req *Request, srv *backend.Server, mayWait bool) (*backend.Conn, attemptResult) {
	if c := srv.Pool().IdleBindConn(); c != nil {
		return c, attemptResult{}
	}
	ctx, cancel, res := p.waitContext(req, mayWait)
	if ctx == nil {
		return nil, res
	}
	defer cancel()
	c, err := srv.Pool().BindConn(ctx)
	return c, dialResult(req, err)
}

// dialResult classifies an error from a dial for req: abandoned when the
// client abandoned req (which cancels the dial), as connError otherwise.
func dialResult(req *Request, err error) attemptResult {
	if err != nil && req.isAbandoned() {
		return attemptResult{status: abandoned}
	}
	return connError(err)
}

// passesOn reports whether a read that a server answered busy (51) or
// unavailable (52), before any other response, goes to the next server
// instead of to the client: the server did not run it (RFC 4511, A.2),
// and another replica may. A write is never sent twice, a page of a paged
// or VLV search cannot leave the server that holds its cursor, and the
// last candidate's answer reaches the client as it is.
func (p *Proxy) passesOn(req *Request) bool {
	return isRead(req) && req.pinned == nil &&
		req.next+1 < len(req.cands) && req.out.Attempts+1 < p.conf().MaxAttempts
}

// declinedError describes a server's refusal of a read for the client's
// final answer, should no other server take it.
func declinedError(msg ldapwire.Message, code int) error {
	res, _ := ldapwire.ParseResult(msg.Body)
	return fmt.Errorf("answered %s (%d): %s", ldapwire.ResultName(code), code, res.Diagnostic)
}

// connError classifies an error from the pool.
func connError(err error) attemptResult {
	switch {
	case err == nil:
		return attemptResult{}
	case errors.Is(err, backend.ErrBusy):
		return attemptResult{status: full, err: err}
	}
	return attemptResult{status: notSent, err: err}
}

// attemptEnded runs once per sent attempt, on whichever goroutine ended it:
// the backend reader (answered), a connection's Close or the timeout sweep
// (lost, timed out), or the client's read loop (abandoned).
func (p *Proxy) attemptEnded(c *call, res attemptResult) {
	req := c.req
	if res.status != answered && c.lease != nil && req.cursor != "" {
		req.Leases.moveCursor(c.lease, req.cursor, "") // the server may have ended it
	}
	p.releaseConn(c, res.status == answered || res.status == declined)
	c.srv.EndOp(c.started)
	req.mu.Lock()
	req.cur = nil
	req.mu.Unlock()
	if res.status != answered {
		req.spoil() // a loser may still hold the call: never reuse it
	}
	req.next++
	req.out.Attempts++
	switch res.status {
	case answered:
		req.out.Server, req.out.Code, req.out.Failover = c.srv.Name, res.code, req.next > 1
		req.router.Record(&req.Route, c.srv.Name, res.code, time.Now())
		p.complete(req)
	case abandoned:
		p.complete(req)
	default:
		if p.afterFailure(req, c.srv, res) {
			go p.advance(req, true)
		}
	}
}

// releaseConn gives a bind connection back to its pool (one whose bind did
// not end normally is closed) and ends an operation's use of a lease.
func (p *Proxy) releaseConn(c *call, ok bool) {
	if c.lease != nil {
		c.req.Leases.release(c.lease, p.conf().LeaseIdle)
		return
	}
	if c.conn.Kind() != backend.BindConn {
		return
	}
	if !ok {
		c.conn.Close(errInterrupted)
	}
	if ok && c.req.Leases != nil && (c.ownBind || c.bindOK && c.unassumable()) {
		p.keepOwnBinding(c)
		return
	}
	if ok && c.cleanBind && c.req.BindAs != nil {
		c.srv.Pool().ReleaseBindAs(c.conn, c.req.BindAs.boundDN())
		return
	}
	c.srv.Pool().ReleaseBind(c.conn)
}

// afterFailure records a failed attempt (never an abandoned one) and reports whether the next
// candidate may be tried; when not, the client has been answered and the
// operation completed.
func (p *Proxy) afterFailure(req *Request, srv *backend.Server, res attemptResult) bool {
	if res.status == full { // busy, not failing: health is not told
		req.note(srv, res.err)
		return true
	}
	if res.status != declined || res.code != ldapwire.Busy {
		req.allFull = false
	}
	if res.status != declined && heldAgainstServer(req, res) { // a decline was reported with its answer
		p.health.OperationFailed(srv, res.err)
	}
	req.out.Failed = append(req.out.Failed, srv.Name)
	req.note(srv, res.err)
	if (res.status == lost || res.status == timedOut) && !errors.Is(res.err, backend.ErrTimeLimit) {
		req.losses++ // a search reaching search-time-limit is no server's failure
	}
	if req.isAbandoned() {
		p.complete(req)
		return false
	}
	if !res.retryable(req) {
		req.out.Server = srv.Name
		code, msg := failureReply(req, srv, res)
		if req.losses >= maxLosses && res.delivered == 0 && isRead(req) {
			msg = fmt.Sprintf("%s; %s failed on it before: not sent to another server, in case the request itself brings servers down", msg, strings.Join(req.out.Failed[:len(req.out.Failed)-1], ", "))
		}
		req.out.Code = p.fail(req, code, msg)
		p.complete(req)
		return false
	}
	p.log.Debug("retrying on next server", "conn", req.ConnID, "msgid", req.Msg.ID, "server", srv.Name, "err", res.err)
	return true
}

// giveUp answers the client when no candidate took the operation.
func (p *Proxy) giveUp(req *Request) {
	code := ldapwire.Unavailable
	if req.allFull {
		code = ldapwire.Busy
	}
	req.out.Code = p.fail(req, code, "no backend server could take the operation: "+strings.Join(req.errs, "; "))
	p.complete(req)
}

// complete reports the operation's outcome and hands req back to its sink.
func (p *Proxy) complete(req *Request) {
	if req.out.Code < 0 && req.wasCanceled() {
		req.out.Code = p.fail(req, ldapwire.Canceled, "")
	}
	req.out.Elapsed = time.Since(req.start)
	if p.observer != nil {
		p.observer.Forwarded(req, req.out)
	}
	req.Sink.Ended(req)
}

// heldAgainstServer reports whether a failed attempt counts as a failure of
// its server: neither the end of a long-lived search that was running, nor
// a search reaching the configured time limit, nor an operation its health
// check took off the server (already unavailable) does.
func heldAgainstServer(req *Request, r attemptResult) bool {
	switch {
	case errors.Is(r.err, backend.ErrTimeLimit), errors.Is(r.err, backend.ErrUnresponsive):
		return false
	case req.state == longLived && r.delivered > 0:
		return false
	case closedOnLargeRequest(req, r):
		return false // the server's answer to that request; its health check judges the server
	}
	return true
}

// closedOnLargeRequest reports whether the connection a large request had
// to itself was lost before any answer: the server may have closed it for
// the request's size.
func closedOnLargeRequest(req *Request, r attemptResult) bool {
	return r.status == lost && r.delivered == 0 && len(req.Raw) > largeRequest
}

// failureReply chooses the result sent to the client after a failed attempt
// that may not be retried.
func failureReply(req *Request, srv *backend.Server, r attemptResult) (int, string) {
	switch {
	case errors.Is(r.err, backend.ErrTimeLimit):
		return ldapwire.TimeLimitExceeded, fmt.Sprintf("the search reached ldapmux's time limit (pool.search-time-limit) on server %s and was abandoned after %d responses", srv.Name, r.delivered)
	case r.status == timedOut && r.delivered > 0:
		return ldapwire.TimeLimitExceeded, fmt.Sprintf("no final answer from server %s within the operation timeout; the operation was abandoned after %d %s", srv.Name, r.delivered, partialResults)
	case r.status == timedOut:
		return ldapwire.TimeLimitExceeded, fmt.Sprintf("no answer from server %s within the operation timeout; the operation was abandoned", srv.Name)
	case errors.Is(r.err, backend.ErrUnresponsive):
		return ldapwire.Unavailable, fmt.Sprintf("%v; the operation was abandoned on server %s after %d responses", r.err, srv.Name, r.delivered)
	case r.delivered > 0:
		return ldapwire.Unavailable, fmt.Sprintf("connection to server %s lost after %d %s", srv.Name, r.delivered, partialResults)
	case closedOnLargeRequest(req, r):
		return ldapwire.Unavailable, fmt.Sprintf("server %s closed the connection on this request of %d bytes, before any answer: it may exceed the server's limit on request size (OpenLDAP sockbuf_max_incoming for anonymous clients, sockbuf_max_incoming_auth for others; 389 Directory Server nsslapd-maxbersize); the operation may or may not have been applied", srv.Name, len(req.Raw))
	}
	return ldapwire.Unavailable, fmt.Sprintf("connection to server %s lost before its answer; the operation may or may not have been applied", srv.Name)
}

// partialResults explains why a read cut off midway is not retried.
const partialResults = "responses already sent to the client; a read is not moved to another server once part of its results was sent"

// fail answers the client with an error result (none for operations
// without a response) and returns the code sent.
func (p *Proxy) fail(req *Request, code int, msg string) int {
	tag := ldapwire.ResponseTag(req.Msg.OpTag)
	if tag == 0 {
		return -1
	}
	if req.OnBindResult != nil {
		req.OnBindResult(code)
	}
	req.Sink.Send(ldapwire.AppendResult(nil, req.Msg.ID, tag, code, msg))
	return code
}

// noServerMessage explains why no server is usable.
func noServerMessage(snap *backend.Snapshot) string {
	var b strings.Builder
	b.WriteString("no usable backend server")
	for i, s := range snap.Servers {
		sep := ": "
		if i > 0 {
			sep = "; "
		}
		fmt.Fprintf(&b, "%s%s %s (%s)", sep, s.Name, s.Health.State, s.Health.Reason)
	}
	return b.String()
}

// errInterrupted marks attempts stopped by the proxy.
var errInterrupted = errors.New("operation interrupted")
