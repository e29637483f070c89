//go:build linux

package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/app"
	"github.com/ldapmux/ldapmux/internal/dirtest"
)

// ryw389DN is the subtree the writing user may change (ryw389ACI).
const ryw389DN = "ou=ryw," + dirtest.BaseDN

// ryw389Writer is the sample user the writes are made as (through
// ldapmux, by proxied authorization).
const ryw389Writer = 5

// ryw389ACI lets ryw389Writer add, change and delete entries below
// ryw389DN.
var ryw389ACI = `(targetattr="*")(version 3.0; acl "writer manages ryw"; allow (add, write, delete) userdn="ldap:///` +
	dirtest.UserDN(ryw389Writer) + `";)`

// ds389RYWYAML: writes by failover (ds1 takes them all), reads by
// fewest-operations, a lax backlog check (it feeds the replication
// positions; a paused agreement must not make ds2 unusable) and affinity
// until replicated.
func ds389RYWYAML(c *dirtest.DS389Cluster) string {
	return ds389YAML(c, dirtest.ServiceDN, dirtest.ServicePassword, false) + rywRouting(2, untilReplicated389)
}

const untilReplicated389 = "affinity: {type: client-connection, until: replicated, max-wait: 2s, lost-write-timeout: 1m}\n"

// TestDS389ReadYourWrites: two replicated 389 Directory Servers; 389
// answers the proxy's Post-Read with no CSN, so each write's position is
// the writer's replica update vector read after it. A client that writes
// then reads at once never sees stale data through ldapmux (directly, on
// the other server, it does); reads spread once replication caught up;
// with replication paused only the writing client stays on the writer.
func TestDS389ReadYourWrites(t *testing.T) {
	cluster := dirtest.Start389(t, 2)
	prepareRYW389(t, cluster)
	a, addr := startProxyYAML(t, ds389RYWYAML(cluster))
	logHealthOnFailure(t, a)
	eventually(t, 30*time.Second, "both 389 servers checked, available, in proxied-authorization mode", func() bool {
		return all389Ready(a)
	})

	t.Run("directly", func(t *testing.T) {
		res := directPairs389(t, cluster, 2, 8, 200)
		t.Logf("directly, write on ds1 and read at once on ds2: %s", res)
		res = directPairs389(t, cluster, 1, 8, 200)
		t.Logf("directly, write on ds1 and read at once on ds1: %s", res)
		if res.stale != 0 {
			t.Errorf("%d reads on the writer itself were stale: %s", res.stale, strings.Join(res.errors, "; "))
		}
	})
	t.Run("write then read", func(t *testing.T) {
		res := pairs389(t, a, addr, 8, 400, 0)
		t.Logf("through ldapmux: %s", res)
		ok, failed := positionReads(t, a)
		t.Logf("replica update vectors read to place reads: %v, failed %v", ok, failed)
		if ok == 0 || failed != 0 {
			t.Errorf("position reads: %v successful, %v failed; want some, none failed", ok, failed)
		}
		if res.stale != 0 || res.failed != 0 {
			t.Errorf("%d stale reads, %d failed dependent operations; want none (%s)", res.stale, res.failed, strings.Join(res.errors, "; "))
		}
	})
	t.Run("reads spread after replication", func(t *testing.T) {
		res := pairs389(t, a, addr, 8, 64, 500*time.Millisecond)
		t.Logf("through ldapmux, 500 ms between write and read: %s", res)
		if res.stale != 0 || res.failed != 0 {
			t.Errorf("%d stale reads, %d failed: %s", res.stale, res.failed, strings.Join(res.errors, "; "))
		}
		if res.writerShare() > 0.75 {
			t.Errorf("the writer got %.0f%% of the reads made after replication; want about half", 100*res.writerShare())
		}
	})
	t.Run("post-read stays the proxy's", func(t *testing.T) {
		conn := bindAs(t, addr, dirtest.UserDN(ryw389Writer), dirtest.UserPassword(ryw389Writer))
		dn := "cn=postread," + ryw389DN
		if err := conn.Add(roleEntry(dn)); err != nil {
			t.Fatal(err)
		}
		res, err := conn.ModifyWithResult(describe(dn, "one"))
		if err != nil || len(res.Controls) != 0 {
			t.Errorf("modify: %v, controls %v; want success and no control", err, res)
		}
	})
	t.Run("replication paused", func(t *testing.T) { replicationPaused389(t, cluster, a, addr) })
	t.Run("other affinities, for comparison", func(t *testing.T) {
		for _, aff := range []string{"", "affinity: {type: client-connection, duration: 10s}\n"} {
			other, otherAddr := startProxyYAML(t, strings.Replace(ds389RYWYAML(cluster), untilReplicated389, aff, 1))
			eventually(t, 30*time.Second, "both 389 servers ready", func() bool { return all389Ready(other) })
			t.Logf("through ldapmux, affinity %q: %s", strings.TrimSpace(aff), pairs389(t, other, otherAddr, 8, 400, 0))
		}
	})
}

