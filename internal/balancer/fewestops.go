package balancer

import "github.com/ldapmux/ldapmux/internal/backend"

// FewestOps sends each operation to the usable server with the fewest
// operations outstanding from the proxy's point of view. Ties are broken at
// random, so that a lightly loaded proxy (where every server has nothing
// outstanding) does not pile its operations onto the first listed server.
type FewestOps struct {
	Tiers
	Rand Rand
}

// Name implements Algorithm.
func (*FewestOps) Name() string { return "fewest-operations" }

// Candidates implements Algorithm.
func (f *FewestOps) Candidates(snap *backend.Snapshot, dst []int) []int {
	return f.order(snap, dst, func(g []int) { f.rank(snap, g) })
}

// rank shuffles g, then sorts it stably by outstanding operations, each
// counter read once.
func (f *FewestOps) rank(snap *backend.Snapshot, g []int) {
	shuffle(g, f.Rand)
	var buf [16]int64
	k := keys(&buf, len(g))
	for i, s := range g {
		k[i] = snap.Servers[s].Outstanding()
	}
	for i := 1; i < len(g); i++ { // insertion sort: groups are small
		for j := i; j > 0 && k[j] < k[j-1]; j-- {
			k[j], k[j-1] = k[j-1], k[j]
			g[j], g[j-1] = g[j-1], g[j]
		}
	}
}
