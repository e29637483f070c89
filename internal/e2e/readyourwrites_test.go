package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/app"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// rywDelay slows every replication link down (slapdtest relays).
const rywDelay = 300 * time.Millisecond

// rywRouting: writes by failover (so ds1 takes every write), reads by
// fewest-operations, a lax backlog check that feeds the replication
// positions (a 300 ms delay must not make a server degraded), and the
// affinity under test, over servers ds1 .. dsN.
func rywRouting(n int, affinity string) string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("ds%d", i+1)
	}
	servers := strings.Join(names, ", ")
	return `algorithms:
  writes: {type: failover, servers: [` + servers + `]}
  reads:  {type: fewest-operations, servers: [` + servers + `]}
routes:
  - match: {operations: [write]}
    algorithm: writes
  - algorithm: reads
health-check-frequency: 250ms
health-checks:
  backlog:
    type: replication-backlog
    use-for-all-servers: true
    degraded-age: 60s
    unavailable-age: 120s
` + affinity
}

const untilReplicated = "affinity: {type: client-connection, until: replicated, max-wait: 2s}\n"

// TestReadYourWrites: three replicas replicating through 300 ms relays;
// with affinity until replicated no dependent operation sees stale data,
// reads still spread once replication caught up, and stopped replication
// keeps only the writing client on the writer.
func TestReadYourWrites(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 3, Users: 5, ReplicationDelay: rywDelay})
	a, addr := startProxy(t, cluster, rywRouting(3, untilReplicated))

	t.Run("1000 write-then-read pairs", func(t *testing.T) {
		res := runPairs(t, a, addr, pairLoad{clients: 16, pairs: 1000, prefix: "imm"})
		t.Logf("immediate pairs: %s", res)
		if res.stale != 0 || res.failed != 0 {
			t.Errorf("%d stale reads, %d failed dependent operations; want none (%s)", res.stale, res.failed, strings.Join(res.errors, "; "))
		}
	})
	t.Run("reads spread after the delay", func(t *testing.T) {
		res := runPairs(t, a, addr, pairLoad{clients: 16, pairs: 64, prefix: "late",
			think: func(*rand.Rand) time.Duration { return rywDelay + 400*time.Millisecond }})
		t.Logf("pairs with a pause: %s", res)
		if res.stale != 0 || res.failed != 0 {
			t.Errorf("%d stale reads, %d failed: %s", res.stale, res.failed, strings.Join(res.errors, "; "))
		}
		if res.writerShare() > 0.55 {
			t.Errorf("the writer got %.0f%% of the reads made after replication; want about a third, at most about half", 100*res.writerShare())
		}
	})
	t.Run("post-read stays the proxy's", func(t *testing.T) { testPostReadStripped(t, addr) })
	t.Run("replication stopped", func(t *testing.T) { testReplicationStopped(t, cluster, a, addr) })
	t.Run("writer lost before replicating", func(t *testing.T) { testWriterLost(t, cluster, addr) })
}

// testWriterLost: the writer dies before any other replica has the
// client's write. The client's reads are never answered without it: they
// fail until the writer is back, then find the entry.
func testWriterLost(t *testing.T, cluster *slapdtest.Cluster, addr string) {
	for _, r := range cluster.Relays() {
		r.Hold()
	}
	writer := bindAs(t, addr, slapdtest.WriterDN, slapdtest.WriterPassword)
	dn := "cn=lost," + slapdtest.ScratchDN
	if err := writer.Add(roleEntry(dn)); err != nil {
		t.Fatalf("add: %v", err)
	}
	ds1 := cluster.Replica(1)
	if err := ds1.Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the read refused, naming the writer", func() bool {
		_, err := rywRead(writer, dn)
		if err == nil || ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			t.Fatalf("read answered without the writer: %v", err)
		}
		return ldap.IsErrorWithCode(err, ldap.LDAPResultUnavailable) && strings.Contains(err.Error(), "server ds1, which took this client's last write")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ds1.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range cluster.Relays() {
		r.Release()
	}
	eventually(t, 30*time.Second, "the entry read once the writer is back", func() bool {
		_, err := rywRead(writer, dn)
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			t.Fatalf("stale read after the writer came back: %v", err)
		}
		return err == nil
	})
}

