package balancer

import "github.com/ldapmux/ldapmux/internal/backend"

// Failover sends every operation to the first usable server in its list,
// then the next, and so forth: available servers in list order, then
// degraded ones in list order.
type Failover struct {
	Servers []int // snapshot indexes in preference order
}

// Name implements Algorithm.
func (Failover) Name() string { return "failover" }

// Candidates implements Algorithm.
func (f Failover) Candidates(snap *backend.Snapshot, dst []int) []int {
	dst = byState(snap, f.Servers, backend.Available, dst)
	return byState(snap, f.Servers, backend.Degraded, dst)
}
