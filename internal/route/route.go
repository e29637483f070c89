// Package route decides which load-balancing algorithm places an operation:
// ordered routes with criteria, server affinity and location tiers. It is
// pure: it reads the operation, a health snapshot and an injected clock.
package route

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/balancer"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// Operation is what routing may know about one client operation.
type Operation struct {
	Tag         byte   // ldapwire request tag
	TargetDN    []byte // entry or search base (the bind name of a bind), as sent
	ExtendedOID []byte
	Controls    []byte // the request's [0] Controls element
	ClientIP    netip.Addr
	BindDN      string // the client's bound identity, "" when anonymous
	ConnID      uint64 // the client connection, unique within this proxy
	// Await is how a read of a client that wrote waits for replication
	// positions (affinity until replicated); set by Candidates.
	Await PositionWait
}

// Route sends the operations its criteria match to an algorithm.
type Route struct {
	Name      string // the algorithm's configured name, for logs and metrics
	Match     Criteria
	Algorithm balancer.Algorithm
}

// Router picks the algorithm for an operation: the first route that
// matches, else Default; then affinity may move one server to the front.
// It is immutable once built (it caches what it derives from its fields)
// and safe for concurrent use.
type Router struct {
	Routes   []Route
	Default  balancer.Algorithm
	Affinity *Affinity        // nil: no affinity
	Now      func() time.Time // clock for affinity; nil means time.Now

	derived atomic.Pointer[derived] // made on first use
}

// derived is what a Router works out from its fields once.
type derived struct {
	readsDNs      bool     // criteria or affinity read DNs
	affinityNames []string // by route index, then the default
}

// Candidates returns the servers to try for op, best first, and the name of
// the algorithm that ordered them ("/affinity" is appended when affinity
// chose the first server).
func (r *Router) Candidates(snap *backend.Snapshot, op *Operation, dst []int) ([]int, string) {
	if r.derive().readsDNs {
		return r.candidatesDNs(snap, op, dst)
	}
	return r.candidates(snap, &view{op: op}, dst)
}

// candidatesDNs is Candidates with room for DNs on the stack.
func (r *Router) candidatesDNs(snap *backend.Snapshot, op *Operation, dst []int) ([]int, string) {
	var dns viewDNs
	return r.candidates(snap, &view{op: op, dns: &dns}, dst)
}

// candidates routes the operation v shows.
func (r *Router) candidates(snap *backend.Snapshot, v *view, dst []int) ([]int, string) {
	i := r.pick(v)
	alg, name := r.route(i)
	start := len(dst)
	dst = alg.Candidates(snap, dst)
	if r.Affinity == nil || len(dst) == start {
		return dst, name
	}
	now := r.now()
	if r.Affinity.UntilReplicated {
		kept, placed := r.Affinity.placeRead(snap, v, dst[start:], now)
		if placed {
			name = r.derive().affinityNames[i]
		}
		return dst[:start+len(kept)], name
	}
	if r.Affinity.apply(snap, v, dst[start:], now) {
		name = r.derive().affinityNames[i]
	}
	// Pin at dispatch: the client may send its next operation as soon as
	// it has the answer, before the proxy gets to Record.
	r.Affinity.record(v, snap.Servers[dst[start]].Name, now)
	return dst, name
}

// pick returns the index of the first matching route, len(r.Routes) for
// the default.
func (r *Router) pick(v *view) int {
	for i := range r.Routes {
		if r.Routes[i].Match.Matches(v) {
			return i
		}
	}
	return len(r.Routes)
}

// route returns the algorithm of route i (or the default) and its name.
func (r *Router) route(i int) (balancer.Algorithm, string) {
	if i == len(r.Routes) {
		return r.Default, r.Default.Name()
	}
	rt := &r.Routes[i]
	if rt.Name != "" {
		return rt.Algorithm, rt.Name
	}
	return rt.Algorithm, rt.Algorithm.Name()
}

// derive returns what the router works out from its fields, once.
func (r *Router) derive() *derived {
	if d := r.derived.Load(); d != nil && len(d.affinityNames) == len(r.Routes)+1 {
		return d
	}
	d := &derived{affinityNames: make([]string, len(r.Routes)+1)}
	for i := range d.affinityNames {
		_, name := r.route(i)
		d.affinityNames[i] = name + "/affinity"
	}
	d.readsDNs = r.Affinity != nil && r.Affinity.Kind == ByBindDN
	for i := range r.Routes {
		c := &r.Routes[i].Match
		d.readsDNs = d.readsDNs || len(c.BindDNs)+len(c.BindSubtrees)+len(c.TargetSubtrees) > 0
	}
	r.derived.Store(d)
	return d
}

// Record tells the router that the named server answered op with result
// code, so that affinity can send the client's next operations there. The
// proxy calls it after every answered operation; it is cheap when affinity
// is off or op is not of a kind that sets it. (Candidates already pinned
// the first candidate; Record corrects that when another server answered.)
func (r *Router) Record(op *Operation, server string, code int, now time.Time) {
	if r.Affinity == nil || !succeeded(code) || !r.Affinity.records(op) {
		return
	}
	var dns viewDNs
	r.Affinity.record(&view{op: op, dns: &dns}, server, now)
}

// succeeded reports whether a result code means the operation was done.
func succeeded(code int) bool {
	return code == ldapwire.Success || code == ldapwire.CompareFalse || code == ldapwire.CompareTrue
}

func (r *Router) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}
