package balancer

import "github.com/ldapmux/ldapmux/internal/backend"

// Weighted spreads operations at random in proportion to each server's
// static weight (servers[].weight), within each group of servers of equal
// standing.
type Weighted struct {
	Tiers
	Rand Rand
}

// Name implements Algorithm.
func (*Weighted) Name() string { return "weighted" }

// Candidates implements Algorithm.
func (w *Weighted) Candidates(snap *backend.Snapshot, dst []int) []int {
	return w.order(snap, dst, func(g []int) {
		var buf [16]int64
		k := keys(&buf, len(g))
		for i, s := range g {
			k[i] = int64(max(snap.Servers[s].Weight, 1))
		}
		weightedShuffle(g, k, w.Rand)
	})
}