// testPostReadStripped: the Post-Read control the proxy adds to learn a
// write's CSN never reaches the client; a client's own Post-Read request
// is left to the server and its answer passed on.
func testPostReadStripped(t *testing.T, addr string) {
	conn := bindAs(t, addr, slapdtest.WriterDN, slapdtest.WriterPassword)
	dn := "cn=postread," + slapdtest.ScratchDN
	if err := conn.Add(roleEntry(dn)); err != nil {
		t.Fatal(err)
	}
	res, err := conn.ModifyWithResult(describe(dn, "one"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Controls) != 0 {
		t.Errorf("the client got controls it did not ask for: %v", res.Controls)
	}
	mod := describe(dn, "two")
	// SEQUENCE { "description" }: the client's own Post-Read request
	mod.Controls = append(mod.Controls, ldap.NewControlString("1.3.6.1.1.13.2", false, "\x30\x0d\x04\x0bdescription"))
	res, err = conn.ModifyWithResult(mod)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Controls) != 1 || res.Controls[0].GetControlType() != "1.3.6.1.1.13.2" ||
		!strings.Contains(res.Controls[0].String(), "two") {
		t.Errorf("the client's own Post-Read answer: %v", res.Controls)
	}
	if e, err := rywRead(conn, dn); err != nil || e.GetAttributeValue("description") != "two" {
		t.Errorf("read back: %v %v", e, err)
	}
}

// testReplicationStopped: with every replication link held, the writing
// client's reads all go to the writer and find its entry; another client's
// reads spread over the three servers; once replication resumes the writer
// is free again.
func testReplicationStopped(t *testing.T, cluster *slapdtest.Cluster, a *app.App, addr string) {
	for _, r := range cluster.Relays() {
		r.Hold()
	}
	released := false
	release := func() {
		if !released {
			released = true
			for _, r := range cluster.Relays() {
				r.Release()
			}
		}
	}
	defer release()

	writer := bindAs(t, addr, slapdtest.WriterDN, slapdtest.WriterPassword)
	dn := "cn=stopped," + slapdtest.ScratchDN
	if err := writer.Add(roleEntry(dn)); err != nil {
		t.Fatalf("add: %v", err)
	}
	before := forwarded(a)
	for i := range 20 {
		if _, err := rywRead(writer, dn); err != nil {
			t.Fatalf("read %d of the writing client: %v", i, err)
		}
	}
	after := forwarded(a)
	if after[1]-before[1] != 0 || after[2]-before[2] != 0 || after[0]-before[0] != 20 {
		t.Errorf("reads of the writing client: ds1 %d, ds2 %d, ds3 %d; want all 20 on ds1",
			after[0]-before[0], after[1]-before[1], after[2]-before[2])
	}

	other := bindAs(t, addr, slapdtest.WriterDN, slapdtest.WriterPassword)
	before = forwarded(a)
	for i := range 60 {
		if _, err := rywRead(other, slapdtest.ScratchDN); err != nil {
			t.Fatalf("read %d of another client: %v", i, err)
		}
	}
	after = forwarded(a)
	if elsewhere := after[1] - before[1] + after[2] - before[2]; elsewhere < 20 {
		t.Errorf("another client's reads: ds1 %d, ds2 %d, ds3 %d; want them spread",
			after[0]-before[0], after[1]-before[1], after[2]-before[2])
	}

	release()
	eventually(t, 30*time.Second, "the writing client's reads spread again once replicated", func() bool {
		b := forwarded(a)
		if _, err := rywRead(writer, dn); err != nil {
			t.Fatalf("read after release: %v", err)
		}
		e := forwarded(a)
		return e[0] == b[0]
	})
}

// pairLoad is a write-then-read load: each client, on its own connection
// bound as the writer account, does pairs/clients pairs, cycling through
// add-then-read, add-parent-then-child (then read the child, after the
// same think time) and
// modify-then-read, with think time between a write and the operation
// that depends on it.
type pairLoad struct {
	clients, pairs int
	prefix         string
	think          func(*rand.Rand) time.Duration // nil: none
	// reader, when set, is a second proxy (at readAddr) the dependent
	// reads go through, on connections of their own.
	reader   *app.App
	readAddr string
}

// pairResult is what a load saw.
type pairResult struct {
	pairs, stale, failed int
	writes               int64
	reads                int64
	readsOnWriter        int64
	latencies            []time.Duration // of the dependent reads
	errors               []string
}

func (r *pairResult) writerShare() float64 {
	if r.reads == 0 {
		return 0
	}
	return float64(r.readsOnWriter) / float64(r.reads)
}

