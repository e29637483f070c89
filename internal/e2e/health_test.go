package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/app"
	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// backlogYAML checks every server's replication backlog ten times a second.
const backlogYAML = `health-check-frequency: 100ms
health-check-timeout: 2s
health-checks:
  backlog:
    type: replication-backlog
    use-for-all-servers: true
    degraded-age: 1s
    available-age: 500ms
    unavailable-age: 3s
`

// TestReplicationBacklogFailback: the primary's links to its providers are
// cut while writes go on through another replica. It becomes degraded, then
// unavailable, by backlog, and gets no reads; restarted out of date it
// still gets none; once the links are back and it has caught up it gets
// reads again.
func TestReplicationBacklogFailback(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 3, Users: 5})
	primary, writer := cluster.Replicas[0], cluster.Replicas[1]
	links := relayProviders(t, cluster, primary)
	a, addr := startProxy(t, cluster, backlogYAML)
	client := dial(t, addr)
	eventually(t, 10*time.Second, "every server checked and available", func() bool {
		return allChecked(a, "backlog") && servedBy(t, a, client)[0]
	})

	links.setCut(true)
	stopWrites := writeContinuously(t, writer)
	stopped := time.Now() // the primary misses every write from now on
	eventually(t, 10*time.Second, "reads leaving the primary", func() bool { return !servedBy(t, a, client)[0] })
	degraded := serverHealth(a, 0)
	if degraded.State != backend.Degraded || degraded.Check != "backlog" {
		t.Fatalf("primary left by reads: %+v, want degraded by backlog", degraded)
	}
	eventually(t, 10*time.Second, "the primary unavailable by backlog", func() bool {
		h := serverHealth(a, 0)
		return h.State == backend.Unavailable && h.Check == "backlog"
	})
	t.Logf("primary unavailable %s after degraded: %s", serverHealth(a, 0).Since.Sub(degraded.Since).Round(time.Millisecond), serverHealth(a, 0).Reason)
	assertNoReads(t, a, client, "a lagging primary")

	restartReplica(t, primary) // back out of date: reachable, yet no reads
	runs := a.Checker().Targets()[0].Runs()
	eventually(t, 10*time.Second, "the restarted primary checked", func() bool {
		h := serverHealth(a, 0)
		return a.Checker().Targets()[0].Runs() > runs+2 && h.Check == "backlog" && strings.Contains(h.Reason, "backlog age")
	})
	assertNoReads(t, a, client, "a primary back out of date")

	lastWrite := stopWrites()
	caughtUp := watchCatchUp(t, primary, lastWrite)
	links.setCut(false)
	eventually(t, 10*time.Second, "reads back on the primary", func() bool { return servedBy(t, a, client)[0] })
	back := serverHealth(a, 0)
	t.Logf("MEASURED replication stopped -> no reads (degraded): %s; caught up -> reads again (available): %s",
		degraded.Since.Sub(stopped).Round(time.Millisecond), back.Since.Sub(caughtUp()).Round(time.Millisecond))
	assertNoOverlaps(t, a)
	t.Logf("check runs per server: %d %d %d", a.Checker().Targets()[0].Runs(), a.Checker().Targets()[1].Runs(), a.Checker().Targets()[2].Runs())
}

// assertNoReads checks that ten reads all avoid the primary.
func assertNoReads(t *testing.T, a *app.App, client *ldap.Conn, who string) {
	t.Helper()
	for range 10 {
		if servedBy(t, a, client)[0] {
			t.Fatalf("%s got a read (%+v)", who, serverHealth(a, 0))
		}
	}
}

// TestSlowServerUsedOnlyWhenAvailableOnesAreGone: ds1 is slower than its
// (very low) threshold, so it is degraded: reads go to ds2 until ds2 stops,
// then to ds1, then back to ds2 when it returns.
func TestSlowServerUsedOnlyWhenAvailableOnesAreGone(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: 5})
	extra := `health-check-frequency: 50ms
health-checks:
  slow:
    type: search
    base-dn: ` + slapdtest.PeopleDN + `
    scope: sub
    filter: (objectClass=inetOrgPerson)
    degraded-above: 1us
    unavailable-above: 10s
`
	src := strings.Replace(proxyConfig(cluster, extra), cluster.Replicas[0].Addr+"\n",
		cluster.Replicas[0].Addr+"\n    health-checks: [slow]\n", 1)
	a, addr := startProxyYAML(t, src)
	client := dial(t, addr)
	eventually(t, 10*time.Second, "ds1 degraded as too slow", func() bool {
		h := serverHealth(a, 0)
		return h.State == backend.Degraded && h.Check == "slow" && serverHealth(a, 1).State == backend.Available
	})
	t.Logf("ds1: %s", serverHealth(a, 0).Reason)
	for range 5 {
		if s := servedBy(t, a, client); s[0] || !s[1] {
			t.Fatalf("read served by %v while ds2 is available", s)
		}
	}
	if err := cluster.Replicas[1].Stop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "reads on degraded ds1 once ds2 is gone", func() bool { return servedBy(t, a, client)[0] })
	if h := serverHealth(a, 0); h.State != backend.Degraded {
		t.Errorf("ds1 is %s, want still degraded", h.State)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cluster.Replicas[1].Restart(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "reads back on ds2", func() bool { return servedBy(t, a, client)[1] })
	assertNoOverlaps(t, a)
}

// serverHealth is server i's published health.
func serverHealth(a *app.App, i int) backend.Health { return a.Registry().Snapshot().Servers[i].Health }

