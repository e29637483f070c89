package route

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/balancer"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

func benchRouterSnapshot() *backend.Snapshot {
	servers := []*backend.Server{{Name: "ds1"}, {Name: "ds2"}, {Name: "ds3"}}
	return backend.NewRegistry(servers, nil).Snapshot()
}

// BenchmarkRouterCandidates picks the candidates of a search as
// proxy.Forward does: default algorithm only, the canonical routes (writes
// by failover, reads by fewest operations), and those plus a target-subtree
// route and bind-DN affinity.
func BenchmarkRouterCandidates(b *testing.B) {
	snap := benchRouterSnapshot()
	tiers := balancer.Flat([]int{0, 1, 2})
	writes := balancer.Failover{Tiers: tiers}
	reads := &balancer.FewestOps{Tiers: tiers}
	people, _ := ParseDN("ou=people,dc=example,dc=com")
	op := &Operation{Tag: ldapwire.OpSearchRequest, TargetDN: []byte("uid=user.1,ou=people,dc=example,dc=com"),
		ClientIP: netip.MustParseAddr("127.0.0.1"), BindDN: "uid=app,ou=apps,dc=example,dc=com", ConnID: 1}
	cases := []struct {
		name string
		r    *Router
	}{
		{"default-only", &Router{Default: reads}},
		{"canonical", &Router{Routes: []Route{{Match: Criteria{Ops: OpWrite}, Algorithm: writes}}, Default: reads}},
		{"subtree+affinity", &Router{
			Routes:   []Route{{Match: Criteria{Ops: OpWrite}, Algorithm: writes}, {Match: Criteria{TargetSubtrees: []DN{people}}, Algorithm: reads}},
			Default:  writes,
			Affinity: &Affinity{Kind: ByBindDN, Duration: 10 * time.Second, After: OpWrite, Table: NewAffinityTable(0)},
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			var buf [16]int
			b.ReportAllocs()
			for b.Loop() {
				if got, _ := tc.r.Candidates(snap, op, buf[:0]); len(got) != 3 {
					b.Fatalf("%d candidates", len(got))
				}
			}
		})
	}
}