func (r *pairResult) latency(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	s := slices.Clone(r.latencies)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func (r *pairResult) mean() time.Duration {
	var sum time.Duration
	for _, l := range r.latencies {
		sum += l
	}
	return sum / time.Duration(max(len(r.latencies), 1))
}

func (r *pairResult) String() string {
	return fmt.Sprintf("%d pairs: %d stale reads, %d failed dependent operations, %.1f%% of %d reads on the writer, dependent read latency mean %v p50 %v p99 %v",
		r.pairs, r.stale, r.failed, 100*r.writerShare(), r.reads, r.mean().Round(10*time.Microsecond),
		r.latency(0.5).Round(10*time.Microsecond), r.latency(0.99).Round(10*time.Microsecond))
}

// forwarded is the number of attempts the proxies sent to ds1, ds2 and
// ds3.
func forwarded(apps ...*app.App) [3]int64 {
	var out [3]int64
	for _, a := range apps {
		for _, s := range a.Status().Servers {
			var i int
			if _, err := fmt.Sscanf(s.Name, "ds%d", &i); err == nil && i >= 1 && i <= 3 {
				out[i-1] += s.Forwarded
			}
		}
	}
	return out
}

// runPairs runs the load through the proxy at addr.
func runPairs(t *testing.T, a *app.App, addr string, load pairLoad) *pairResult {
	t.Helper()
	apps := []*app.App{a}
	if load.reader != nil {
		apps = append(apps, load.reader)
	}
	conns, readConns := make([]*ldap.Conn, load.clients), make([]*ldap.Conn, load.clients)
	for c := range conns {
		conns[c] = bindAs(t, addr, slapdtest.WriterDN, slapdtest.WriterPassword)
		readConns[c] = conns[c]
		if load.reader != nil {
			readConns[c] = bindAs(t, load.readAddr, slapdtest.WriterDN, slapdtest.WriterPassword)
		}
		// the entry each client modifies, replicated before the load
		if err := conns[c].Add(roleEntry(fmt.Sprintf("cn=%s-mod-%d,%s", load.prefix, c, slapdtest.ScratchDN))); err != nil {
			t.Fatalf("setup: %v", err)
		}
	}
	waitEverywhere(t, a, conns[0])
	var (
		mu     sync.Mutex
		res    = &pairResult{pairs: load.pairs}
		writes atomic.Int64
		wg     sync.WaitGroup
	)
	before := forwarded(apps...)
	for c, conn := range conns {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for i := c; i < load.pairs; i += load.clients {
				o := runPair(conn, readConns[c], load, rng, c, i, &writes)
				mu.Lock()
				res.add(o)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	after := forwarded(apps...)
	res.writes = writes.Load()
	var total int64
	for i := range after {
		total += after[i] - before[i]
	}
	res.reads = total - res.writes
	res.readsOnWriter = after[0] - before[0] - res.writes
	return res
}

// waitEverywhere waits until the proxy knows every server has every
// change made so far: the setup writes must not count in the load.
func waitEverywhere(t *testing.T, a *app.App, conn *ldap.Conn) {
	t.Helper()
	eventually(t, 30*time.Second, "setup replicated", func() bool {
		b := forwarded(a)
		for range 6 {
			if _, err := rywRead(conn, slapdtest.ScratchDN); err != nil {
				t.Fatalf("read: %v", err)
			}
		}
		e := forwarded(a)
		return e[0]-b[0] < 6
	})
}

// pairOutcome is one pair's result.
type pairOutcome struct {
	stale, failed bool
	latency       time.Duration
	err           string
}

func (r *pairResult) add(o pairOutcome) {
	if o.stale {
		r.stale++
	}
	if o.failed {
		r.failed++
	}
	if o.err != "" && len(r.errors) < 5 {
		r.errors = append(r.errors, o.err)
	}
	if o.latency > 0 {
		r.latencies = append(r.latencies, o.latency)
	}
}

// runPair does pair i of client c.
func runPair(conn, readConn *ldap.Conn, load pairLoad, rng *rand.Rand, c, i int, writes *atomic.Int64) pairOutcome {
	think := func() {
		if load.think != nil {
			time.Sleep(load.think(rng))
		}
	}
	fail := func(what string, err error) pairOutcome {
		return pairOutcome{failed: true, err: fmt.Sprintf("%s: %v", what, err)}
	}
	dn := fmt.Sprintf("cn=%s-%d-%d,%s", load.prefix, c, i, slapdtest.ScratchDN)
	switch i % 3 {
	case 0: // add, then read it back
		if err := conn.Add(roleEntry(dn)); err != nil {
			return fail("add", err)
		}
		writes.Add(1)
		think()
		return timedRead(readConn, dn, "")
	case 1: // add a parent, then its child, then read the child
		if err := conn.Add(roleEntry(dn)); err != nil {
			return fail("add parent", err)
		}
		writes.Add(1)
		think()
		child := "cn=child," + dn
		if err := conn.Add(roleEntry(child)); err != nil {
			return fail("add child", err)
		}
		writes.Add(1)
		think()
		return timedRead(readConn, child, "")
	default: // modify, then read the new value
		target := fmt.Sprintf("cn=%s-mod-%d,%s", load.prefix, c, slapdtest.ScratchDN)
		value := fmt.Sprintf("v%d", i)
		if err := conn.Modify(describe(target, value)); err != nil {
			return fail("modify", err)
		}
		writes.Add(1)
		think()
		return timedRead(readConn, target, value)
	}
}

// timedRead reads dn; it is stale when missing or, with want set, when its
// description is not want.
func timedRead(conn *ldap.Conn, dn, want string) pairOutcome {
	start := time.Now()
	e, err := rywRead(conn, dn)
	o := pairOutcome{latency: time.Since(start)}
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		o.stale, o.err = true, "stale: "+dn+" missing"
	case err != nil:
		o.failed, o.err = true, fmt.Sprintf("read %s: %v", dn, err)
	case want != "" && e.GetAttributeValue("description") != want:
		o.stale, o.err = true, fmt.Sprintf("stale: %s description %q, want %q", dn, e.GetAttributeValue("description"), want)
	}
	return o
}

// readEntry reads one entry with a base search.
func rywRead(conn *ldap.Conn, dn string) (*ldap.Entry, error) {
	res, err := conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"description"}, nil))
	if err != nil {
		return nil, err
	}
	if len(res.Entries) != 1 {
		return nil, errors.New("no entry")
	}
	return res.Entries[0], nil
}

