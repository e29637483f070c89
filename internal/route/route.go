// Package route decides which load-balancing algorithm places an operation.
// It is pure: it reads the operation and a health snapshot, nothing else.
package route

import (
	"net/netip"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/balancer"
)

// Operation is what routing may know about one client operation.
type Operation struct {
	Tag         byte   // ldapwire request tag
	TargetDN    []byte // entry or search base, as sent
	ExtendedOID []byte
	Controls    []byte // the request's [0] Controls element
	ClientIP    netip.Addr
	BindDN      string // the client's bound identity, "" when anonymous
}

// Router picks the algorithm for an operation.
type Router struct {
	Default balancer.Algorithm
}

// Candidates returns the servers to try for op, best first, and the name of
// the algorithm that ordered them.
func (r *Router) Candidates(snap *backend.Snapshot, op *Operation, dst []int) ([]int, string) {
	return r.Default.Candidates(snap, dst), r.Default.Name()
}
