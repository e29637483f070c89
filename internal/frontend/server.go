// Package frontend accepts client connections and runs their sessions.
package frontend

import (
	"context"
	"errors"
	"github.com/ldapmux/ldapmux/internal/evloop"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/proxy"
)

// Config bounds what one client may cost.
type Config struct {
	MaxPDU          int           // largest request accepted
	MaxClientBuffer int           // response bytes queued for one client before it is dropped
	MaxClients      int           // open client connections; 0 means no limit
	WriteTimeout    time.Duration // a client that accepts no bytes for this long is dropped

	Limits // per-IP and per-connection limits, timeouts, bind policy (limits.go)
}

// Server accepts clients on any number of listeners.
type Server struct {
	cfg   atomic.Pointer[Config] // replaced whole on reload; read through conf()
	proxy *proxy.Proxy
	log   *slog.Logger

	nextID   atomic.Uint64
	inflight atomic.Int64 // operations being forwarded
	clients  atomic.Int64
	draining atomic.Bool

	mu        sync.Mutex // mu guards the fields below
	listeners []net.Listener
	sessions  map[*Session]struct{}
	wg        sync.WaitGroup

	loops loops     // event loops where plain sessions wait (loop.go)
	perIP ipCounter // connections per client address (limits.go)
	obs   observed  // counters and cn=monitor (observe.go)
}

// NewServer creates a frontend that forwards through p; plain sessions
// wait for their requests in loops (nil: a goroutine each).
func NewServer(cfg Config, loops *evloop.Group, p *proxy.Proxy, log *slog.Logger) *Server {
	s := &Server{proxy: p, log: log, sessions: make(map[*Session]struct{})}
	s.SetConfig(cfg)
	s.initLoops(loops)
	return s
}

// SetConfig replaces the limits; connections already open see the new
// values from their next request on (their output buffer keeps its size).
func (s *Server) SetConfig(cfg Config) {
	if cfg.MaxClientBuffer == 0 {
		cfg.MaxClientBuffer = 32 << 20
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = time.Minute
	}
	s.cfg.Store(&cfg)
}

// conf returns the limits in force.
func (s *Server) conf() *Config { return s.cfg.Load() }

// Serve accepts plain LDAP clients on l until Shutdown closes it.
func (s *Server) Serve(l net.Listener) error { return s.ServeListener(l, &Listener{}) }

// ServeListener accepts clients on l, secured as lc says, until Shutdown
// closes it. Running out of file descriptors pauses accepting briefly
// instead of ending it.
func (s *Server) ServeListener(l net.Listener, lc *Listener) error {
	s.mu.Lock()
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	var backoff acceptBackoff
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.draining.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if backoff.retry(err, s.log) {
				continue
			}
			return err
		}
		backoff.reset()
		s.admit(nc, lc)
	}
}

// admit starts a session, or turns the client away at the connection limit.
func (s *Server) admit(nc net.Conn, lc *Listener) {
	if s.conf().MaxClients > 0 && s.clients.Load() >= int64(s.conf().MaxClients) {
		s.obs.rejected.Add(1)
		refuse(nc, lc, "too many client connections")
		return
	}
	sess := newSession(s, nc, s.nextID.Add(1), lc)
	s.mu.Lock()
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.clients.Add(1)
	go sess.serve()
}

func (s *Server) forget(sess *Session) {
	s.mu.Lock()
	if _, ok := s.sessions[sess]; ok {
		delete(s.sessions, sess)
		s.clients.Add(-1)
		s.wg.Done()
	}
	s.mu.Unlock()
}

// Clients is the number of open client connections.
func (s *Server) Clients() int64 { return s.clients.Load() }

// Inflight is the number of operations being forwarded.
func (s *Server) Inflight() int64 { return s.inflight.Load() }

// Shutdown stops accepting, lets in-flight operations finish until ctx ends,
// then sends every client a Notice of Disconnection and closes it.
func (s *Server) Shutdown(ctx context.Context) {
	s.draining.Store(true)
	s.mu.Lock()
	for _, l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	s.waitIdle(ctx)
	s.stopLoops()
	s.mu.Lock()
	for sess := range s.sessions {
		sess.disconnect(ldapwire.Unavailable, "ldapmux is shutting down")
		sess.nc.SetReadDeadline(time.Now())
		sess.wake()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// waitIdle polls until no operation is in flight or ctx ends.
func (s *Server) waitIdle(ctx context.Context) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for s.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
