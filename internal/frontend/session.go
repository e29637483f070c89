package frontend

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ldapmux/ldapmux/internal/evloop"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/proxy"
	"github.com/ldapmux/ldapmux/internal/route"
)

// Session is one client connection. Its read loop parses each request and
// hands it to the proxy, which usually writes it to a backend connection at
// once; responses are appended to the session's output buffer by backend
// readers and written straight to the socket when it takes them, by a
// writer goroutine otherwise (and always under TLS).
type Session struct {
	srv    *Server
	nc     net.Conn
	id     uint64
	remote netip.Addr
	ident  atomic.Pointer[proxy.Identity]
	out    *outQueue
	ctx    context.Context
	cancel context.CancelFunc
	frame  []byte // read loop only: the request being handled

	mu       sync.Mutex // mu guards ops, cancels, bindDone and bindReq
	ops      map[int32]*proxy.Request
	cancels  map[*proxy.Request]int32 // operations being canceled: the Cancel's message ID
	bindDone chan struct{}            // closed when the bind in progress ends; nil when none
	bindReq  *proxy.Request           // the forwarded bind in progress; nil when none

	sasl   proxy.SASLExchange // a SASL bind between two rounds
	leases proxy.Leases       // server connections leased to this client (paging, VLV, long-lived searches)

	opsWG      sync.WaitGroup
	writerOnce sync.Once   // starts the writer goroutine the first time one is needed
	writerOn   atomic.Bool // the writer goroutine was started
	writerDone chan struct{}
	closeOnce  sync.Once

	// Guarded by transport.wmu: bytes taken from out but not yet written,
	// an empty buffer to give out in exchange, the non-blocking writer of a
	// plain TCP connection (nil under TLS).
	unwritten []byte
	spare     []byte
	direct    *evloop.Socket

	parking   // the session's event loop, when it has one (loop.go)
	transport // TLS, PROXY protocol, deadlines and per-IP accounting (transport.go)
}

func newSession(srv *Server, nc net.Conn, id uint64, lc *Listener) *Session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{srv: srv, nc: nc, id: id, out: newOutQueue(srv.conf().MaxClientBuffer),
		ctx: ctx, cancel: cancel, ops: make(map[int32]*proxy.Request), writerDone: make(chan struct{})}
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		s.remote = ap.Addr().Unmap()
	}
	s.ident.Store(proxy.Anonymous)
	s.initTransport(lc)
	if !s.lc.LDAPS {
		s.direct = evloop.NewSocket(nc)
		s.initParking()
	}
	return s
}

// serve prepares the session, then reads requests until the client leaves
// and cleans up. A plain connection waits for its requests in an event
// loop rather than in a goroutine of its own (loop.go): serve then returns
// as soon as the session is parked there.
func (s *Session) serve() {
	if !s.prepare() {
		s.finish()
		return
	}
	s.readRequests()
}

// readRequests reads and handles requests on a goroutine of the session's
// own until the session ends or, once nothing is half-read or waiting,
// parks in its event loop.
func (s *Session) readRequests() {
	for {
		if s.ctx.Err() != nil {
			s.finish()
			return
		}
		if s.mayPark() && s.park() {
			return
		}
		frame, err := s.next()
		if err != nil {
			s.readFailed(err)
			s.finish()
			return
		}
		if !s.handle(frame) {
			s.finish()
			return
		}
	}
}

// readFailed tells a client that sent garbage why it is dropped.
func (s *Session) readFailed(err error) {
	if errors.Is(err, io.EOF) || s.ctx.Err() != nil || isClosedConn(err) {
		return
	}
	if errors.Is(err, ldapwire.ErrMalformed) || errors.Is(err, ldapwire.ErrTooLarge) || errors.Is(err, io.ErrUnexpectedEOF) {
		s.srv.log.Warn("dropping client: bad PDU", "conn", s.id, "client", s.remote, "err", err)
		s.disconnect(ldapwire.ProtocolError, err.Error())
	}
}

