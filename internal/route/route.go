// Package route decides which load-balancing algorithm places an operation:
// ordered routes with criteria, server affinity and location tiers. It is
// pure: it reads the operation, a health snapshot and an injected clock.
package route

import (
	"net/netip"
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
}

// Route sends the operations its criteria match to an algorithm.
type Route struct {
	Name      string // the algorithm's configured name, for logs and metrics
	Match     Criteria
	Algorithm balancer.Algorithm
}

// Router picks the algorithm for an operation: the first route that
// matches, else Default; then affinity may move one server to the front.
// It is immutable once built and safe for concurrent use.
type Router struct {
	Routes   []Route
	Default  balancer.Algorithm
	Affinity *Affinity        // nil: no affinity
	Now      func() time.Time // clock for affinity; nil means time.Now
}

// Candidates returns the servers to try for op, best first, and the name of
// the algorithm that ordered them ("/affinity" is appended when affinity
// chose the first server).
func (r *Router) Candidates(snap *backend.Snapshot, op *Operation, dst []int) ([]int, string) {
	v := view{op: op}
	alg, name := r.pick(&v)
	start := len(dst)
	dst = alg.Candidates(snap, dst)
	if r.Affinity == nil || len(dst) == start {
		return dst, name
	}
	now := r.now()
	if r.Affinity.apply(snap, &v, dst[start:], now) {
		name += "/affinity"
	}
	// Pin at dispatch: the client may send its next operation as soon as
	// it has the answer, before the proxy gets to Record.
	r.Affinity.record(&v, snap.Servers[dst[start]].Name, now)
	return dst, name
}

// pick returns the algorithm of the first matching route.
func (r *Router) pick(v *view) (balancer.Algorithm, string) {
	for i := range r.Routes {
		rt := &r.Routes[i]
		if rt.Match.Matches(v) {
			return rt.Algorithm, nameOf(rt)
		}
	}
	return r.Default, r.Default.Name()
}

func nameOf(rt *Route) string {
	if rt.Name != "" {
		return rt.Name
	}
	return rt.Algorithm.Name()
}

// Record tells the router that the named server answered op with result
// code, so that affinity can send the client's next operations there. The
// proxy calls it after every answered operation; it is cheap when affinity
// is off or op is not of a kind that sets it. (Candidates already pinned
// the first candidate; Record corrects that when another server answered.)
func (r *Router) Record(op *Operation, server string, code int, now time.Time) {
	if r.Affinity == nil || !succeeded(code) {
		return
	}
	r.Affinity.record(&view{op: op}, server, now)
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
