package frontend

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// transport is the byte stream under a session: the PROXY protocol header,
// TLS (LDAPS or StartTLS), read deadlines against idle and slow clients, and
// the per-address connection count.
//
// Session.nc stays the accepted TCP connection: deadlines and Close act on
// it directly, so closing never waits for a TLS close_notify to be written
// to a client that does not read.
type transport struct {
	lc *Listener

	// wmu guards conn once the writer runs; the read loop, the only goroutine
	// that replaces conn, reads it without the lock.
	wmu  sync.Mutex
	conn net.Conn // nc, or TLS over it

	reader     *ldapwire.Reader
	inRequest  bool         // read loop only: the request timeout is armed
	secured    bool         // read loop only: the stream is TLS
	armed      time.Time    // read loop only: the read deadline set on nc
	tlsOn      atomic.Bool  // TLS is established
	proxySSL   bool         // a trusted load balancer ended TLS for the client
	lastActive atomic.Int64 // unix nanoseconds of the last request or operation end
	ipHeld     bool         // the client's address is counted in Server.perIP
}

func (s *Session) initTransport(lc *Listener) {
	if lc == nil {
		lc = &Listener{}
	}
	s.lc = lc
	s.conn = watchedConn{Conn: s.nc, s: s}
	s.touch()
}

// watchedConn starts the request clock, under TLS, when the first byte of a
// request arrives below it, so that trickling TLS records is caught too.
type watchedConn struct {
	net.Conn
	s *Session
}

func (c watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.s.secured && !c.s.inRequest {
		c.s.startRequest()
	}
	return n, err
}

// streamReader reads the session's current stream (plain, then maybe TLS)
// for the framer. On a plain connection the request clock starts when the
// framer has to read again to complete a request: a request that arrives in
// one read, the usual case, costs no deadline update. Under TLS it starts
// when bytes are handed over (TLS may hold decrypted bytes of a next request
// without reading the socket).
type streamReader struct{ s *Session }

func (r streamReader) Read(p []byte) (int, error) {
	s := r.s
	if s.nowait {
		return s.direct.TryRead(p)
	}
	if !s.inRequest && !s.secured && s.reader.Partial() {
		s.startRequest()
	}
	n, err := s.conn.Read(p)
	if n > 0 && s.secured && !s.inRequest {
		s.startRequest()
	}
	return n, err
}

// prepare runs before the read loop: the PROXY header, the per-address
// limit and the LDAPS handshake. It reports whether to serve the client.
func (s *Session) prepare() bool {
	if s.lc.trusts(s.remote) && !s.readProxyHeader() {
		return false
	}
	if !s.holdIP() {
		return false
	}
	if s.lc.LDAPS && !s.handshake() {
		return false
	}
	s.reader = ldapwire.NewReaderSize(streamReader{s}, s.srv.conf().MaxPDU, 4<<10)
	return true
}

// readProxyHeader takes the client's address from a trusted load balancer.
func (s *Session) readProxyHeader() bool {
	s.setReadDeadline(time.Now().Add(s.srv.conf().requestTimeout()))
	info, err := readProxyHeader(s.nc)
	s.setReadDeadline(time.Time{})
	if err != nil {
		s.srv.log.Warn("dropping connection: bad PROXY protocol header", "conn", s.id, "proxy", s.remote, "err", err)
		return false
	}
	if !info.local {
		s.remote = info.src
	}
	s.proxySSL = info.ssl
	return true
}

// holdIP counts the client against the per-address limit.
func (s *Session) holdIP() bool {
	max := s.srv.conf().MaxPerIP
	if max <= 0 {
		return true
	}
	if !s.srv.perIP.acquire(s.remote, max) {
		s.srv.obs.rejected.Add(1)
		s.srv.log.Debug("refusing client: too many connections from its address", "client", s.remote, "limit", max)
		if !s.lc.LDAPS {
			s.disconnect(ldapwire.Busy, "too many connections from your address")
		}
		return false
	}
	s.ipHeld = true
	return true
}

// releaseIP undoes holdIP when the session ends.
func (s *Session) releaseIP() {
	if s.ipHeld {
		s.ipHeld = false
		s.srv.perIP.release(s.remote)
	}
}

