package balancer

import (
	"slices"
	"sync/atomic"

	"github.com/ldapmux/ldapmux/internal/backend"
)

// RoundRobin starts each operation's list one server further than the
// previous operation's, within each group of servers of equal standing.
type RoundRobin struct {
	Tiers
	next atomic.Uint64
}

// Name implements Algorithm.
func (*RoundRobin) Name() string { return "round-robin" }

// Candidates implements Algorithm.
func (r *RoundRobin) Candidates(snap *backend.Snapshot, dst []int) []int {
	n := r.next.Add(1) - 1
	return r.order(snap, dst, func(g []int) { rotate(g, int(n%uint64(len(g)))) })
}

// rotate moves the first k items of g to its end.
func rotate(g []int, k int) {
	slices.Reverse(g[:k])
	slices.Reverse(g[k:])
	slices.Reverse(g)
}