// positionReads is the number of replication position reads ldapmux made
// to place reads, successful and failed.
func positionReads(t *testing.T, a *app.App) (ok, failed float64) {
	t.Helper()
	families, err := a.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "ldapmux_replication_position_reads_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				switch {
				case l.GetName() != "result":
				case l.GetValue() == "success":
					ok = m.GetCounter().GetValue()
				case l.GetValue() == "failure":
					failed = m.GetCounter().GetValue()
				}
			}
		}
	}
	return ok, failed
}

// prepareRYW389 adds ryw389DN with ryw389ACI on instance 1 and waits until
// both instances have it.
func prepareRYW389(t *testing.T, c *dirtest.DS389Cluster) {
	admin := bindAs(t, c.Instance(1).Addr, dirtest.DirectoryManagerDN, dirtest.DirectoryManagerPassword)
	add := ldap.NewAddRequest(ryw389DN, nil)
	add.Attribute("objectClass", []string{"top", "organizationalUnit"})
	add.Attribute("ou", []string{"ryw"})
	add.Attribute("aci", []string{ryw389ACI})
	if err := admin.Add(add); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := c.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
}

// pairs389 runs, on clients connections bound as the writer, pairs
// write-then-read pairs (an add then a read of the new entry, or a modify
// then a read of the new value), with think between a write and its read.
func pairs389(t *testing.T, a *app.App, addr string, clients, pairs int, think time.Duration) *pairResult {
	t.Helper()
	conns := make([]*ldap.Conn, clients)
	prefix := fmt.Sprintf("p%d", time.Now().UnixNano())
	for c := range conns {
		conns[c] = bindAs(t, addr, dirtest.UserDN(ryw389Writer), dirtest.UserPassword(ryw389Writer))
		if err := conns[c].Add(roleEntry(fmt.Sprintf("cn=%s-mod-%d,%s", prefix, c, ryw389DN))); err != nil {
			t.Fatalf("setup: %v", err)
		}
	}
	waitEverywhere389(t, a, conns[0])
	var (
		mu  sync.Mutex
		res = &pairResult{pairs: pairs}
		wg  sync.WaitGroup
	)
	before := forwarded(a)
	var writes int64
	for c, conn := range conns {
		wg.Go(func() {
			for i := c; i < pairs; i += clients {
				o := pair389(conn, prefix, c, i, think)
				mu.Lock()
				writes++
				res.add(o)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	after := forwarded(a)
	var total int64
	for i := range after {
		total += after[i] - before[i]
	}
	res.writes = writes
	res.reads = total - writes
	res.readsOnWriter = after[0] - before[0] - writes
	return res
}

// pair389 is pair i of client c: an add (even i) or a modify (odd), then
// after think a read that must see it.
func pair389(conn *ldap.Conn, prefix string, c, i int, think time.Duration) pairOutcome {
	dn, want := fmt.Sprintf("cn=%s-%d-%d,%s", prefix, c, i, ryw389DN), ""
	var err error
	if i%2 == 0 {
		err = conn.Add(roleEntry(dn))
	} else {
		dn, want = fmt.Sprintf("cn=%s-mod-%d,%s", prefix, c, ryw389DN), fmt.Sprintf("v%d", i)
		err = conn.Modify(describe(dn, want))
	}
	if err != nil {
		return pairOutcome{failed: true, err: fmt.Sprintf("write %s: %v", dn, err)}
	}
	time.Sleep(think)
	return timedRead389(conn, dn, want)
}

// timedRead389 is timedRead where a missing entry also shows as an empty
// answer (389 hides what the reader may not see).
func timedRead389(conn *ldap.Conn, dn, want string) pairOutcome {
	o := timedRead(conn, dn, want)
	if o.failed && strings.HasSuffix(o.err, ": no entry") {
		o.failed, o.stale, o.err = false, true, "stale: "+dn+" missing"
	}
	return o
}

// missing389 reports whether a read found no entry.
func missing389(err error) bool {
	return ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) || err != nil && err.Error() == "no entry"
}

// waitEverywhere389 waits until the proxy knows both servers have every
// change made so far: reads of a client that wrote spread again.
func waitEverywhere389(t *testing.T, a *app.App, conn *ldap.Conn) {
	t.Helper()
	eventually(t, 30*time.Second, "setup replicated", func() bool {
		b := forwarded(a)
		for range 4 {
			if _, err := rywRead(conn, ryw389DN); err != nil {
				t.Fatalf("read: %v", err)
			}
		}
		return forwarded(a)[0]-b[0] < 4
	})
}

// directPairs389 makes the same pairs without ldapmux: each write on
// instance 1, its read at once on instance reader, as the writer.
func directPairs389(t *testing.T, c *dirtest.DS389Cluster, reader, clients, pairs int) *pairResult {
	t.Helper()
	prefix := fmt.Sprintf("d%d", time.Now().UnixNano())
	writers, readers := make([]*ldap.Conn, clients), make([]*ldap.Conn, clients)
	for i := range writers {
		writers[i] = bindAs(t, c.Instance(1).Addr, dirtest.UserDN(ryw389Writer), dirtest.UserPassword(ryw389Writer))
		readers[i] = bindAs(t, c.Instance(reader).Addr, dirtest.UserDN(ryw389Writer), dirtest.UserPassword(ryw389Writer))
		if err := writers[i].Add(roleEntry(fmt.Sprintf("cn=%s-mod-%d,%s", prefix, i, ryw389DN))); err != nil {
			t.Fatalf("setup: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := c.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		res = &pairResult{pairs: pairs}
		wg  sync.WaitGroup
	)
	for cl := range writers {
		wg.Go(func() {
			for i := cl; i < pairs; i += clients {
				dn, want := fmt.Sprintf("cn=%s-%d-%d,%s", prefix, cl, i, ryw389DN), ""
				var err error
				if i%2 == 0 {
					err = writers[cl].Add(roleEntry(dn))
				} else {
					dn, want = fmt.Sprintf("cn=%s-mod-%d,%s", prefix, cl, ryw389DN), fmt.Sprintf("v%d", i)
					err = writers[cl].Modify(describe(dn, want))
				}
				o := pairOutcome{failed: true, err: fmt.Sprintf("write %s: %v", dn, err)}
				if err == nil {
					o = timedRead389(readers[cl], dn, want)
				}
				mu.Lock()
				res.add(o)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if res.failed != 0 {
		t.Errorf("%d direct pairs failed: %s", res.failed, strings.Join(res.errors, "; "))
	}
	return res
}

// replicationPaused389: with replication from ds1 to ds2 paused, the
// writing client's reads all go to ds1 and find its entry, while another
// client's reads spread; once replication resumes the writing client's
// reads spread again.
func replicationPaused389(t *testing.T, c *dirtest.DS389Cluster, a *app.App, addr string) {
	if err := c.PauseReplication(1, 2); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = c.ResumeReplication(1, 2)
		}
	}()
	writer := bindAs(t, addr, dirtest.UserDN(ryw389Writer), dirtest.UserPassword(ryw389Writer))
	dn := "cn=paused," + ryw389DN
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
	if after[0]-before[0] != 20 || after[1]-before[1] != 0 {
		t.Errorf("reads of the writing client: ds1 %d, ds2 %d; want all 20 on ds1", after[0]-before[0], after[1]-before[1])
	}
	direct := bindAs(t, c.Instance(2).Addr, dirtest.UserDN(ryw389Writer), dirtest.UserPassword(ryw389Writer))
	if _, err := rywRead(direct, dn); !missing389(err) {
		t.Errorf("read on ds2 directly while paused: %v; want no entry (replication should be paused)", err)
	}

	other := bindAs(t, addr, dirtest.UserDN(ryw389Writer), dirtest.UserPassword(ryw389Writer))
	before = forwarded(a)
	for i := range 40 {
		if _, err := rywRead(other, ryw389DN); err != nil {
			t.Fatalf("read %d of another client: %v", i, err)
		}
	}
	after = forwarded(a)
	t.Logf("while paused: the writing client's 20 reads all on ds1; another client's 40 reads: ds1 %d, ds2 %d", after[0]-before[0], after[1]-before[1])
	if after[1]-before[1] < 10 {
		t.Errorf("another client's reads: ds1 %d, ds2 %d; want them spread", after[0]-before[0], after[1]-before[1])
	}

	if err := c.ResumeReplication(1, 2); err != nil {
		t.Fatal(err)
	}
	resumed = true
	began := time.Now()
	eventually(t, 30*time.Second, "the writing client's reads spread again once replicated", func() bool {
		b := forwarded(a)
		if _, err := rywRead(writer, dn); err != nil {
			t.Fatalf("read after resuming: %v", err)
		}
		return forwarded(a)[0] == b[0]
	})
	t.Logf("the writing client freed %v after replication resumed", time.Since(began).Round(time.Millisecond))
}
