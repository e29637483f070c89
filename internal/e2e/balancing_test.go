package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// canonicalRouting is the criteria-based configuration of the design issue:
// writes by failover, reads by fewest-operations, a read-after-write
// sensitive client entirely by failover, and bind-DN affinity after writes.
const canonicalRouting = `algorithms:
  writes: {type: failover, servers: [ds1, ds2, ds3]}
  reads:  {type: fewest-operations, servers: [ds1, ds2, ds3]}
routes:
  - match: {operations: [write]}
    algorithm: writes
  - match: {client-bind-dns: ["` + slapdtest.AppDN + `"]}
    algorithm: writes
  - algorithm: reads
affinity:
  type: bind-dn
  duration: 10s
  after: [write]
`

// TestBalancing runs the load-balancing scenarios against one cluster of
// three replicas; the locations scenario, which kills a replica, runs last.
func TestBalancing(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 3, Users: 64})
	t.Run("writes on the first server, reads spread", func(t *testing.T) { testCanonicalRouting(t, cluster) })
	t.Run("parent then child with affinity", func(t *testing.T) { testParentThenChild(t, cluster) })
	t.Run("consistent affinity across two proxies", func(t *testing.T) { testConsistentAffinity(t, cluster) })
	t.Run("locations", func(t *testing.T) { testLocations(t, cluster) })
}

func testCanonicalRouting(t *testing.T, cluster *slapdtest.Cluster) {
	_, addr := startProxy(t, cluster, canonicalRouting)
	writer := bindAs(t, addr, slapdtest.WriterDN, slapdtest.WriterPassword)
	app := bindAs(t, addr, slapdtest.AppDN, slapdtest.AppPassword)

	before := monitorCounts(t, cluster)
	const writes = 20
	for i := range writes {
		dn := fmt.Sprintf("cn=canon-%d,%s", i, slapdtest.ScratchDN)
		if err := writer.Add(roleEntry(dn)); err != nil {
			t.Fatalf("add %s: %v", dn, err)
		}
		if err := writer.Modify(describe(dn, "modified")); err != nil {
			t.Fatalf("modify %s: %v", dn, err)
		}
	}
	for range 20 { // the read-after-write client reads from the writes server
		if err := expectUser(app, 5); err != nil {
			t.Fatal(err)
		}
	}
	after := monitorCounts(t, cluster)
	for _, op := range []string{"add", "modify"} {
		got := deltas(before, after, op)
		if got[0] != writes || got[1] != 0 || got[2] != 0 {
			t.Errorf("%s operations per replica: %v, want all %d on ds1", op, got, writes)
		}
	}
	if got := deltas(before, after, "search"); got[0] < 20 {
		t.Errorf("searches of %s per replica: %v, want them on ds1", slapdtest.AppDN, got)
	}

	for _, clients := range []int{1, 8, 64} {
		got := measureReads(t, cluster, addr, clients, 960/clients)
		t.Logf("fewest-operations, %2d clients: searches per replica %v", clients, got)
		checkFairShare(t, got)
	}
}