// allChecked reports whether every server is available by check.
func allChecked(a *app.App, check string) bool {
	for _, s := range a.Registry().Snapshot().Servers {
		if s.Health.State != backend.Available || s.Health.Check != check {
			return false
		}
	}
	return true
}

// servedBy runs one search through the proxy and reports which servers the
// proxy sent it to.
func servedBy(t *testing.T, a *app.App, client *ldap.Conn) []bool {
	t.Helper()
	before := completedOps(a)
	if _, err := searchDNs(client, slapdtest.PeopleDN, "(uid=user.1)", "cn"); err != nil {
		t.Fatalf("read through the proxy: %v", err)
	}
	var after []int64
	eventually(t, 5*time.Second, "the read counted", func() bool {
		after = completedOps(a)
		return sumOf(after) > sumOf(before)
	})
	served := make([]bool, len(after))
	for i := range after {
		served[i] = after[i] > before[i]
	}
	return served
}

// completedOps counts the operations each server ended for the proxy.
func completedOps(a *app.App) []int64 {
	var n []int64
	for _, s := range a.Servers() {
		c, _ := s.Completed()
		n = append(n, c)
	}
	return n
}

func sumOf(n []int64) (s int64) {
	for _, v := range n {
		s += v
	}
	return s
}

// writeContinuously adds entries to r every 50ms until the returned
// function is called; that returns r's contextCSN after the last write.
func writeContinuously(t *testing.T, r *slapdtest.Replica) (stop func() []string) {
	t.Helper()
	conn, err := r.Dial()
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Bind(slapdtest.AdminDN, slapdtest.AdminPassword); err != nil {
		t.Fatal(err)
	}
	var quit atomic.Bool
	done := make(chan error, 1)
	go func() {
		for i := 0; !quit.Load(); i++ {
			add := ldap.NewAddRequest(fmt.Sprintf("cn=backlog-%d,%s", i, slapdtest.ScratchDN), nil)
			add.Attribute("objectClass", []string{"organizationalRole"})
			add.Attribute("cn", []string{fmt.Sprintf("backlog-%d", i)})
			if err := conn.Add(add); err != nil {
				done <- err
				return
			}
			time.Sleep(50 * time.Millisecond) // the write rate, not a wait for state
		}
		done <- nil
	}()
	return func() []string {
		quit.Store(true)
		if err := <-done; err != nil {
			t.Fatalf("write: %v", err)
		}
		conn.Close()
		csn, err := r.ContextCSN(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return csn
	}
}

// watchCatchUp polls r's contextCSN every 10ms from now on; the returned
// function waits until it equals want and returns when it first did.
func watchCatchUp(t *testing.T, r *slapdtest.Replica, want []string) func() time.Time {
	t.Helper()
	at := make(chan time.Time, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	go func() {
		defer cancel()
		for ctx.Err() == nil {
			pctx, pcancel := context.WithTimeout(ctx, time.Second)
			got, err := r.ContextCSN(pctx)
			pcancel()
			if err == nil && slices.Equal(got, want) {
				at <- time.Now()
				return
			}
			time.Sleep(10 * time.Millisecond) // poll interval
		}
		at <- time.Time{}
	}()
	return func() time.Time {
		t.Helper()
		when := <-at
		if when.IsZero() {
			t.Fatal("the primary did not catch up")
		}
		return when
	}
}

// relays forwards a replica's syncrepl connections to its providers; cut
// drops them (and refuses new ones) to stop its replication.
type relays struct {
	mu    sync.Mutex // mu guards the fields below
	cut   bool
	conns []net.Conn
}

// relayProviders restarts r with its providers reached through relays.
func relayProviders(t *testing.T, c *slapdtest.Cluster, r *slapdtest.Replica) *relays {
	t.Helper()
	conf, err := os.ReadFile(r.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	rs := &relays{}
	for _, p := range c.Replicas {
		if p != r {
			conf = []byte(strings.ReplaceAll(string(conf), "provider="+p.URL+"\n", "provider=ldap://"+rs.listen(t, p.Addr)+"\n"))
		}
	}
	if err := os.WriteFile(r.ConfigFile, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	restartReplica(t, r)
	return rs
}

// listen starts a relay to target and returns its address.
func (rs *relays) listen(t *testing.T, target string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); rs.setCut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			rs.forward(c, target)
		}
	}()
	return ln.Addr().String()
}

// forward connects c to target unless the links are cut.
func (rs *relays) forward(c net.Conn, target string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	up, err := net.Dial("tcp", target)
	if rs.cut || err != nil {
		c.Close()
		return
	}
	rs.conns = append(rs.conns, c, up)
	go relayPipe(c, up)
	go relayPipe(up, c)
}

func relayPipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// setCut cuts or restores the links.
func (rs *relays) setCut(cut bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.cut = cut
	if cut {
		for _, c := range rs.conns {
			c.Close()
		}
		rs.conns = nil
	}
}

// restartReplica restarts r and waits until it answers.
func restartReplica(t *testing.T, r *slapdtest.Replica) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.Restart(ctx); err != nil {
		t.Fatal(err)
	}
}

// assertNoOverlaps checks that checks ran on every server, never two at once.
func assertNoOverlaps(t *testing.T, a *app.App) {
	t.Helper()
	for i, tgt := range a.Checker().Targets() {
		if tgt.Overlaps() != 0 || tgt.Runs() < 2 {
			t.Errorf("server %d: %d runs, %d overlapping", i, tgt.Runs(), tgt.Overlaps())
		}
	}
}