// handle dispatches one request; it returns false when the session must end.
// frame is only valid during the call.
func (s *Session) handle(frame []byte) bool {
	msg, ok := s.accept(frame)
	if !ok {
		return false
	}
	s.awaitBind()
	return s.dispatch(msg)
}

// accept checks one request; false when the session must end (the client
// has been told why). frame becomes the current request until dispatch.
func (s *Session) accept(frame []byte) (ldapwire.Message, bool) {
	s.srv.obs.received.Add(int64(len(frame)))
	msg, err := ldapwire.Parse(frame)
	if err != nil {
		s.disconnect(ldapwire.ProtocolError, err.Error())
		return msg, false
	}
	if msg.ID == 0 {
		s.disconnect(ldapwire.ProtocolError, "message ID 0 is reserved for unsolicited notifications")
		return msg, false
	}
	if err := ldapwire.ValidateRequest(msg); err != nil { // a server must never see what it cannot decode
		s.srv.log.Warn("dropping client: bad PDU", "conn", s.id, "client", s.remote, "err", err)
		s.disconnect(ldapwire.ProtocolError, err.Error())
		return msg, false
	}
	s.frame = frame
	return msg, true
}

// dispatch acts on an accepted request; false when the session must end.
func (s *Session) dispatch(msg ldapwire.Message) bool {
	defer func() { s.frame = nil }()
	switch msg.OpTag {
	case ldapwire.OpUnbindRequest:
		return false
	case ldapwire.OpAbandonRequest:
		s.abandon(msg)
	case ldapwire.OpBindRequest:
		s.bind(msg)
	case ldapwire.OpSearchRequest, ldapwire.OpModifyRequest, ldapwire.OpAddRequest, ldapwire.OpDelRequest,
		ldapwire.OpModifyDNRequest, ldapwire.OpCompareRequest:
		s.operation(msg)
	case ldapwire.OpExtendedRequest:
		s.extended(msg)
	default:
		s.disconnect(ldapwire.ProtocolError, "unknown protocol operation")
		return false
	}
	return true
}

// awaitBind holds a request sent behind a bind until the bind's result is
// known, as a directory does, so that it runs with the identity the bind
// produced (anonymous when it failed). The wait is bounded; past the bound
// the request runs anonymously, never as the identity before the bind.
func (s *Session) awaitBind() {
	s.mu.Lock()
	done := s.bindDone
	s.mu.Unlock()
	if done == nil {
		return
	}
	t := time.NewTimer(s.srv.conf().bindWait())
	defer t.Stop()
	select {
	case <-done:
	case <-s.ctx.Done():
	case <-t.C:
		s.srv.log.Warn("a bind took longer than bind-timeout allows; the requests behind it run anonymously", "conn", s.id, "client", s.remote)
	}
}

// bindPending reports whether a forwarded bind is in progress.
func (s *Session) bindPending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bindDone != nil
}

// bindStarted marks req, a forwarded bind, in progress: requests read
// after it wait for its end (awaitBind), which Ended signals.
func (s *Session) bindStarted(req *proxy.Request) {
	s.bindDone, s.bindReq = make(chan struct{}), req // under mu, from start
}

// supersedeBind forgets the forwarded bind still in progress, if any, as
// the client sends another bind (only possible once awaitBind gave up on
// it): its result, when it comes, no longer sets the client's identity nor
// ends the wait for the newer bind.
func (s *Session) supersedeBind() {
	s.mu.Lock()
	done := s.bindDone
	s.bindDone, s.bindReq = nil, nil
	s.mu.Unlock()
	if done != nil {
		close(done)
	}
}

// bound sets the identity that bind req produced, unless another bind
// superseded req.
func (s *Session) bound(req *proxy.Request, ident *proxy.Identity) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bindReq == req {
		s.ident.Store(ident)
	}
}

