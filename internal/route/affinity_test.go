package route

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/balancer"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// clock is an injected, manually advanced clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

// rotating is an algorithm whose first candidate changes on every call, so
// that only affinity can keep a client on one server.
type rotating struct{ rr *balancer.RoundRobin }

func (r rotating) Name() string { return "rotating" }
func (r rotating) Candidates(snap *backend.Snapshot, dst []int) []int {
	return r.rr.Candidates(snap, dst)
}

func affinityRouter(kind AffinityKind, clk *clock, n int) *Router {
	alg := rotating{&balancer.RoundRobin{Tiers: balancer.Flat(seq(n))}}
	return &Router{
		Default:  alg,
		Affinity: &Affinity{Kind: kind, Duration: 10 * time.Second, After: OpWrite, Table: NewAffinityTable(0)},
		Now:      clk.now,
	}
}

// first routes op and returns the first candidate's name.
func first(r *Router, snap *backend.Snapshot, op *Operation) string {
	got, _ := r.Candidates(snap, op, nil)
	if len(got) == 0 {
		return ""
	}
	return snap.Servers[got[0]].Name
}

func TestAffinityFollowsWrites(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	snap := snapshot(3)
	r := affinityRouter(ByConnection, clk, 3)
	add := &Operation{Tag: ldapwire.OpAddRequest, ConnID: 7}
	search := &Operation{Tag: ldapwire.OpSearchRequest, ConnID: 7}

	// Reads alone set no affinity: they rotate.
	if a, b := first(r, snap, search), first(r, snap, search); a == b {
		t.Fatalf("reads without affinity did not rotate: %s %s", a, b)
	}
	pinned := first(r, snap, add) // pinned at dispatch
	for i := range 5 {
		if got, name := r.Candidates(snap, search, nil); snap.Servers[got[0]].Name != pinned || name != "rotating/affinity" {
			t.Fatalf("read %d after the write went to %s via %s, want %s", i, snap.Servers[got[0]].Name, name, pinned)
		}
	}
	if other := first(r, snap, &Operation{Tag: ldapwire.OpSearchRequest, ConnID: 8}); other == "" {
		t.Fatal("no candidate")
	}
	clk.advance(9 * time.Second)
	if got := first(r, snap, search); got != pinned {
		t.Errorf("before expiry: %s, want %s", got, pinned)
	}
	clk.advance(time.Second)
	seen := map[string]bool{}
	for range 3 {
		seen[first(r, snap, search)] = true
	}
	if len(seen) != 3 {
		t.Errorf("after expiry reads still pinned: %v", seen)
	}
}

func TestAffinityRecordCorrectsDispatchPin(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	snap := snapshot(3)
	r := affinityRouter(ByConnection, clk, 3)
	add := &Operation{Tag: ldapwire.OpAddRequest, ConnID: 1}
	dispatched := first(r, snap, add)
	answered := "ds2"
	if dispatched == answered {
		answered = "ds1"
	}
	r.Record(add, answered, ldapwire.Success, clk.now()) // failed over to another server
	if got := first(r, snap, &Operation{Tag: ldapwire.OpSearchRequest, ConnID: 1}); got != answered {
		t.Errorf("after Record(%s): %s", answered, got)
	}
	r.Record(add, dispatched, ldapwire.UnwillingToPerform, clk.now())
	if got := first(r, snap, &Operation{Tag: ldapwire.OpSearchRequest, ConnID: 1}); got != answered {
		t.Errorf("a failed write moved affinity to %s", got)
	}
	r.Record(&Operation{Tag: ldapwire.OpSearchRequest, ConnID: 1}, dispatched, ldapwire.Success, clk.now())
	if got := first(r, snap, &Operation{Tag: ldapwire.OpSearchRequest, ConnID: 1}); got != answered {
		t.Errorf("a search (not in after) moved affinity to %s", got)
	}
}

func TestAffinityOnlyWhileUsable(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	snap := snapshot(3)
	r := affinityRouter(ByConnection, clk, 3)
	r.Record(&Operation{Tag: ldapwire.OpModifyRequest, ConnID: 1}, "ds1", ldapwire.Success, clk.now())
	search := &Operation{Tag: ldapwire.OpSearchRequest, ConnID: 1}
	if got := first(r, snap, search); got != "ds1" {
		t.Fatalf("pinned to %s", got)
	}
	down := withState(snap, 1, backend.Unavailable)
	for range 3 {
		if got := first(r, down, search); got == "ds1" || got == "" {
			t.Fatalf("unavailable affinity server chosen: %q", got)
		}
	}
	if got := first(r, withState(snap, 1, backend.Degraded), search); got != "ds1" {
		t.Errorf("degraded but usable affinity server not kept: %s", got)
	}
	if got := first(r, snap, search); got != "ds1" {
		t.Errorf("affinity not back once usable: %s", got)
	}
}

