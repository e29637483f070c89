// Package balancer holds the load-balancing algorithms. An algorithm is a
// pure function of a health snapshot: it orders the servers it may use, best
// first. Failover and retry simply walk that list. No I/O happens here, and
// no clock is read; randomness is injected.
package balancer

import (
	"fmt"
	"math/rand/v2"

	"github.com/ldapmux/ldapmux/internal/backend"
)

// Algorithm orders candidate servers for one operation. Implementations are
// safe for concurrent use.
type Algorithm interface {
	// Name is the algorithm's configuration keyword.
	Name() string
	// Candidates appends to dst the snapshot indexes of the usable servers,
	// best first: available ones before degraded ones, never unavailable ones.
	Candidates(snap *backend.Snapshot, dst []int) []int
}

// Kinds lists the algorithm keywords New understands, the default first.
var Kinds = []string{"failover", "fewest-operations", "round-robin", "weighted", "health-weighted"}

// New builds the algorithm named by its configuration keyword over the
// servers of t. rnd may be nil for the process-wide random source.
func New(kind string, t Tiers, rnd Rand) (Algorithm, error) {
	switch kind {
	case "failover":
		return Failover{Tiers: t}, nil
	case "fewest-operations":
		return &FewestOps{Tiers: t, Rand: rnd}, nil
	case "round-robin":
		return &RoundRobin{Tiers: t}, nil
	case "weighted":
		return &Weighted{Tiers: t, Rand: rnd}, nil
	case "health-weighted":
		return &HealthWeighted{Tiers: t, Rand: rnd}, nil
	}
	return nil, fmt.Errorf("balancer: unknown algorithm %q", kind)
}

// Rand returns a uniformly random int in [0, n). It must be safe for
// concurrent use. The zero value uses math/rand/v2.
type Rand func(n int) int

func (r Rand) intn(n int) int {
	if r == nil {
		return rand.IntN(n)
	}
	return r(n)
}

// Tiers groups an algorithm's servers by location preference: the proxy's
// own location first, then its preferred failover locations in order, then
// every other location. Each group keeps the configured list order. A
// single group means locations are not used.
type Tiers struct {
	Groups [][]int // snapshot indexes
	// DegradedFirst lets a degraded server of a better tier beat an
	// available server of a worse one (prefer-degraded-servers-over-failover).
	DegradedFirst bool
}

// Flat is a single tier: the servers in list order, locations ignored.
func Flat(servers []int) Tiers { return Tiers{Groups: [][]int{servers}} }

// order appends the usable servers group of equal standing by group of
// equal standing, best first, and lets rank reorder each group in place.
// Available servers come before degraded ones, either across all tiers or,
// with DegradedFirst, within each tier.
func (t Tiers) order(snap *backend.Snapshot, dst []int, rank func(group []int)) []int {
	add := func(g []int, st backend.State) {
		start := len(dst)
		dst = byState(snap, g, st, dst)
		if len(dst)-start > 1 && rank != nil {
			rank(dst[start:])
		}
	}
	if t.DegradedFirst {
		for _, g := range t.Groups {
			add(g, backend.Available)
			add(g, backend.Degraded)
		}
		return dst
	}
	for _, st := range []backend.State{backend.Available, backend.Degraded} {
		for _, g := range t.Groups {
			add(g, st)
		}
	}
	return dst
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

// keys returns a scratch slice of n int64s, on the stack's buffer if it fits.
func keys(buf *[16]int64, n int) []int64 {
	if n <= len(buf) {
		return buf[:n]
	}
	return make([]int64, n)
}

// shuffle puts g in uniformly random order (Fisher-Yates).
func shuffle(g []int, rnd Rand) {
	for i := len(g) - 1; i > 0; i-- {
		j := rnd.intn(i + 1)
		g[i], g[j] = g[j], g[i]
	}
}

// weightedShuffle orders g at random, each position drawn in proportion to
// the weights of the servers left (weights must be positive).
func weightedShuffle(g []int, w []int64, rnd Rand) {
	var total int64
	for _, x := range w {
		total += x
	}
	for pos := 0; pos < len(g)-1; pos++ {
		x := int64(rnd.intn(int(total)))
		j := pos
		for ; j < len(g)-1 && x >= w[j]; j++ {
			x -= w[j]
		}
		g[pos], g[j] = g[j], g[pos]
		w[pos], w[j] = w[j], w[pos]
		total -= w[pos]
	}
}