// measureReads runs clients concurrent readers, each bound as its own user
// and doing perClient searches, and returns the searches each replica saw.
func measureReads(t *testing.T, cluster *slapdtest.Cluster, addr string, clients, perClient int) []int64 {
	t.Helper()
	conns := make([]*ldap.Conn, clients)
	for c := range conns {
		conns[c] = bindAs(t, addr, slapdtest.UserDN(c+1), slapdtest.UserPassword(c+1))
	}
	before := monitorCounts(t, cluster)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c, conn := range conns {
		wg.Go(func() {
			for i := range perClient {
				if err := expectUser(conn, (c+i)%64+1); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return deltas(before, monitorCounts(t, cluster), "search")
}

// checkFairShare fails if a replica got more than 1.5 times its fair share.
func checkFairShare(t *testing.T, counts []int64) {
	t.Helper()
	var total int64
	for _, c := range counts {
		total += c
	}
	for i, c := range counts {
		if fair := total / int64(len(counts)); c > fair*3/2 {
			t.Errorf("replica %d got %d of %d searches, more than 1.5 × its fair share", i+1, c, total)
		}
	}
}

// testParentThenChild adds parents and children right after them from
// several writer connections while every operation, writes included, is
// balanced by fewest-operations: connection affinity must keep each child
// on its parent's server, and each read-back on the server that wrote it.
func testParentThenChild(t *testing.T, cluster *slapdtest.Cluster) {
	_, addr := startProxy(t, cluster, `load-balancing: {algorithm: fewest-operations}
affinity: {type: client-connection, duration: 10s}
`)
	const writers, perWriter = 4, 50
	before := monitorCounts(t, cluster)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		conn := bindAs(t, addr, slapdtest.WriterDN, slapdtest.WriterPassword)
		wg.Go(func() {
			for i := range perWriter {
				if err := parentAndChild(conn, fmt.Sprintf("aff-%d-%d", w, i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	stop := readInBackground(t, addr)
	wg.Wait()
	reads := stop()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	after := monitorCounts(t, cluster)
	t.Logf("%d parent/child pairs: adds per replica %v; %d background reads, searches per replica %v",
		writers*perWriter, deltas(before, after, "add"), reads, deltas(before, after, "search"))
}

// parentAndChild adds an entry and a child below it at once, then reads
// the child back and modifies it and reads the change back.
func parentAndChild(conn *ldap.Conn, name string) error {
	parent := "ou=" + name + "," + slapdtest.ScratchDN
	add := ldap.NewAddRequest(parent, nil)
	add.Attribute("objectClass", []string{"organizationalUnit"})
	add.Attribute("ou", []string{name})
	if err := conn.Add(add); err != nil {
		return fmt.Errorf("add parent %s: %w", parent, err)
	}
	child := "cn=child," + parent
	if err := conn.Add(roleEntry(child)); err != nil {
		return fmt.Errorf("add child %s right after its parent: %w", child, err)
	}
	if err := conn.Modify(describe(child, name)); err != nil {
		return fmt.Errorf("modify %s: %w", child, err)
	}
	entries, err := searchDNs(conn, child, "(objectClass=*)", "description")
	if err != nil || len(entries) != 1 || entries[0].GetAttributeValue("description") != name {
		return fmt.Errorf("read back %s: %v %v", child, entries, err)
	}
	return nil
}

// readInBackground keeps 4 readers searching until the returned function
// is called; it returns the number of reads done.
func readInBackground(t *testing.T, addr string) func() int {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		reads int
		done  = make(chan struct{})
	)
	for r := range 4 {
		conn := bindAs(t, addr, slapdtest.UserDN(r+1), slapdtest.UserPassword(r+1))
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				if err := expectUser(conn, i%64+1); err != nil {
					t.Errorf("background read: %v", err)
					return
				}
				mu.Lock()
				reads++
				mu.Unlock()
			}
		})
	}
	return func() int {
		close(done)
		wg.Wait()
		return reads
	}
}

// testConsistentAffinity runs two proxies, as behind a network load
// balancer, and sends a client's dependent operations through both: with
// consistent bind-DN affinity they agree on the server without talking.
func testConsistentAffinity(t *testing.T, cluster *slapdtest.Cluster) {
	const cfg = `load-balancing: {algorithm: fewest-operations}
affinity: {type: bind-dn, mode: consistent}
`
	_, addrA := startProxy(t, cluster, cfg)
	_, addrB := startProxy(t, cluster, cfg)
	viaA := bindAs(t, addrA, slapdtest.WriterDN, slapdtest.WriterPassword)
	viaB := bindAs(t, addrB, slapdtest.WriterDN, slapdtest.WriterPassword)
	before := monitorCounts(t, cluster)
	const pairs = 50
	for i := range pairs {
		parent := fmt.Sprintf("ou=cons-%d,%s", i, slapdtest.ScratchDN)
		add := ldap.NewAddRequest(parent, nil)
		add.Attribute("objectClass", []string{"organizationalUnit"})
		add.Attribute("ou", []string{fmt.Sprintf("cons-%d", i)})
		if err := viaA.Add(add); err != nil {
			t.Fatalf("add %s via proxy A: %v", parent, err)
		}
		if err := viaB.Add(roleEntry("cn=child," + parent)); err != nil {
			t.Fatalf("add child of %s via proxy B right after: %v", parent, err)
		}
	}
	adds := deltas(before, monitorCounts(t, cluster), "add")
	t.Logf("consistent affinity: adds per replica %v", adds)
	if max(adds[0], adds[1], adds[2]) != 2*pairs {
		t.Errorf("the writer's adds through two proxies went to several replicas: %v", adds)
	}
}

// testLocations puts ds1 in the proxy's location (east), ds2 in central and
// ds3 in west, east's preferred failover location. With ds1 down, traffic
// goes to west and never to central; it returns to ds1 once it is back.
func testLocations(t *testing.T, cluster *slapdtest.Cluster) {
	yaml := proxyConfig(cluster, `location: east
locations:
  east: {preferred-failover-locations: [west]}
load-balancing: {algorithm: fewest-operations}
`)
	for id, loc := range map[int]string{1: "east", 2: "central", 3: "west"} {
		name := fmt.Sprintf("  - name: ds%d\n", id)
		yaml = strings.Replace(yaml, name, name+"    location: "+loc+"\n", 1)
	}
	_, addr := startProxyYAML(t, yaml)
	conn := bindAs(t, addr, slapdtest.AppDN, slapdtest.AppPassword)
	ds1 := cluster.Replica(1)

	start := monitorCounts(t, cluster)
	compares(t, conn, 30)
	if got := settledDeltas(t, start, func() []map[string]int64 { return monitorCounts(t, cluster) }, "compare", 30); got[0] != 30 || got[1] != 0 || got[2] != 0 {
		t.Fatalf("compares with every server up: %v, want all on ds1 (east)", got)
	}

	if err := ds1.Kill(); err != nil {
		t.Fatal(err)
	}
	down := monitorCountsOf(t, cluster, 2, 3)
	compares(t, conn, 30)
	if got := settledDeltas(t, down, func() []map[string]int64 { return monitorCountsOf(t, cluster, 2, 3) }, "compare", 30); got[1] != 0 || got[2] != 30 {
		t.Fatalf("compares with ds1 down: central %d, west %d; want all 30 on west", got[1], got[2])
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ds1.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "compares back on ds1", func() bool {
		before := monitorCounts(t, cluster)
		compares(t, conn, 10)
		return deltas(before, monitorCounts(t, cluster), "compare")[0] == 10
	})
}

// compares runs n compares that must succeed.
func compares(t *testing.T, conn *ldap.Conn, n int) {
	t.Helper()
	for i := range n {
		ok, err := conn.Compare(slapdtest.UserDN(i%20+1), "sn", fmt.Sprint(i%20+1))
		if err != nil || !ok {
			t.Fatalf("compare %d: %v %v", i, ok, err)
		}
	}
}

// monitorCounts reads every replica's operation counters, ds1 first.
func monitorCounts(t *testing.T, cluster *slapdtest.Cluster) []map[string]int64 {
	t.Helper()
	return monitorCountsOf(t, cluster, 1, 2, 3)
}

// monitorCountsOf reads the counters of the given replicas; the others'
// are left empty.
func monitorCountsOf(t *testing.T, cluster *slapdtest.Cluster, ids ...int) []map[string]int64 {
	t.Helper()
	out := make([]map[string]int64, len(cluster.Replicas))
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		counts, err := cluster.Replica(id).OperationCounts(ctx)
		cancel()
		if err != nil {
			t.Fatalf("monitor of ds%d: %v", id, err)
		}
		out[id-1] = counts
	}
	return out
}

// deltas is the growth of one operation counter on each replica.
func deltas(before, after []map[string]int64, op string) []int64 {
	out := make([]int64, len(before))
	for i := range before {
		out[i] = after[i][op] - before[i][op]
	}
	return out
}

// settledDeltas waits until the replicas counted total operations since
// before (slapd counts an operation just after answering it), then returns
// the per-replica deltas.
func settledDeltas(t *testing.T, before []map[string]int64, fetch func() []map[string]int64, op string, total int64) []int64 {
	t.Helper()
	var got []int64
	eventually(t, 10*time.Second, fmt.Sprintf("%d %s operations counted", total, op), func() bool {
		got = deltas(before, fetch(), op)
		var sum int64
		for _, n := range got {
			sum += n
		}
		return sum >= total
	})
	return got
}

func roleEntry(dn string) *ldap.AddRequest {
	add := ldap.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"organizationalRole"})
	add.Attribute("cn", []string{strings.TrimPrefix(strings.SplitN(dn, ",", 2)[0], "cn=")})
	return add
}

func describe(dn, text string) *ldap.ModifyRequest {
	mod := ldap.NewModifyRequest(dn, nil)
	mod.Replace("description", []string{text})
	return mod
}
