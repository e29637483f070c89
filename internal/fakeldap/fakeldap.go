// Package fakeldap is a tiny in-process LDAP server for tests and
// benchmarks. It accepts any simple bind, answers every search with the same
// number of pre-encoded entries and every update with success. In steady
// state it allocates nothing per operation, so that benchmarks of a client
// or a proxy in front of it measure their own allocations.
package fakeldap

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// Server is a fake directory server listening on 127.0.0.1.
type Server struct {
	ln      net.Listener
	entry   []byte // a SearchResultEntry protocolOp
	entries atomic.Int32
	ops     atomic.Int64
	watch   atomic.Pointer[watch]

	mu    sync.Mutex // mu guards conns
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// Start listens on a free loopback port; searches return entries entries.
func Start(entries int) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fakeldap: %w", err)
	}
	s := &Server{ln: ln, entry: Entry("uid=user.1,ou=people,dc=example,dc=com"), conns: make(map[net.Conn]struct{})}
	s.entries.Store(int32(entries))
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// SetEntries changes the number of entries searches return.
func (s *Server) SetEntries(n int) { s.entries.Store(int32(n)) }

// watch singles out the searches of one base DN.
type watch struct {
	base  string
	hold  bool // send the entries, never the final result
	count atomic.Int64
}

// Watch counts the searches whose base DN is base; with hold, they get
// their entries and never their final result, as from a server that hangs
// midway through a search.
func (s *Server) Watch(base string, hold bool) { s.watch.Store(&watch{base: base, hold: hold}) }

// Watched is the number of searches of the watched base DN so far.
func (s *Server) Watched() int64 {
	if w := s.watch.Load(); w != nil {
		return w.count.Load()
	}
	return 0
}

// Ops is the number of requests answered so far.
func (s *Server) Ops() int64 { return s.ops.Load() }

// Close stops the server and closes every connection.
func (s *Server) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[nc] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(nc)
	}
}

// serve answers one connection's requests in order.
func (s *Server) serve(nc net.Conn) {
	defer s.wg.Done()
	defer s.forget(nc)
	var out []byte
	bound := false // the connection is bound (the proxy's service connections)
	ServeRequests(nc, func(msg ldapwire.Message) {
		bound = bound || msg.OpTag == ldapwire.OpBindRequest
		out = s.answer(out[:0], msg, bound)
		if len(out) == 0 {
			return
		}
		s.ops.Add(1)
		if _, err := nc.Write(out); err != nil {
			nc.Close() // ends the read loop
		}
	}, nil)
}

func (s *Server) forget(nc net.Conn) {
	nc.Close()
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
}

// answer appends the responses to msg (none for abandon), received on a
// connection that is bound or not.
func (s *Server) answer(dst []byte, msg ldapwire.Message, bound bool) []byte {
	switch msg.OpTag {
	case ldapwire.OpAbandonRequest:
		return dst
	case ldapwire.OpSearchRequest:
		if bound && msg.Controls == nil && len(msg.TargetDN()) == 0 { // the root DSE read at connect
			dst = ldapwire.AppendSearchEntry(dst, msg.ID, "", rootDSE, false)
			return ldapwire.AppendResult(dst, msg.ID, ldapwire.OpSearchResultDone, ldapwire.Success, "")
		}
		for range s.entries.Load() {
			dst = ldapwire.AppendMessage(dst, msg.ID, s.entry, nil, nil)
		}
		if s.held(msg) {
			return dst
		}
	case ldapwire.OpExtendedRequest:
		return ldapwire.AppendExtendedResult(dst, msg.ID, ldapwire.Success, "")
	case ldapwire.OpCompareRequest:
		return ldapwire.AppendResult(dst, msg.ID, ldapwire.OpCompareResponse, ldapwire.CompareTrue, "")
	}
	return ldapwire.AppendResult(dst, msg.ID, ldapwire.ResponseTag(msg.OpTag), ldapwire.Success, "")
}

// rootDSE advertises proxied authorization, which the fake accepts.
var rootDSE = []ldapwire.Attribute{{Type: "supportedControl", Values: []string{ldapwire.OIDProxiedAuthzV2}}}

// held counts msg, a search, when it is watched and reports whether it is
// left without its final result.
func (s *Server) held(msg ldapwire.Message) bool {
	w := s.watch.Load()
	if w == nil || string(msg.TargetDN()) != w.base {
		return false
	}
	w.count.Add(1)
	return w.hold
}