func TestAffinityKinds(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	snap := snapshot(4)
	ip := netip.MustParseAddr("192.0.2.1")
	tests := []struct {
		kind        AffinityKind
		write, same Operation
		other       Operation
	}{
		{ByConnection,
			Operation{Tag: ldapwire.OpAddRequest, ConnID: 1, ClientIP: ip},
			Operation{Tag: ldapwire.OpSearchRequest, ConnID: 1},
			Operation{Tag: ldapwire.OpSearchRequest, ConnID: 2, ClientIP: ip}},
		{ByClientIP,
			Operation{Tag: ldapwire.OpAddRequest, ConnID: 1, ClientIP: ip},
			Operation{Tag: ldapwire.OpSearchRequest, ConnID: 2, ClientIP: ip},
			Operation{Tag: ldapwire.OpSearchRequest, ConnID: 1, ClientIP: netip.MustParseAddr("192.0.2.2")}},
		{ByBindDN,
			Operation{Tag: ldapwire.OpAddRequest, ConnID: 1, BindDN: appDN},
			Operation{Tag: ldapwire.OpSearchRequest, ConnID: 2, BindDN: "UID=app, ou=Apps,dc=example,dc=com"},
			Operation{Tag: ldapwire.OpSearchRequest, ConnID: 1, BindDN: ""}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.kind), func(t *testing.T) {
			r := affinityRouter(tt.kind, clk, 4)
			r.Record(&tt.write, "ds3", ldapwire.Success, clk.now())
			for range 4 {
				if got := first(r, snap, &tt.same); got != "ds3" {
					t.Fatalf("same client went to %s", got)
				}
			}
			seen := map[string]bool{}
			for range 4 {
				seen[first(r, snap, &tt.other)] = true
			}
			if len(seen) != 4 {
				t.Errorf("another client was pinned: %v", seen)
			}
		})
	}
}

func TestAffinityTableBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	tab := NewAffinityTable(100)
	for i := range 1000 {
		tab.Set(affinityKey{kind: ByConnection, conn: uint64(i)}, nil, "ds0", now, now.Add(time.Minute))
	}
	if n := tab.Len(); n != 100 {
		t.Errorf("Len = %d, want 100", n)
	}
	if _, ok := tab.Get(affinityKey{kind: ByConnection, conn: 0}, nil, now); ok {
		t.Error("oldest entry kept beyond the limit")
	}
	if s, ok := tab.Get(affinityKey{kind: ByConnection, conn: 999}, nil, now); !ok || s != "ds0" {
		t.Error("newest entry lost")
	}
	// Expired entries are dropped as new ones arrive.
	later := now.Add(2 * time.Minute)
	tab.Set(affinityKey{kind: ByClientIP, ip: netip.MustParseAddr("::1")}, nil, "ds1", later, later.Add(time.Minute))
	if n := tab.Len(); n != 1 {
		t.Errorf("Len after expiry = %d, want 1", n)
	}
	if _, ok := tab.Get(affinityKey{kind: ByClientIP, ip: netip.MustParseAddr("::1")}, nil, later.Add(time.Minute)); ok {
		t.Error("entry alive at its expiry time")
	}
	if NewAffinityTable(0).max != DefaultAffinityEntries {
		t.Error("default size")
	}
}

func consistentRouter(snap *backend.Snapshot, tierOf []int) *Router {
	alg := rotating{&balancer.RoundRobin{Tiers: balancer.Flat(seq(len(snap.Servers)))}}
	return &Router{Default: alg, Affinity: &Affinity{Kind: ByBindDN, Consistent: true, TierOf: tierOf}}
}

// TestConsistentAffinityAgreesAcrossInstances builds two independent
// routers, as two proxies would, and checks they pick the same server for
// every identity, whatever the operation and the algorithm's own order.
func TestConsistentAffinityAgreesAcrossInstances(t *testing.T) {
	snap := snapshot(3)
	a, b := consistentRouter(snap, nil), consistentRouter(snap, nil)
	counts := map[string]int{}
	for i := range 3000 {
		dn := fmt.Sprintf("uid=user.%d,ou=people,dc=example,dc=com", i)
		add := &Operation{Tag: ldapwire.OpAddRequest, BindDN: dn}
		read := &Operation{Tag: ldapwire.OpSearchRequest, BindDN: "UID=" + dn[4:]}
		ga, gb := first(a, snap, add), first(b, snap, read)
		if ga != gb {
			t.Fatalf("%s: instance a picked %s, instance b %s", dn, ga, gb)
		}
		counts[ga]++
	}
	for name, c := range counts {
		if c < 900 || c > 1100 {
			t.Errorf("identities spread unevenly: %s has %d of 3000 (%v)", name, c, counts)
		}
	}
	if got, name := a.Candidates(snap, &Operation{Tag: ldapwire.OpSearchRequest}, nil); len(got) != 3 || name != "rotating" {
		t.Errorf("anonymous client: %v via %s", got, name)
	}
}

