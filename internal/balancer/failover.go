package balancer

import "github.com/ldapmux/ldapmux/internal/backend"

// Failover sends every operation to the first usable server in its list,
// then the next, and so forth: available servers in list order (local
// location first, see Tiers), then degraded ones.
type Failover struct {
	Tiers
}

// Name implements Algorithm.
func (Failover) Name() string { return "failover" }

// Candidates implements Algorithm.
func (f Failover) Candidates(snap *backend.Snapshot, dst []int) []int {
	return f.order(snap, dst, nil)
}