// TestReadYourWritesMeasure compares, under the same load with think time
// between a write and the read that depends on it, no affinity, affinity
// of 100 ms and of 10 s after writes, and affinity until replicated. Set
// LDAPMUX_MEASURE_RYW=1 to run it (about two minutes); the table is in
// docs/balancing.md.
func TestReadYourWritesMeasure(t *testing.T) {
	if os.Getenv("LDAPMUX_MEASURE_RYW") == "" {
		t.Skip("set LDAPMUX_MEASURE_RYW=1 to measure")
	}
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 3, Users: 5, ReplicationDelay: rywDelay})
	think := func(r *rand.Rand) time.Duration { return time.Duration(r.Int64N(int64(2 * rywDelay))) }
	var rows []string
	var base time.Duration
	for _, m := range []struct {
		name, affinity string
		twoProxies     bool
	}{
		{"none", "", false},
		{"affinity 100 ms", "affinity: {type: client-connection, duration: 100ms}\n", false},
		{"affinity 10 s", "affinity: {type: client-connection, duration: 10s}\n", false},
		{"until replicated", untilReplicated, false},
		{"until replicated, reads through a second proxy", untilReplicated, true},
	} {
		t.Run(m.name, func(t *testing.T) {
			a, addr := startProxy(t, cluster, rywRouting(3, m.affinity))
			load := pairLoad{clients: 16, pairs: 1000, prefix: fmt.Sprintf("m%d", len(rows)), think: think}
			if m.twoProxies {
				load.reader, load.readAddr = startProxy(t, cluster, rywRouting(3, m.affinity))
			}
			res := runPairs(t, a, addr, load)
			if base == 0 {
				base = res.mean()
			}
			t.Logf("%s: %s", m.name, res)
			rows = append(rows, fmt.Sprintf("| %s | %d | %d | %.1f%% | %v | %v | %+v |", m.name, res.stale, res.failed,
				100*res.writerShare(), res.latency(0.5).Round(10*time.Microsecond), res.latency(0.99).Round(10*time.Microsecond),
				(res.mean()-base).Round(10*time.Microsecond)))
		})
	}
	t.Logf("\n| affinity | stale reads | failed dependent ops | reads on the writer | read p50 | read p99 | added mean latency |\n|---|---|---|---|---|---|---|\n%s", strings.Join(rows, "\n"))
}