// TestConsistentAffinityMinimalMovement: when a server becomes unusable only
// its clients move, and they come back when it returns.
func TestConsistentAffinityMinimalMovement(t *testing.T) {
	snap := snapshot(3)
	r := consistentRouter(snap, nil)
	down := withState(snap, 2, backend.Unavailable)
	moved := 0
	for i := range 1000 {
		op := &Operation{Tag: ldapwire.OpSearchRequest, BindDN: fmt.Sprintf("uid=u%d,dc=example,dc=com", i)}
		before, during, after := first(r, snap, op), first(r, down, op), first(r, snap, op)
		if before != "ds2" && during != before {
			t.Fatalf("%s moved from %s to %s though its server stayed up", op.BindDN, before, during)
		}
		if before == "ds2" {
			moved++
		}
		if after != before {
			t.Fatalf("%s did not come back: %s then %s", op.BindDN, before, after)
		}
	}
	if moved == 0 {
		t.Error("no client was on ds2")
	}
}

// TestConsistentAffinityBestGroup: the hash only chooses among servers as
// good as the first candidate (same location tier and state).
func TestConsistentAffinityBestGroup(t *testing.T) {
	snap := withState(snapshot(4), 1, backend.Degraded)
	tierOf := []int{0, 0, 0, 1} // ds3 is remote
	alg := balancer.Failover{Tiers: balancer.Tiers{Groups: [][]int{{0, 1, 2}, {3}}}}
	r := &Router{Default: alg, Affinity: &Affinity{Kind: ByClientIP, Consistent: true, TierOf: tierOf}}
	counts := map[string]int{}
	for i := range 500 {
		op := &Operation{Tag: ldapwire.OpSearchRequest, ClientIP: netip.AddrFrom4([4]byte{10, 0, byte(i / 256), byte(i)})}
		counts[first(r, snap, op)]++
	}
	if counts["ds1"] != 0 || counts["ds3"] != 0 || counts["ds0"] == 0 || counts["ds2"] == 0 {
		t.Errorf("consistent picks outside the best group: %v", counts)
	}
}

func TestParseAffinityKind(t *testing.T) {
	for s, want := range map[string]AffinityKind{"client-connection": ByConnection, "client-ip": ByClientIP, "bind-dn": ByBindDN} {
		if k, err := ParseAffinityKind(s); err != nil || k != want {
			t.Errorf("%s: %v %v", s, k, err)
		}
	}
	if _, err := ParseAffinityKind("cookie"); err == nil {
		t.Error("cookie accepted")
	}
}

// TestIdentityHash: consistent mode hashes the same identity text as
// before (decimal connection number, unmapped address, normalised DN), so
// that proxies of different versions agree.
func TestIdentityHash(t *testing.T) {
	tests := []struct {
		kind AffinityKind
		op   Operation
		text string
	}{
		{ByConnection, Operation{ConnID: 7}, "7"},
		{ByConnection, Operation{ConnID: 18446744073709551615}, "18446744073709551615"},
		{ByClientIP, Operation{ClientIP: netip.MustParseAddr("192.0.2.1")}, "192.0.2.1"},
		{ByClientIP, Operation{ClientIP: netip.MustParseAddr("::ffff:192.0.2.1")}, "192.0.2.1"},
		{ByClientIP, Operation{ClientIP: netip.MustParseAddr("fe80::1%eth0")}, "fe80::1%eth0"},
		{ByBindDN, Operation{Tag: ldapwire.OpSearchRequest, BindDN: "UID=App, ou=Apps,dc=example,dc=com"}, appDN},
		{ByBindDN, Operation{Tag: ldapwire.OpBindRequest, TargetDN: []byte(`cn=a\2Cb + sn=X,dc=com`)}, mustDN(t, `SN=x+CN=a\,b,dc=com`).String()},
		{ByBindDN, Operation{Tag: ldapwire.OpSearchRequest, BindDN: "cn=#0403616263,dc=com"}, "cn=abc,dc=com"},
	}
	for _, tt := range tests {
		a := &Affinity{Kind: tt.kind, Consistent: true}
		h, ok := a.identityHash(&view{op: &tt.op})
		if !ok || h != fnv(fnvOffset, tt.text) {
			t.Errorf("%v %+v: hash %x (%v), want that of %q", tt.kind, tt.op, h, ok, tt.text)
		}
	}
	if _, ok := (&Affinity{Kind: ByBindDN}).identityHash(&view{op: &Operation{BindDN: " "}}); ok {
		t.Error("anonymous client hashed")
	}
}
