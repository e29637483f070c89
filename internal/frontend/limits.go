package frontend

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// Limits bounds what one client may hold and decides the bind policy.
type Limits struct {
	MaxPerIP       int           // open connections from one client address; 0 means no limit
	MaxOpsPerConn  int           // outstanding operations of one connection, then busy; 0 means no limit
	IdleTimeout    time.Duration // close clients idle this long; 0 means never
	RequestTimeout time.Duration // rest of a started request, TLS handshake, PROXY header; default 10s

	// RequireSecureBind refuses passwords (simple binds, Password Modify)
	// on unencrypted connections with confidentialityRequired.
	RequireSecureBind bool
	// AllowUnauthenticatedBinds answers a DN with an empty password with
	// success, leaving the client anonymous, instead of sending it to a
	// server (whose success is turned into unwillingToPerform).
	AllowUnauthenticatedBinds bool
	// BindWait bounds how long requests sent behind a bind wait for its
	// result; default 1m. The proxy ends every bind well before (bind and
	// connect timeouts on each server tried): this only guards against a
	// bug leaving a client stuck.
	BindWait time.Duration
}

// defaultBindWait applies when Limits.BindWait is zero.
const defaultBindWait = time.Minute

func (l Limits) bindWait() time.Duration {
	if l.BindWait > 0 {
		return l.BindWait
	}
	return defaultBindWait
}

// defaultRequestTimeout applies when Limits.RequestTimeout is zero.
const defaultRequestTimeout = 10 * time.Second

func (l Limits) requestTimeout() time.Duration {
	if l.RequestTimeout > 0 {
		return l.RequestTimeout
	}
	return defaultRequestTimeout
}

// ipCounter counts open connections per client address. Entries are
// removed at zero, so it never holds more addresses than open connections.
type ipCounter struct {
	mu sync.Mutex // mu guards n
	n  map[netip.Addr]int
}

// acquire counts one more connection from ip unless max are open.
func (c *ipCounter) acquire(ip netip.Addr, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = make(map[netip.Addr]int)
	}
	if c.n[ip] >= max {
		return false
	}
	c.n[ip]++
	return true
}

func (c *ipCounter) release(ip netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[ip]--; c.n[ip] <= 0 {
		delete(c.n, ip)
	}
}

// ConnectionsFrom is the number of open connections from ip.
func (s *Server) ConnectionsFrom(ip netip.Addr) int {
	s.perIP.mu.Lock()
	defer s.perIP.mu.Unlock()
	return s.perIP.n[ip]
}

// refuse turns a connection away before its session starts: a plain client
// gets a busy Notice of Disconnection, an LDAPS one (which could not read
// it before a handshake) is just closed.
func refuse(nc net.Conn, lc *Listener, text string) {
	if !lc.LDAPS {
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		nc.Write(ldapwire.AppendNotice(nil, ldapwire.Busy, text))
	}
	nc.Close()
}

// acceptBackoff pauses accepting when the process runs out of resources
// (file descriptors, buffers), as net/http does, instead of giving up.
type acceptBackoff struct{ delay time.Duration }

// retry reports whether Accept may be called again after err, sleeping
// first when err is a resource shortage.
func (b *acceptBackoff) retry(err error, log *slog.Logger) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	if !isResourceError(err) {
		return false
	}
	b.delay = min(max(2*b.delay, 5*time.Millisecond), time.Second)
	log.Warn("accepting clients failed; retrying", "err", err, "in", b.delay)
	time.Sleep(b.delay)
	return true
}

func (b *acceptBackoff) reset() { b.delay = 0 }

func isResourceError(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