// abandon cancels an outstanding operation; unknown IDs are ignored (RFC 4511, 4.11).
func (s *Session) abandon(msg ldapwire.Message) {
	target, err := msg.AbandonTarget()
	if err != nil {
		return
	}
	s.mu.Lock()
	req := s.ops[target]
	delete(s.ops, target) // out of the map, req is never reused
	s.mu.Unlock()
	if req != nil {
		s.srv.proxy.Abandon(req)
	}
}

// operation forwards a request that acts with the client's identity.
func (s *Session) operation(msg ldapwire.Message) {
	if ldapwire.HasControl(msg.Controls, ldapwire.OIDProxiedAuthzV2) || ldapwire.HasControl(msg.Controls, ldapwire.OIDProxiedAuthzV1) {
		s.reply(msg, ldapwire.AuthorizationDenied, "proxied authorization requested by clients is not allowed through ldapmux")
		return
	}
	if s.monitor(msg) || s.refuseConnectionState(msg) {
		return
	}
	s.start(msg, nil)
}

// extended handles the extended operations the proxy answers itself and
// forwards the others.
func (s *Session) extended(msg ldapwire.Message) {
	switch string(msg.ExtendedOID()) {
	case ldapwire.OIDStartTLS:
		s.startTLS(msg)
		return
	case ldapwire.OIDCancel:
		s.cancelOperation(msg)
		return
	case ldapwire.OIDWhoAmI:
		if msg.Controls == nil && s.whoAmI(msg) {
			return
		}
	case ldapwire.OIDPasswordModify:
		if s.refuseInsecure(msg) {
			return
		}
	}
	s.operation(msg)
}

// whoAmI answers "Who am I?" (RFC 4532) from the identity ldapmux tracks
// for the client, as the servers write it (proxy.WhoAmI): a server would
// answer with the identity of the connection (389 Directory Server ignores
// proxied authorization there), which through shared connections is not
// the client's. It reports false, answering nothing, when the client's
// operations go on a connection of its own, where the server answers.
func (s *Session) whoAmI(msg ldapwire.Message) bool {
	answer, forward := s.srv.proxy.WhoAmI(s.ident.Load(), &s.leases)
	if forward {
		return false
	}
	s.Send(ldapwire.AppendExtendedResult(nil, msg.ID, ldapwire.Success, answer))
	s.observeLocal(msg, ldapwire.Success)
	return true
}

// start registers the operation and hands it to the proxy; prepare, when
// not nil, completes the request first.
func (s *Session) start(msg ldapwire.Message, prepare func(*proxy.Request)) {
	if s.srv.draining.Load() {
		s.reply(msg, ldapwire.Unavailable, "ldapmux is shutting down")
		return
	}
	s.mu.Lock()
	if _, dup := s.ops[msg.ID]; dup {
		s.mu.Unlock()
		s.reply(msg, ldapwire.ProtocolError, "message ID already in use by an outstanding operation")
		return
	}
	if max := s.srv.conf().MaxOpsPerConn; max > 0 && len(s.ops) >= max {
		s.mu.Unlock()
		s.reply(msg, ldapwire.Busy, "too many outstanding operations on this connection (limits.max-operations-per-connection)")
		return
	}
	req := s.request()
	if prepare != nil {
		prepare(req)
	}
	if msg.OpTag == ldapwire.OpBindRequest {
		s.bindStarted(req)
	}
	s.ops[msg.ID] = req
	s.mu.Unlock()
	s.opsWG.Add(1)
	s.srv.inflight.Add(1)
	s.srv.proxy.Start(req)
}

// request describes the current request for the proxy, in a recycled
// Request holding its own copy of the bytes.
func (s *Session) request() *proxy.Request {
	req := requestPool.Get().(*proxy.Request)
	req.Raw = append(req.Raw, s.frame...)
	req.Msg, _ = ldapwire.Parse(req.Raw) // parsed from the same bytes already
	req.Sink = s
	s.describe(req)
	return req
}

