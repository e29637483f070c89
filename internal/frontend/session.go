package frontend

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/proxy"
	"github.com/ldapmux/ldapmux/internal/route"
)

// Session is one client connection: a read loop that starts one forwarding
// goroutine per operation, and a writer that sends responses in order of
// arrival.
type Session struct {
	srv    *Server
	nc     net.Conn
	id     uint64
	remote netip.Addr
	ident  atomic.Pointer[proxy.Identity]
	out    *outQueue
	ctx    context.Context
	cancel context.CancelFunc

	mu  sync.Mutex // mu guards ops
	ops map[int32]context.CancelFunc

	opsWG      sync.WaitGroup
	writerDone chan struct{}
	closeOnce  sync.Once

	transport // TLS, PROXY protocol, deadlines and per-IP accounting (transport.go)
}

func newSession(srv *Server, nc net.Conn, id uint64, lc *Listener) *Session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{srv: srv, nc: nc, id: id, out: newOutQueue(srv.conf().MaxClientBuffer),
		ctx: ctx, cancel: cancel, ops: make(map[int32]context.CancelFunc), writerDone: make(chan struct{})}
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		s.remote = ap.Addr().Unmap()
	}
	s.ident.Store(proxy.Anonymous)
	s.initTransport(lc)
	return s
}

// serve reads requests until the client leaves, then cleans up.
func (s *Session) serve() {
	ready := s.prepare()
	go s.writeLoop()
	defer s.finish()
	if !ready {
		return
	}
	for {
		frame, err := s.next()
		if err != nil {
			s.readFailed(err)
			return
		}
		if !s.handle(frame) {
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
func (s *Session) handle(frame []byte) bool {
	raw := append([]byte(nil), frame...)
	s.srv.obs.received.Add(int64(len(raw)))
	msg, err := ldapwire.Parse(raw)
	if err != nil {
		s.disconnect(ldapwire.ProtocolError, err.Error())
		return false
	}
	if msg.ID == 0 {
		s.disconnect(ldapwire.ProtocolError, "message ID 0 is reserved for unsolicited notifications")
		return false
	}
	if err := ldapwire.ValidateRequest(msg); err != nil { // a server must never see what it cannot decode
		s.srv.log.Warn("dropping client: bad PDU", "conn", s.id, "client", s.remote, "err", err)
		s.disconnect(ldapwire.ProtocolError, err.Error())
		return false
	}
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

// abandon cancels an outstanding operation; unknown IDs are ignored (RFC 4511, 4.11).
func (s *Session) abandon(msg ldapwire.Message) {
	target, err := msg.AbandonTarget()
	if err != nil {
		return
	}
	s.mu.Lock()
	cancel := s.ops[target]
	delete(s.ops, target)
	s.mu.Unlock()
	if cancel != nil {
		cancel()
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
	case ldapwire.OIDPasswordModify:
		if s.refuseInsecure(msg) {
			return
		}
	}
	s.operation(msg)
}

// start registers the operation and forwards it in its own goroutine.
func (s *Session) start(msg ldapwire.Message, onBind func(int)) {
	if s.srv.draining.Load() {
		s.reply(msg, ldapwire.Unavailable, "ldapmux is shutting down")
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	s.mu.Lock()
	if _, dup := s.ops[msg.ID]; dup {
		s.mu.Unlock()
		cancel()
		s.reply(msg, ldapwire.ProtocolError, "message ID already in use by an outstanding operation")
		return
	}
	if max := s.srv.conf().MaxOpsPerConn; max > 0 && len(s.ops) >= max {
		s.mu.Unlock()
		cancel()
		s.reply(msg, ldapwire.Busy, "too many outstanding operations on this connection (limits.max-operations-per-connection)")
		return
	}
	s.ops[msg.ID] = cancel
	s.mu.Unlock()
	req := s.request(msg, onBind)
	s.opsWG.Add(1)
	s.srv.inflight.Add(1)
	go func() {
		defer s.endOp(msg.ID, cancel)
		s.srv.proxy.Forward(ctx, req)
	}()
}

// request describes msg for the proxy.
func (s *Session) request(msg ldapwire.Message, onBind func(int)) *proxy.Request {
	ident := s.ident.Load()
	return &proxy.Request{
		Msg: msg, Identity: ident, Sink: s, ConnID: s.id, OnBindResult: onBind,
		Route: route.Operation{Tag: msg.OpTag, TargetDN: msg.TargetDN(), ExtendedOID: msg.ExtendedOID(),
			Controls: msg.Controls, ClientIP: s.remote, BindDN: ident.DN, ConnID: s.id},
	}
}

func (s *Session) endOp(id int32, cancel context.CancelFunc) {
	cancel()
	s.mu.Lock()
	delete(s.ops, id)
	s.mu.Unlock()
	s.touch()
	s.srv.inflight.Add(-1)
	s.opsWG.Done()
}

// Send queues a response frame (proxy.Sink). A client that lets too much
// pile up is dropped, and its operations abandoned upstream.
func (s *Session) Send(frame []byte) {
	if !s.out.push(frame) && !s.out.isClosed() {
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
	})
}

// finish runs when the read loop ends.
func (s *Session) finish() {
	s.cancel()
	s.opsWG.Wait()
	s.out.close()
	select {
	case <-s.writerDone:
	case <-time.After(5 * time.Second):
	}
	s.close()
	s.releaseIP()
	s.srv.forget(s)
}

// writeLoop sends queued frames, batching what accumulated between wakes.
func (s *Session) writeLoop() {
	defer close(s.writerDone)
	var batch [][]byte
	for range s.out.wake {
		if !s.flushQueue(&batch) {
			s.close()
			return
		}
		if s.out.isClosed() {
			s.flushQueue(&batch) // frames queued just before close
			return
		}
	}
}

// flushQueue writes queued frames until the queue is empty, through a
// pooled buffer so that idle clients hold none.
func (s *Session) flushQueue(batch *[][]byte) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	w := getWriter(s.conn)
	defer putWriter(w)
	return s.flushLocked(w, batch)
}

// flushLocked writes queued frames to w. Caller must hold wmu.
func (s *Session) flushLocked(w *bufio.Writer, batch *[][]byte) bool {
	for {
		*batch = s.out.take((*batch)[:0])
		if len(*batch) == 0 {
			return true
		}
		if !s.writeBatch(w, *batch) {
			return false
		}
	}
}

func (s *Session) writeBatch(w *bufio.Writer, batch [][]byte) bool {
	s.srv.countSent(batch)
	s.nc.SetWriteDeadline(time.Now().Add(s.srv.conf().WriteTimeout))
	for i, f := range batch {
		if _, err := w.Write(f); err != nil {
			return false
		}
		batch[i] = nil
	}
	return w.Flush() == nil
}

func isClosedConn(err error) bool { return errors.Is(err, net.ErrClosed) }
