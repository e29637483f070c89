// Package backend holds the directory servers the proxy forwards to: their
// health as an immutable snapshot, their connection pools and the
// multiplexed connections themselves.
package backend

import (
	"github.com/ldapmux/ldapmux/internal/evloop"
	"sync"
	"sync/atomic"
	"time"
)

// State is a server's usability, best first.
type State int32

// Server states. The zero value is Available so that a fresh server is used
// until a check says otherwise.
const (
	Available State = iota
	Degraded
	Unavailable
)

func (s State) String() string {
	switch s {
	case Available:
		return "available"
	case Degraded:
		return "degraded"
	}
	return "unavailable"
}

// Health is one server's state, written only through Registry.SetHealth.
type Health struct {
	State  State
	Score  int    // 1..10, ranks servers of the same state
	Reason string // why the state is what it is
	Check  string // the check that decided it
	Since  time.Time
}

// Server is one backend directory server.
type Server struct {
	Index    int // position in the configured list
	Name     string
	Address  string
	Location string
	Weight   int
	// Identity says how clients' identities reach the server (identity.go).
	Identity IdentitySettings
	// Loops read the server's plain connections; nil: a goroutine each.
	Loops *evloop.Group

	caps        capsState  // what the last connect found out (identity.go)
	refused     refusedDNs // identities the server would not let the proxy assume (identity.go)
	outstanding atomic.Int64
	down        atomic.Bool  // marked unavailable: its pool does not grow
	completed   atomic.Int64 // operations ended
	busyNanos   atomic.Int64 // their total time in flight
	readsHeld   atomic.Int64 // times a leased connection waited for its client (Backlog)
	pool        *Pool
	tls         tlsSettings // see tls.go
}

// Outstanding is the number of operations in flight to this server.
func (s *Server) Outstanding() int64 { return s.outstanding.Load() }

// ReadsHeld is how many times a connection leased to one client stopped
// reading until that client had read what it was sent.
func (s *Server) ReadsHeld() int64 { return s.readsHeld.Load() }

// Completed is how many operations ended and their total time in flight
// (passive health: the busyness check derives recent response times).
func (s *Server) Completed() (n int64, total time.Duration) {
	return s.completed.Load(), time.Duration(s.busyNanos.Load())
}

// Begin counts an operation as outstanding and returns the function that
// ends it (StartOp and EndOp with a closure; calls after the first do nothing).
func (s *Server) Begin() (end func()) {
	started, _ := s.StartOp(0)
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			s.EndOp(started)
		}
	}
}

// Pool returns the server's connection pool.
func (s *Server) Pool() *Pool { return s.pool }

// ServerView is a server together with its health at snapshot time.
type ServerView struct {
	*Server
	Health Health
}

// Usable reports whether an algorithm may choose this server.
func (v ServerView) Usable() bool { return v.Health.State != Unavailable }

// Snapshot is an immutable view of all servers' health, in configured order.
type Snapshot struct {
	Servers []ServerView
	Version uint64
}

// Registry publishes health snapshots. Readers never lock.
type Registry struct {
	snap atomic.Pointer[Snapshot]
	mu   sync.Mutex // serialises writers
	now  func() time.Time
	// OnChange, when set, is called (under the writer lock) after a state change.
	OnChange func(s *Server, old, new Health)
}

// NewRegistry publishes a first snapshot in which every server is available.
func NewRegistry(servers []*Server, now func() time.Time) *Registry {
	if now == nil {
		now = time.Now
	}
	r := &Registry{now: now}
	views := make([]ServerView, len(servers))
	for i, s := range servers {
		s.Index = i
		views[i] = ServerView{Server: s, Health: Health{State: Available, Score: 10, Reason: "not checked yet", Since: now()}}
	}
	r.snap.Store(&Snapshot{Servers: views})
	return r
}

// Snapshot returns the current immutable view.
func (r *Registry) Snapshot() *Snapshot { return r.snap.Load() }

// SetHealth records a server's health and publishes a new snapshot when it
// changed. It reports whether the state changed.
func (r *Registry) SetHealth(index int, h Health) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.snap.Load()
	prev := old.Servers[index].Health
	if prev.State == h.State && prev.Score == h.Score && prev.Reason == h.Reason {
		return false
	}
	if prev.State == h.State {
		h.Since = prev.Since
	} else {
		h.Since = r.now()
	}
	views := append([]ServerView(nil), old.Servers...)
	views[index].Health = h
	views[index].Server.down.Store(h.State == Unavailable)
	r.snap.Store(&Snapshot{Servers: views, Version: old.Version + 1})
	if prev.State != h.State && r.OnChange != nil {
		r.OnChange(views[index].Server, prev, h)
	}
	return prev.State != h.State
}
