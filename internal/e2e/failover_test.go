package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// failoverPool keeps failover fast and observable in tests.
const failoverPool = `pool:
  connections-per-server: 2
  connect-timeout: 1s
  operation-timeout: 2s
  idle-check-interval: 1s
`

// readLoad runs base-object searches from several clients until stopped,
// recording errors and the completion time of every successful read.
//
// A search whose entry already reached the client when its server failed
// cannot move to another server (the client would get the entry twice):
// it fails with a result that says so. Such cut-off reads are counted
// apart; each client has one read in flight, so one fault cuts off at most
// one read per client.
type readLoad struct {
	clients         int
	ok, failed, cut atomic.Int64
	mu              sync.Mutex // mu guards the fields below
	errs            []error
	successes       []time.Time
	maxLatency      time.Duration
	stop            chan struct{}
	wg              sync.WaitGroup
}

func startReadLoad(t *testing.T, addr string, clients int) *readLoad {
	l := &readLoad{clients: clients, stop: make(chan struct{})}
	for c := 0; c < clients; c++ {
		conn := dial(t, addr)
		l.wg.Add(1)
		go l.run(conn, c)
	}
	t.Cleanup(l.halt)
	return l
}

func (l *readLoad) run(conn *ldap.Conn, c int) {
	defer l.wg.Done()
	for i := 0; ; i++ {
		select {
		case <-l.stop:
			return
		default:
		}
		start := time.Now()
		dn := slapdtest.UserDN((c*31+i)%20 + 1)
		_, err := conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"uid"}, nil))
		l.record(start, err)
	}
}

func (l *readLoad) record(start time.Time, err error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil && strings.Contains(err.Error(), "responses already sent to the client") {
		l.cut.Add(1)
		return
	}
	if err != nil {
		l.failed.Add(1)
		l.errs = append(l.errs, err)
		return
	}
	l.ok.Add(1)
	l.successes = append(l.successes, now)
	l.maxLatency = max(l.maxLatency, now.Sub(start))
}

func (l *readLoad) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// firstSuccessAfter is the time from t0 to the first read completed after it
// that started after it as well (approximated by completion order).
func (l *readLoad) firstSuccessAfter(t0 time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.successes {
		if s.After(t0) {
			return s.Sub(t0)
		}
	}
	return -1
}

// waitOps waits until the load completed n more reads.
func (l *readLoad) waitOps(t *testing.T, n int64) {
	target := l.ok.Load() + n
	eventually(t, 30*time.Second, fmt.Sprintf("%d more reads", n), func() bool { return l.ok.Load() >= target })
}

func (l *readLoad) longest() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.maxLatency
}

// errors returns the failed reads, and a made-up one when more reads were
// cut off midway than faults allow (one per client per fault).
func (l *readLoad) errors(faults int) []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	errs := append([]error(nil), l.errs...)
	if cut := l.cut.Load(); cut > int64(faults*l.clients) {
		errs = append(errs, fmt.Errorf("%d reads cut off after their entry, more than one per client per fault (%d clients, %d faults)", cut, l.clients, faults))
	}
	return errs
}

// TestFailoverOnKilledPrimary kills -9 the primary under a steady read load:
// no read fails, and traffic returns to the primary once it is back.
func TestFailoverOnKilledPrimary(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2})
	primary, secondary := cluster.Replicas[0], cluster.Replicas[1]
	_, addr := startProxy(t, cluster, failoverPool)
	load := startReadLoad(t, addr, 8)
	load.waitOps(t, 200)

	killedAt := time.Now()
	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	load.waitOps(t, 500)
	t.Logf("kill -9 of the primary: first successful read %s later; %d reads failed, %d cut off after their entry", load.firstSuccessAfter(killedAt), load.failed.Load(), load.cut.Load())
	if errs := load.errors(1); len(errs) > 0 {
		t.Fatalf("%d reads failed during failover, first: %v", len(errs), errs[0])
	}

	restart(t, primary)
	assertTrafficReturns(t, load, primary, secondary)
}

// TestFailoverOnHungPrimary stops (SIGSTOP) the primary: reads move to the
// secondary within the operation timeout, and come back after SIGCONT.
func TestFailoverOnHungPrimary(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2})
	primary, secondary := cluster.Replicas[0], cluster.Replicas[1]
	_, addr := startProxy(t, cluster, failoverPool)
	load := startReadLoad(t, addr, 8)
	load.waitOps(t, 200)

	if err := primary.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { primary.Resume() })
	before := opCount(t, secondary, "search")
	load.waitOps(t, 300)
	if got := opCount(t, secondary, "search") - before; got < 300 {
		t.Fatalf("secondary served %d searches while the primary hung, want >= 300", got)
	}
	t.Logf("hung primary: longest read %s (operation-timeout 2s), %d reads failed, %d cut off after their entry", load.longest(), load.failed.Load(), load.cut.Load())
	if errs := load.errors(1); len(errs) > 0 {
		t.Fatalf("%d reads failed while the primary hung, first: %v", len(errs), errs[0])
	}
	if longest := load.longest(); longest > 5*time.Second {
		t.Fatalf("a read took %s: failover must happen within the operation timeout plus a retry", longest)
	}

	if err := primary.Resume(); err != nil {
		t.Fatal(err)
	}
	assertTrafficReturns(t, load, primary, secondary)
}

