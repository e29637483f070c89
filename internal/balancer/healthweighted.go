package balancer

import "github.com/ldapmux/ldapmux/internal/backend"

// HealthWeighted prefers servers with higher health scores: among servers
// of the same state (and location tier) it spreads operations at random in
// proportion to their scores, 1 to 10.
type HealthWeighted struct {
	Tiers
	Rand Rand
}

// Name implements Algorithm.
func (*HealthWeighted) Name() string { return "health-weighted" }

// Candidates implements Algorithm.
func (h *HealthWeighted) Candidates(snap *backend.Snapshot, dst []int) []int {
	return h.order(snap, dst, func(g []int) {
		var buf [16]int64
		k := keys(&buf, len(g))
		for i, s := range g {
			k[i] = int64(min(max(snap.Servers[s].Health.Score, 1), 10))
		}
		weightedShuffle(g, k, h.Rand)
	})
}
