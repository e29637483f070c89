package route

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/balancer"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// snapshot builds a snapshot of n available servers named ds0, ds1, ...
// with the given locations (cycled).
func snapshot(n int, locations ...string) *backend.Snapshot {
	snap := &backend.Snapshot{}
	for i := range n {
		s := &backend.Server{Index: i, Name: fmt.Sprintf("ds%d", i), Weight: 1}
		if len(locations) > 0 {
			s.Location = locations[i%len(locations)]
		}
		snap.Servers = append(snap.Servers, backend.ServerView{Server: s, Health: backend.Health{State: backend.Available, Score: 10}})
	}
	return snap
}

// withState returns a copy of snap with server i in state st.
func withState(snap *backend.Snapshot, i int, st backend.State) *backend.Snapshot {
	out := &backend.Snapshot{Servers: slices.Clone(snap.Servers)}
	out.Servers[i].Health.State = st
	return out
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func mustDN(t testing.TB, s string) DN {
	t.Helper()
	d, err := ParseDN(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// controls encodes a [0] Controls element holding controls with the given OIDs.
func controls(oids ...string) []byte {
	var content []byte
	for _, oid := range oids {
		content = append(content, 0x30, byte(2+len(oid)), 0x04, byte(len(oid)))
		content = append(content, oid...)
	}
	return append([]byte{0xa0, byte(len(content))}, content...)
}

const (
	appDN    = "uid=app,ou=apps,dc=example,dc=com"
	pagedOID = "1.2.840.113556.1.4.319"
	whoAmI   = "1.3.6.1.4.1.4203.1.11.3"
)

func TestParseOperations(t *testing.T) {
	got, err := ParseOperations([]string{"write", "search"})
	if err != nil || got != OpAdd|OpDelete|OpModify|OpModifyDN|OpSearch {
		t.Errorf("got %b, %v", got, err)
	}
	if _, err := ParseOperations([]string{"lookup"}); err == nil {
		t.Error("lookup accepted")
	}
	for _, name := range OperationNames() {
		if s, err := ParseOperations([]string{name}); err != nil || s == 0 {
			t.Errorf("%s: %b, %v", name, s, err)
		}
	}
	if !OpRead.Has(ldapwire.OpBindRequest) || OpRead.Has(ldapwire.OpExtendedRequest) || OpWrite.Has(ldapwire.OpSearchRequest) {
		t.Error("groups wrong")
	}
}

func TestDN(t *testing.T) {
	a := mustDN(t, "UID=App, OU=Apps,dc=Example,DC=com")
	if a.String() != appDN {
		t.Errorf("normalised = %q", a)
	}
	if !a.Within(mustDN(t, "ou=APPS,dc=example,dc=com")) || !a.Within(a) || !a.Within(mustDN(t, "")) {
		t.Error("Within: subtree not matched")
	}
	if a.Within(mustDN(t, "ou=people,dc=example,dc=com")) || mustDN(t, "dc=com").Within(a) {
		t.Error("Within: outside matched")
	}
	if mustDN(t, `cn=a\,dc=com`).Within(mustDN(t, "dc=com")) {
		t.Error("an escaped comma is not an RDN boundary")
	}
	if !slices.Equal(mustDN(t, "cn=x+sn=y,dc=com"), mustDN(t, "SN=Y+cn=X,dc=com")) {
		t.Error("multi-valued RDN order matters")
	}
	if _, err := ParseDN("uid"); err == nil {
		t.Error("bad DN accepted")
	}
}

func TestCriteria(t *testing.T) {
	search := Operation{Tag: ldapwire.OpSearchRequest, TargetDN: []byte("ou=People,dc=example,dc=com"),
		ClientIP: netip.MustParseAddr("10.1.2.3"), BindDN: "uid=App,ou=apps,dc=example,dc=com"}
	with := func(f func(*Operation)) Operation { op := search; f(&op); return op }
	tests := []struct {
		name string
		crit Criteria
		op   Operation
		want bool
	}{
		{"empty matches all", Criteria{}, search, true},
		{"operation type", Criteria{Ops: OpSearch}, search, true},
		{"read group", Criteria{Ops: OpRead}, search, true},
		{"write group", Criteria{Ops: OpWrite}, search, false},
		{"write group: modify-dn", Criteria{Ops: OpWrite}, with(func(o *Operation) { o.Tag = ldapwire.OpModifyDNRequest }), true},
		{"write group: delete", Criteria{Ops: OpWrite}, with(func(o *Operation) { o.Tag = ldapwire.OpDelRequest }), true},
		{"extended is not read", Criteria{Ops: OpRead}, with(func(o *Operation) { o.Tag = ldapwire.OpExtendedRequest }), false},
		{"network", Criteria{Networks: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("10.0.0.0/8")}}, search, true},
		{"other network", Criteria{Networks: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16")}}, search, false},
		{"IPv4-mapped client", Criteria{Networks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			with(func(o *Operation) { o.ClientIP = netip.MustParseAddr("::ffff:10.1.2.3") }), true},
		{"IPv6 network", Criteria{Networks: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}},
			with(func(o *Operation) { o.ClientIP = netip.MustParseAddr("2001:db8::1") }), true},
		{"bind DN exact, case and spaces ignored", Criteria{BindDNs: []DN{mustDN(t, "uid=APP, ou=Apps,dc=example,dc=com")}}, search, true},
		{"bind DN exact is not subtree", Criteria{BindDNs: []DN{mustDN(t, "ou=apps,dc=example,dc=com")}}, search, false},
		{"bind DN subtree", Criteria{BindSubtrees: []DN{mustDN(t, "ou=apps,dc=example,dc=com")}}, search, true},
		{"bind DN other subtree", Criteria{BindSubtrees: []DN{mustDN(t, "ou=people,dc=example,dc=com")}}, search, false},
		{"anonymous has no bind DN", Criteria{BindSubtrees: []DN{mustDN(t, "dc=example,dc=com")}}, with(func(o *Operation) { o.BindDN = "" }), false},
		{"a bind is routed by the DN it binds", Criteria{BindDNs: []DN{mustDN(t, "uid=other,ou=apps,dc=example,dc=com")}},
			with(func(o *Operation) {
				o.Tag, o.TargetDN = ldapwire.OpBindRequest, []byte("uid=other,ou=apps,dc=example,dc=com")
			}), true},
		{"target subtree", Criteria{TargetSubtrees: []DN{mustDN(t, "ou=people,dc=example,dc=com")}}, search, true},
		{"target other subtree", Criteria{TargetSubtrees: []DN{mustDN(t, "ou=groups,dc=example,dc=com")}}, search, false},
		{"target invalid DN", Criteria{TargetSubtrees: []DN{mustDN(t, "")}}, with(func(o *Operation) { o.TargetDN = []byte("garbage") }), false},
		{"control present", Criteria{Controls: []string{"1.2.3", pagedOID}}, with(func(o *Operation) { o.Controls = controls("9.9", pagedOID) }), true},
		{"control absent", Criteria{Controls: []string{pagedOID}}, with(func(o *Operation) { o.Controls = controls("9.9") }), false},
		{"no controls", Criteria{Controls: []string{pagedOID}}, search, false},
		{"malformed controls", Criteria{Controls: []string{pagedOID}}, with(func(o *Operation) { o.Controls = []byte{0xa0, 9, 0x30} }), false},
		{"extended OID", Criteria{ExtendedOIDs: []string{whoAmI}},
			with(func(o *Operation) { o.Tag, o.ExtendedOID = ldapwire.OpExtendedRequest, []byte(whoAmI) }), true},
		{"other extended OID", Criteria{ExtendedOIDs: []string{whoAmI}},
			with(func(o *Operation) { o.Tag, o.ExtendedOID = ldapwire.OpExtendedRequest, []byte("1.2.3") }), false},
		{"extended OID needs an extended operation", Criteria{ExtendedOIDs: []string{whoAmI}}, search, false},
		{"all criteria must hold", Criteria{Ops: OpSearch, Networks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			BindSubtrees: []DN{mustDN(t, "dc=example,dc=com")}, TargetSubtrees: []DN{mustDN(t, "ou=groups,dc=example,dc=com")}}, search, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.crit.Matches(&view{op: &tt.op}); got != tt.want {
				t.Errorf("Matches = %v, want %v", got, tt.want)
			}
		})
	}
	if !(&Criteria{}).Empty() || (&Criteria{Controls: []string{"1.2"}}).Empty() {
		t.Error("Empty wrong")
	}
}

// canonical builds the router of the design issue over three servers:
// writes by failover, the read-after-write client by failover, the rest by
// fewest-operations.
func canonical(t testing.TB, rnd balancer.Rand) *Router {
	writes := balancer.Failover{Tiers: balancer.Flat(seq(3))}
	reads := &balancer.FewestOps{Tiers: balancer.Flat(seq(3)), Rand: rnd}
	return &Router{
		Routes: []Route{
			{Name: "writes", Match: Criteria{Ops: OpWrite}, Algorithm: writes},
			{Name: "writes", Match: Criteria{BindDNs: []DN{mustDN(t, appDN)}}, Algorithm: writes},
			{Name: "reads", Algorithm: reads},
		},
		Default: writes,
	}
}

func TestRouterCanonical(t *testing.T) {
	snap := snapshot(3)
	r := canonical(t, func(n int) int { return n - 1 }) // shuffle leaves the order
	tests := []struct {
		op       Operation
		wantName string
		want     []int
	}{
		{Operation{Tag: ldapwire.OpAddRequest, BindDN: "uid=x"}, "writes", []int{0, 1, 2}},
		{Operation{Tag: ldapwire.OpModifyDNRequest}, "writes", []int{0, 1, 2}},
		{Operation{Tag: ldapwire.OpSearchRequest, BindDN: "UID=app,ou=apps,dc=example,dc=com"}, "writes", []int{0, 1, 2}},
		{Operation{Tag: ldapwire.OpSearchRequest, BindDN: "uid=other,ou=apps,dc=example,dc=com"}, "reads", []int{0, 1, 2}},
		{Operation{Tag: ldapwire.OpBindRequest, TargetDN: []byte(appDN)}, "writes", []int{0, 1, 2}},
	}
	for _, tt := range tests {
		got, name := r.Candidates(snap, &tt.op, nil)
		if name != tt.wantName || !slices.Equal(got, tt.want) {
			t.Errorf("op %+v: %v via %s; want %v via %s", tt.op, got, name, tt.want, tt.wantName)
		}
	}
	// Reads spread; writes do not.
	r = canonical(t, nil)
	firsts := map[string]map[int]int{"read": {}, "write": {}}
	for range 300 {
		got, _ := r.Candidates(snap, &Operation{Tag: ldapwire.OpSearchRequest}, nil)
		firsts["read"][got[0]]++
		got, _ = r.Candidates(snap, &Operation{Tag: ldapwire.OpModifyRequest}, nil)
		firsts["write"][got[0]]++
	}
	if len(firsts["read"]) != 3 || firsts["write"][0] != 300 {
		t.Errorf("first choices: %v", firsts)
	}
}

func TestRouterDefault(t *testing.T) {
	snap := snapshot(2)
	def := balancer.Failover{Tiers: balancer.Flat([]int{1, 0})}
	r := &Router{Routes: []Route{{Match: Criteria{Ops: OpAdd}, Algorithm: balancer.Failover{Tiers: balancer.Flat(seq(2))}}}, Default: def}
	if got, name := r.Candidates(snap, &Operation{Tag: ldapwire.OpAddRequest}, nil); name != "failover" || got[0] != 0 {
		t.Errorf("add: %v via %s", got, name)
	}
	if got, _ := r.Candidates(snap, &Operation{Tag: ldapwire.OpSearchRequest}, nil); got[0] != 1 {
		t.Errorf("search (no route): %v", got)
	}
	dst := []int{7}
	if got, _ := r.Candidates(snap, &Operation{Tag: ldapwire.OpSearchRequest}, dst); !slices.Equal(got, []int{7, 1, 0}) {
		t.Errorf("appends to dst: %v", got)
	}
	if got, _ := r.Candidates(withState(withState(snap, 0, backend.Unavailable), 1, backend.Unavailable), &Operation{}, nil); len(got) != 0 {
		t.Errorf("no usable server: %v", got)
	}
}

func TestLocality(t *testing.T) {
	locs := []string{"west", "east", "central", "east", "", "west"}
	l := Locality{Enabled: true, Local: "east", Preferred: []string{"west"}}
	if got := l.TierOf(locs); !slices.Equal(got, []int{1, 0, 2, 0, 2, 1}) {
		t.Errorf("TierOf = %v", got)
	}
	got := l.Tiers(seq(6), locs)
	want := [][]int{{1, 3}, {0, 5}, {2, 4}}
	if !slices.EqualFunc(got.Groups, want, slices.Equal) {
		t.Errorf("Tiers = %v, want %v", got.Groups, want)
	}
	if got := l.Tiers([]int{5, 2}, locs); !slices.EqualFunc(got.Groups, [][]int{{5}, {2}}, slices.Equal) {
		t.Errorf("Tiers without local servers = %v", got.Groups)
	}
	for _, off := range []Locality{{Enabled: false, Local: "east"}, {Enabled: true}} {
		if got := off.Tiers(seq(6), locs); len(got.Groups) != 1 || off.Tier("west") != 0 {
			t.Errorf("%+v: Tiers = %v", off, got.Groups)
		}
	}
}

// TestLocationFailover walks the failover order of the location example:
// local servers, then the preferred failover location, then the others.
func TestLocationFailover(t *testing.T) {
	locs := []string{"east", "central", "west", "east"}
	snap := snapshot(4, locs...)
	l := Locality{Enabled: true, Local: "east", Preferred: []string{"west"}}
	alg := balancer.Failover{Tiers: l.Tiers(seq(4), locs)}
	steps := []struct {
		snap *backend.Snapshot
		want []int
	}{
		{snap, []int{0, 3, 2, 1}},
		{withState(snap, 0, backend.Unavailable), []int{3, 2, 1}},
		{withState(withState(snap, 0, backend.Unavailable), 3, backend.Unavailable), []int{2, 1}},
		{withState(withState(snap, 0, backend.Unavailable), 3, backend.Degraded), []int{2, 1, 3}},
	}
	for i, s := range steps {
		if got := alg.Candidates(s.snap, nil); !slices.Equal(got, s.want) {
			t.Errorf("step %d: %v, want %v", i, got, s.want)
		}
	}
	l.DegradedFirst = true
	alg = balancer.Failover{Tiers: l.Tiers(seq(4), locs)}
	if got := alg.Candidates(steps[3].snap, nil); !slices.Equal(got, []int{3, 2, 1}) {
		t.Errorf("prefer degraded local: %v", got)
	}
}

func TestRouterConcurrentUse(t *testing.T) {
	snap := snapshot(3)
	r := canonical(t, nil)
	r.Affinity = &Affinity{Kind: ByConnection, Duration: time.Second, After: OpWrite, Table: NewAffinityTable(50)}
	var wg sync.WaitGroup
	for c := range 16 {
		wg.Go(func() {
			for i := range 300 {
				op := &Operation{Tag: ldapwire.OpAddRequest, ConnID: uint64(c*1000 + i%70)}
				if i%2 == 0 {
					op.Tag = ldapwire.OpSearchRequest
				}
				got, _ := r.Candidates(snap, op, nil)
				r.Record(op, snap.Servers[got[0]].Name, ldapwire.Success, time.Now())
			}
		})
	}
	wg.Wait()
	if n := r.Affinity.Table.Len(); n > 50 {
		t.Errorf("table holds %d entries, limit 50", n)
	}
}

func BenchmarkRouterCanonical(b *testing.B) {
	snap := snapshot(3)
	r := canonical(b, nil)
	r.Affinity = &Affinity{Kind: ByBindDN, Duration: time.Second, After: OpWrite, Table: NewAffinityTable(0)}
	op := &Operation{Tag: ldapwire.OpSearchRequest, BindDN: "uid=user.1,ou=people,dc=example,dc=com",
		TargetDN: []byte("ou=people,dc=example,dc=com")}
	var buf [16]int
	for b.Loop() {
		r.Candidates(snap, op, buf[:0])
	}
}

// TestPlainDNFastPath checks that the fast path normalises exactly like
// the full parser.
func TestPlainDNFastPath(t *testing.T) {
	for i, s := range []string{
		"uid=app,ou=apps,dc=example,dc=com", "UID=App , OU=Apps,  dc=Example,DC=com ", "cn=John Smith,dc=x",
		"mail=a.b-c_d@example.com,o=x", "cn= spaced ,dc=x", "2.5.4.3=x,dc=y", "cn=a:b,dc=c",
		"cn=a\\,b,dc=c", "cn=x+sn=y,dc=z", "cn=#41,dc=x", "cn=a=b,dc=c", "cn=é,dc=x", "cn=,dc=x", "=x", "cn=a;dc=b", "",
	} {
		ld, err := ldap.ParseDN(s)
		var slow DN
		if err == nil {
			for _, r := range ld.RDNs {
				slow = append(slow, strings.ToLower(r.String()))
			}
		}
		fast, ok := parsePlainDN(s)
		if i < 7 && !ok {
			t.Errorf("%q: not on the fast path", s)
		}
		if ok && (err != nil || !slices.Equal(fast, slow) && !(len(fast) == 0 && len(slow) == 0)) {
			t.Errorf("%q: fast path %q, parser %q (%v)", s, fast, slow, err)
		}
	}
}
