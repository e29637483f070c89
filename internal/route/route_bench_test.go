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

// routingCase is a router and an operation it routes in steady state,
// with the algorithm name it must report.
type routingCase struct {
	name string
	r    *Router
	op   *Operation
	want string
}

// longOID is longer than the 32 bytes a string conversion may borrow from
// the stack.
const longOID = "1.3.6.1.4.1.99999.1.2.3.4.5.6.7.8.9.10"

// criteriaCases have one route per criteria kind, matching a search (an
// extended operation for extended-operations) of a client bound as appDN,
// then routes that an anonymous search outside their subtree misses.
func criteriaCases(tb testing.TB) []routingCase {
	tiers := balancer.Flat([]int{0, 1, 2})
	reads := &balancer.FewestOps{Tiers: tiers}
	search := func(target string) *Operation {
		return &Operation{Tag: ldapwire.OpSearchRequest, TargetDN: []byte(target), BindDN: appDN,
			ClientIP: netip.MustParseAddr("192.0.2.7"), ConnID: 1, Controls: controls(longOID, pagedOID)}
	}
	people := "uid=user.1,ou=people,dc=example,dc=com"
	route := func(c Criteria) *Router {
		return &Router{Routes: []Route{{Name: "matched", Match: c, Algorithm: reads}}, Default: balancer.Failover{Tiers: tiers}}
	}
	dns := func(s ...string) []DN {
		var out []DN
		for _, d := range s {
			out = append(out, mustDN(tb, d))
		}
		return out
	}
	cases := []routingCase{
		{"operations", route(Criteria{Ops: OpRead}), search(people), ""},
		{"client-networks", route(Criteria{Networks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.0/24")}}), search(people), ""},
		{"client-bind-dns", route(Criteria{BindDNs: dns("uid=other,dc=example,dc=com", "UID=App, ou=Apps,dc=example,dc=com")}), search(people), ""},
		{"client-bind-subtrees", route(Criteria{BindSubtrees: dns("ou=people,dc=example,dc=com", "ou=apps,dc=example,dc=com")}), search(people), ""},
		{"target-subtrees", route(Criteria{TargetSubtrees: dns("ou=groups,dc=example,dc=com", "ou=people,dc=example,dc=com")}), search(people), ""},
		{"target-subtrees-escaped-multivalued", route(Criteria{TargetSubtrees: dns(`ou=a\,b+l=X,dc=example,dc=com`)}),
			search(`cn=Smith\, John + uid=JS,L=x + OU=A\2cB,dc=example,  dc=com`), ""},
		{"request-controls", route(Criteria{Controls: []string{"1.2.3", pagedOID}}), search(people), ""},
		{"extended-operations", route(Criteria{ExtendedOIDs: []string{longOID + ".1", whoAmI}}),
			&Operation{Tag: ldapwire.OpExtendedRequest, ExtendedOID: []byte(whoAmI), BindDN: appDN, ConnID: 1}, ""},
		{"bind-request", route(Criteria{BindSubtrees: dns("ou=apps,dc=example,dc=com"), TargetSubtrees: dns("dc=example,dc=com")}),
			&Operation{Tag: ldapwire.OpBindRequest, TargetDN: []byte(appDN), ConnID: 1}, ""},
	}
	for i := range cases {
		cases[i].want = "matched"
	}
	anonymous := search("uid=user.1,ou=people2,dc=example,dc=com")
	anonymous.BindDN = ""
	return append(cases,
		routingCase{"no-match/target-subtrees", route(Criteria{TargetSubtrees: dns("ou=people,dc=example,dc=com")}), anonymous, "failover"},
		routingCase{"no-match/client-bind-subtrees", route(Criteria{BindSubtrees: dns("dc=example,dc=com")}), anonymous, "failover"})
}

// affinityCases pin a client to a server for each affinity scope, per
// proxy and consistent; "/write" cases also re-record the pin.
func affinityCases() []routingCase {
	var cases []routingCase
	for _, kind := range []AffinityKind{ByConnection, ByClientIP, ByBindDN} {
		for _, consistent := range []bool{false, true} {
			a := &Affinity{Kind: kind, Consistent: consistent, Duration: time.Hour, After: OpWrite, Table: NewAffinityTable(0)}
			r := &Router{Default: rotating{&balancer.RoundRobin{Tiers: balancer.Flat([]int{0, 1, 2})}}, Affinity: a}
			op := Operation{Tag: ldapwire.OpSearchRequest, TargetDN: []byte("ou=people,dc=example,dc=com"),
				ClientIP: netip.MustParseAddr("2001:db8::7"), BindDN: "UID=App, ou=Apps,dc=example,dc=com", ConnID: 123456}
			mode := "/per-proxy"
			if consistent {
				mode = "/consistent"
			}
			write := op
			write.Tag = ldapwire.OpModifyRequest
			cases = append(cases,
				routingCase{kind.String() + mode, r, &op, "rotating/affinity"},
				routingCase{kind.String() + mode + "/write", r, &write, "rotating/affinity"})
		}
	}
	return cases
}

// warm routes tc.op once, so that a per-proxy affinity is pinned, and
// checks the outcome.
func warm(tb testing.TB, snap *backend.Snapshot, tc routingCase) {
	tb.Helper()
	tc.r.Candidates(snap, &Operation{Tag: ldapwire.OpAddRequest, ClientIP: tc.op.ClientIP, BindDN: tc.op.BindDN, ConnID: tc.op.ConnID}, nil)
	if got, name := tc.r.Candidates(snap, tc.op, nil); len(got) != 3 || name != tc.want {
		tb.Fatalf("%s: %v via %q, want %q", tc.name, got, name, tc.want)
	}
}

// TestRouterZeroAllocs: in steady state, routing allocates nothing, with
// any kind of criteria and any affinity.
func TestRouterZeroAllocs(t *testing.T) {
	snap := benchRouterSnapshot()
	for _, tc := range append(criteriaCases(t), affinityCases()...) {
		warm(t, snap, tc)
		var buf [16]int
		allocs := testing.AllocsPerRun(100, func() { tc.r.Candidates(snap, tc.op, buf[:0]) })
		if allocs != 0 {
			t.Errorf("%s: %v allocations per operation", tc.name, allocs)
		}
		if tc.r.Affinity != nil {
			allocs = testing.AllocsPerRun(100, func() { tc.r.Record(tc.op, "ds2", ldapwire.Success, time.Now()) })
			if allocs != 0 {
				t.Errorf("%s: Record: %v allocations", tc.name, allocs)
			}
		}
	}
}

func BenchmarkRouterCriteria(b *testing.B) {
	benchRouting(b, criteriaCases(b))
}

func BenchmarkRouterAffinity(b *testing.B) {
	benchRouting(b, affinityCases())
}

func benchRouting(b *testing.B, cases []routingCase) {
	snap := benchRouterSnapshot()
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			warm(b, snap, tc)
			var buf [16]int
			b.ReportAllocs()
			for b.Loop() {
				tc.r.Candidates(snap, tc.op, buf[:0])
			}
		})
	}
}
