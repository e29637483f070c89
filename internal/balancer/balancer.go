// Package balancer holds the load-balancing algorithms. An algorithm is a
// pure function of a health snapshot: it orders the servers it may use, best
// first. Failover and retry simply walk that list. No I/O happens here.
package balancer

import (
	"github.com/ldapmux/ldapmux/internal/backend"
)

// Algorithm orders candidate servers for one operation.
type Algorithm interface {
	// Name is the algorithm's configuration keyword.
	Name() string
	// Candidates appends to dst the snapshot indexes of the usable servers,
	// best first: available ones before degraded ones, never unavailable ones.
	Candidates(snap *backend.Snapshot, dst []int) []int
}

// byState appends the servers of order that are in state st, keeping order.
func byState(snap *backend.Snapshot, order []int, st backend.State, dst []int) []int {
	for _, i := range order {
		if snap.Servers[i].Health.State == st {
			dst = append(dst, i)
		}
	}
	return dst
}