// describe fills in who sends req.Msg and what the router looks at.
func (s *Session) describe(req *proxy.Request) {
	ident := s.ident.Load()
	req.Identity, req.ConnID, req.Leases = ident, s.id, &s.leases
	if s.home != nil {
		req.Loop = s.home.loop
		if s.onLoop {
			req.Batch = s.home.loop
		}
	}
	req.Route = route.Operation{Tag: req.Msg.OpTag, TargetDN: req.Msg.TargetDN(), ExtendedOID: req.Msg.ExtendedOID(),
		Controls: req.Msg.Controls, ClientIP: s.remote, BindDN: ident.DN, ConnID: s.id}
}

// requestPool recycles the Requests of operations that ended normally.
var requestPool = sync.Pool{New: func() any { return new(proxy.Request) }}

// Ended is called by the proxy once an operation is over (proxy.Sink).
func (s *Session) Ended(req *proxy.Request) {
	var bindDone chan struct{}
	s.mu.Lock()
	mine := s.ops[req.Msg.ID] == req // false once abandoned or canceled
	if mine {
		delete(s.ops, req.Msg.ID)
	}
	cancelID, canceled := s.takeCancel(req)
	if req.Msg.OpTag == ldapwire.OpBindRequest && req == s.bindReq { // not a superseded bind's
		bindDone, s.bindDone, s.bindReq = s.bindDone, nil, nil
	}
	s.mu.Unlock()
	if bindDone != nil {
		close(bindDone)
	}
	if canceled {
		s.cancelEnded(req, cancelID)
	}
	s.touch()
	s.srv.inflight.Add(-1)
	s.opsWG.Done()
	if mine {
		if cap(req.Raw) > maxKeptBuffer {
			req.Raw = nil
		}
		req.Reset()
		requestPool.Put(req)
	}
}

// abandonAll stops every operation in progress: the client is gone.
func (s *Session) abandonAll() {
	s.mu.Lock()
	ops := s.ops
	s.ops = make(map[int32]*proxy.Request)
	s.mu.Unlock()
	for _, req := range ops {
		s.srv.proxy.Abandon(req)
	}
}

// Send queues a response frame and flushes (proxy.Sink).
func (s *Session) Send(frame []byte) {
	s.queued(s.out.push(frame))
	s.Flush()
}

// SendMessage queues a backend response under the client's message ID
// (proxy.Sink); the backend reader flushes after its read batch.
func (s *Session) SendMessage(msg ldapwire.Message, id int32) {
	s.queued(s.out.pushMessage(msg, id))
}

// queued drops a client that lets too much pile up; its operations are
// abandoned upstream when its read loop ends.
func (s *Session) queued(ok bool) {
	if !ok && !s.out.isClosed() {
		s.srv.log.Warn("dropping client: it does not read its responses", "conn", s.id, "client", s.remote,
			"buffered-limit", s.srv.conf().MaxClientBuffer)
		s.close()
	}
}

// reply answers msg directly with a result.
func (s *Session) reply(msg ldapwire.Message, code int, text string) {
	if tag := ldapwire.ResponseTag(msg.OpTag); tag != 0 {
		s.Send(ldapwire.AppendResult(nil, msg.ID, tag, code, text))
		s.observeLocal(msg, code)
	}
}

// disconnect sends a Notice of Disconnection and ends the session.
func (s *Session) disconnect(code int, text string) {
	s.out.push(ldapwire.AppendNotice(nil, code, text))
	s.out.close()
	s.cancel()
}

// close ends the session at once: operations are abandoned upstream.
func (s *Session) close() {
	s.closeOnce.Do(func() {
		s.cancel()
		s.out.close()
		s.nc.Close()
		s.wake()
	})
}

