package route

import (
	"slices"

	"github.com/ldapmux/ldapmux/internal/balancer"
)

// Locality ranks server locations as seen from the proxy: its own location
// first, then its preferred failover locations in order, then all others.
type Locality struct {
	Enabled   bool     // use-location
	Local     string   // the proxy's location; "" disables location tiers
	Preferred []string // the local location's preferred failover locations
	// DegradedFirst: a degraded server of a better tier beats an available
	// server of a worse one (prefer-degraded-servers-over-failover).
	DegradedFirst bool
}

// active reports whether locations order servers at all.
func (l Locality) active() bool { return l.Enabled && l.Local != "" }

// Tier ranks a location: 0 for the proxy's own, 1.. for the preferred
// failover locations in order, then one tier for every other location.
// Without locations, every server is in tier 0.
func (l Locality) Tier(location string) int {
	if !l.active() || location == l.Local {
		return 0
	}
	if i := slices.Index(l.Preferred, location); i >= 0 {
		return i + 1
	}
	return len(l.Preferred) + 1
}

// Tiers groups servers, given as snapshot indexes in list order with the
// location of each snapshot index, into the tiers of an algorithm.
func (l Locality) Tiers(servers []int, locations []string) balancer.Tiers {
	if !l.active() {
		t := balancer.Flat(servers)
		t.DegradedFirst = l.DegradedFirst
		return t
	}
	groups := make([][]int, len(l.Preferred)+2)
	for _, s := range servers {
		tier := l.Tier(locations[s])
		groups[tier] = append(groups[tier], s)
	}
	groups = slices.DeleteFunc(groups, func(g []int) bool { return len(g) == 0 })
	return balancer.Tiers{Groups: groups, DegradedFirst: l.DegradedFirst}
}

// TierOf returns the tier of every server, by snapshot index.
func (l Locality) TierOf(locations []string) []int {
	out := make([]int, len(locations))
	for i, loc := range locations {
		out[i] = l.Tier(loc)
	}
	return out
}