// handshake secures the stream with the listener's certificate, within the
// request timeout.
func (s *Session) handshake() bool {
	tc := tls.Server(s.conn, s.lc.TLS.ServerConfig())
	s.wmu.Lock()
	s.conn = tc
	s.direct = nil
	s.wmu.Unlock()
	s.secured = true
	s.nc.SetWriteDeadline(time.Now().Add(s.srv.conf().requestTimeout()))
	s.setReadDeadline(time.Now().Add(s.srv.conf().requestTimeout()))
	if err := tc.HandshakeContext(s.ctx); err != nil {
		s.srv.log.Debug("dropping client: TLS handshake failed", "conn", s.id, "client", s.remote, "err", err)
		return false
	}
	s.tlsOn.Store(true)
	return true
}

// isSecure reports whether what the client sends is encrypted on its way.
func (s *Session) isSecure() bool { return s.tlsOn.Load() || s.proxySSL }

// touch records activity for the idle timeout.
func (s *Session) touch() { s.lastActive.Store(time.Now().UnixNano()) }

var (
	errIdle = errors.New("idle timeout")
	errSlow = errors.New("request not received in time")
)

// next returns the next request, enforcing the idle and request timeouts.
func (s *Session) next() ([]byte, error) {
	for {
		s.awaitRequest()
		frame, err := s.reader.Next()
		if err == nil {
			s.touch()
			return frame, nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || s.ctx.Err() != nil {
			return nil, err
		}
		if s.inRequest {
			s.srv.log.Warn("dropping client: request not completed in time", "conn", s.id, "client", s.remote,
				"request-timeout", s.srv.conf().requestTimeout())
			s.disconnect(ldapwire.Unavailable, "request not received within the request timeout")
			return nil, errSlow
		}
		if s.idleExpired() {
			s.idleDisconnect()
			return nil, errIdle
		}
	}
}

// awaitRequest sets the read deadline for the wait before a request: the
// idle one, or under TLS the request timeout when part of a request is
// already buffered (on a plain connection the framer's next read starts it).
func (s *Session) awaitRequest() {
	if s.secured && s.reader.Buffered() > 0 {
		s.startRequest()
		return
	}
	s.inRequest = false
	s.armIdle()
}

// armIdle makes the read deadline the idle deadline. A deadline already
// armed is kept while more than half of the idle timeout is left: it can
// only be earlier than the idle deadline (which moves forward with every
// request), and waking early just re-arms it (next).
func (s *Session) armIdle() {
	idle := s.srv.conf().IdleTimeout
	if idle <= 0 {
		if !s.armed.IsZero() {
			s.setReadDeadline(time.Time{})
		}
		return
	}
	if left := time.Until(s.armed); !s.armed.IsZero() && left > idle/2 && left <= idle {
		return
	}
	s.setReadDeadline(s.idleDeadline())
}

func (s *Session) startRequest() {
	s.inRequest = true
	s.setReadDeadline(time.Now().Add(s.srv.conf().requestTimeout()))
}

// setReadDeadline sets and remembers the read deadline. Read loop only.
func (s *Session) setReadDeadline(t time.Time) {
	s.armed = t
	s.nc.SetReadDeadline(t)
}

// idleDeadline is when the client becomes idle; never while it has
// operations in progress.
func (s *Session) idleDeadline() time.Time {
	idle := s.srv.conf().IdleTimeout
	switch {
	case idle <= 0:
		return time.Time{}
	case s.outstanding() > 0:
		return time.Now().Add(idle)
	}
	return time.Unix(0, s.lastActive.Load()).Add(idle)
}

// idleDisconnect tells an idle client why it is dropped.
func (s *Session) idleDisconnect() {
	s.srv.log.Debug("closing idle client", "conn", s.id, "client", s.remote)
	s.disconnect(ldapwire.Unavailable, "idle for longer than the idle timeout")
}

func (s *Session) idleExpired() bool {
	d := s.idleDeadline()
	return !d.IsZero() && !time.Now().Before(d)
}

// outstanding is the number of operations in progress.
func (s *Session) outstanding() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ops)
}