// finish runs when the read loop ends.
func (s *Session) finish() {
	s.cancel()
	s.abandonAll()
	s.opsWG.Wait()
	s.sasl.Close()
	s.leases.Close()
	s.out.close()
	s.writerOnce.Do(func() {}) // no writer is started from now on
	if s.writerOn.Load() {
		select {
		case <-s.writerDone:
		case <-time.After(finalWriteTimeout):
		}
	} else {
		s.wmu.Lock()
		s.writeLocked(min(s.srv.conf().WriteTimeout, finalWriteTimeout)) // a Notice of Disconnection, say
		s.wmu.Unlock()
	}
	s.close()
	s.releaseIP()
	s.srv.forget(s)
}

// finalWriteTimeout bounds what a leaving session waits for its last bytes.
const finalWriteTimeout = 5 * time.Second

// wakeWriter has the writer goroutine write what is queued, starting it the
// first time: a plain connection whose socket always takes its responses at
// once never needs one.
func (s *Session) wakeWriter() {
	if !s.writerOn.Load() {
		s.writerOnce.Do(s.startWriter)
	}
	s.out.signal()
}

func (s *Session) startWriter() {
	s.writerOn.Store(true)
	go s.writeLoop()
}

// Flush writes what is queued (backend.Flusher): straight to the socket when
// no write is in progress and the socket takes it all, through the writer
// goroutine otherwise.
func (s *Session) Flush() {
	if !s.wmu.TryLock() {
		s.wakeWriter() // a write is in progress; the writer looks at the queue again after it
		return
	}
	if s.direct == nil || len(s.unwritten) > 0 {
		s.wmu.Unlock()
		s.wakeWriter()
		return
	}
	b := s.out.take(s.spare)
	s.spare = nil
	if len(b) == 0 { // another flush took it: no empty write system call
		s.spare = b
		s.wmu.Unlock()
		return
	}
	n, err := s.direct.TryWrite(b)
	s.srv.obs.sent.Add(int64(n))
	s.out.written(n)
	switch {
	case err != nil:
		s.spare = reusable(b)
		s.wmu.Unlock()
		s.close()
	case n < len(b):
		s.unwritten = b[n:]
		s.wmu.Unlock()
		s.wakeWriter()
	default:
		s.spare = reusable(b)
		s.wmu.Unlock()
	}
}

// Backlogged reports whether the client has more queued than a server
// connection leased to it should add to (backend.Backlog).
func (s *Session) Backlogged() bool { return s.out.backlogged() }

// WhenDrained calls resume once the client has read most of what is queued
// for it, or is gone (backend.Backlog).
func (s *Session) WhenDrained(resume func()) { s.out.whenDrained(resume) }

// writeLoop writes what Flush could not, waiting for the socket.
func (s *Session) writeLoop() {
	defer close(s.writerDone)
	for range s.out.wake {
		if !s.writeQueued() {
			s.close()
			return
		}
		if s.out.isClosed() {
			s.writeQueued() // frames queued just before close
			return
		}
	}
}

// writeQueued writes until nothing is left or queued.
func (s *Session) writeQueued() bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.writeLocked(s.srv.conf().WriteTimeout)
}

// writeLocked writes the unwritten bytes, then the queue, until both are
// empty, each write bounded by timeout. Caller must hold wmu.
func (s *Session) writeLocked(timeout time.Duration) bool {
	for {
		if len(s.unwritten) == 0 {
			s.unwritten = s.out.take(s.spare)
			s.spare = nil
			if len(s.unwritten) == 0 {
				s.spare, s.unwritten = reusable(s.unwritten), nil
				return true
			}
		}
		s.nc.SetWriteDeadline(time.Now().Add(timeout))
		n, err := s.conn.Write(s.unwritten)
		s.srv.obs.sent.Add(int64(n))
		s.out.written(n)
		if err != nil {
			return false
		}
		s.spare, s.unwritten = reusable(s.unwritten), nil
	}
}

func isClosedConn(err error) bool { return errors.Is(err, net.ErrClosed) }