// TestHungServerLeftAtItsHealthCheck stops (SIGSTOP) the primary with the
// operation and bind timeouts far away (60s): once its health check gets no answer
// (1s), the reads and the bind waiting on it move to the secondary and its
// long-lived search ends with unavailable (52), while a write sent to it keeps
// waiting and gets the server's own answer after SIGCONT.
func TestHungServerLeftAtItsHealthCheck(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2})
	primary, secondary := cluster.Replicas[0], cluster.Replicas[1]
	_, addr := startProxy(t, cluster, "health-check-frequency: 200ms\nhealth-check-timeout: 1s\n"+
		"pool:\n  connect-timeout: 1s\n  operation-timeout: 60s\nlimits:\n  bind-timeout: 60s\n")
	writer := bindAs(t, addr, slapdtest.WriterDN, slapdtest.WriterPassword)
	sync := startSync(t, berDial(t, addr), userIdentity(1))
	eventually(t, 20*time.Second, "the sync search's refresh", func() bool { entries, _ := sync.state(); return len(entries) > 0 })
	load := startReadLoad(t, addr, 8)
	load.waitOps(t, 200)

	if err := primary.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { primary.Resume() })
	pausedAt := time.Now()
	written, bound := make(chan error, 1), make(chan error, 1)
	go func() { written <- writer.Add(scratchEntry("during-hang")) }() // the primary still looks healthy
	login := dial(t, addr)
	go func() { bound <- login.Bind(slapdtest.UserDN(2), slapdtest.UserPassword(2)) }()

	before := opCount(t, secondary, "search")
	load.waitOps(t, 300)
	if got := opCount(t, secondary, "search") - before; got < 300 {
		t.Fatalf("secondary served %d searches while the primary hung, want >= 300", got)
	}
	eventually(t, 20*time.Second, "the end of the sync search on the hung server", func() bool { _, ended := sync.state(); return ended != "" })
	_, ended := sync.state()
	t.Logf("hung primary, operation-timeout 60s: reads moved within %s (longest read), sync search ended %s later: %s",
		load.longest(), time.Since(pausedAt).Round(time.Millisecond), ended)
	if !strings.Contains(ended, "result 52") || !strings.Contains(ended, "stopped answering") {
		t.Fatalf("the sync search ended with %s, want unavailable (52) saying the server stopped answering", ended)
	}
	if errs := load.errors(1); len(errs) > 0 {
		t.Fatalf("%d reads failed while the primary hung, first: %v", len(errs), errs[0])
	}
	if longest := load.longest(); longest > 15*time.Second {
		t.Fatalf("a read took %s: it must leave the hung server at its health check, not at the operation timeout", longest)
	}
	select {
	case err := <-bound:
		if err != nil {
			t.Fatalf("a bind sent while the primary hung: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a bind sent while the primary hung was never answered: it must leave the hung server at its health check")
	}
	select {
	case err := <-written:
		t.Fatalf("the write sent to the hung primary was answered before it resumed: %v", err)
	default:
	}

	if err := primary.Resume(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-written:
		if err != nil {
			t.Fatalf("the write held by the resumed primary: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the write was never answered after the primary resumed")
	}
	assertTrafficReturns(t, load, primary, secondary)
}

// scratchEntry is an add request for an entry named cn below the scratch
// container.
func scratchEntry(cn string) *ldap.AddRequest {
	add := ldap.NewAddRequest("cn="+cn+","+slapdtest.ScratchDN, nil)
	add.Attribute("objectClass", []string{"organizationalRole"})
	add.Attribute("cn", []string{cn})
	return add
}

func restart(t *testing.T, r *slapdtest.Replica) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Restart(ctx); err != nil {
		t.Fatal(err)
	}
}

// assertTrafficReturns waits until the primary serves the reads again and
// the secondary only sees health checks.
func assertTrafficReturns(t *testing.T, load *readLoad, primary, secondary *slapdtest.Replica) {
	t.Helper()
	eventually(t, 30*time.Second, "reads back on the primary", func() bool {
		p0, s0 := opCount(t, primary, "search"), opCount(t, secondary, "search")
		load.waitOps(t, 100)
		p1, s1 := opCount(t, primary, "search"), opCount(t, secondary, "search")
		return p1-p0 >= 100 && s1-s0 < 10
	})
	if errs := load.errors(1); len(errs) > 0 {
		t.Fatalf("%d reads failed, first: %v", len(errs), errs[0])
	}
}
