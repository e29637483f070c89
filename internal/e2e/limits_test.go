package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(entries)
}

// dialMany opens n connections to addr, 32 at a time.
func dialMany(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
				if err != nil {
					errs <- err
					return
				}
				conns[i] = nc
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("dial: %v", err)
	}
	return conns
}

// refusedWithBusy reports whether nc got a busy notice and was closed.
func refusedWithBusy(nc net.Conn, wait time.Duration) bool {
	nc.SetReadDeadline(time.Now().Add(wait))
	frame, err := ldapwire.NewReader(nc, 0).Next()
	if err != nil {
		return false
	}
	msg, err := ldapwire.Parse(frame)
	if err != nil || msg.ID != 0 {
		return false
	}
	res, err := ldapwire.ParseResult(msg.Body)
	return err == nil && res.Code == ldapwire.Busy
}

// TestConnectionFlood opens 2000 connections against a limit of 500: the
// excess is refused at once with busy, the 500 held work, memory and file
// descriptors stay bounded, and everything is released afterwards.
func TestConnectionFlood(t *testing.T) {
	const limit, flood = 500, 2000
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 3})
	a, addr := startProxy(t, cluster, "limits:\n  max-client-connections: 500\n")
	fe := a.FrontendServer()
	if err := expectUID(dial(t, addr), 1); err != nil { // warm the pool, then let that client go
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "no client left", func() bool { return fe.Clients() <= 1 })
	baseClients := fe.Clients()
	heap0, fds0, g0 := heapInUse(), openFDs(t), runtime.NumGoroutine()

	rejected0 := a.Status().Clients.Rejected
	began := time.Now()
	conns := dialMany(t, addr, flood)
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	eventually(t, 15*time.Second, "the limit reached", func() bool { return fe.Clients() >= limit })
	// Every connection of the flood accepted or refused by the proxy (on a
	// busy machine the accept backlog drains after the limit is reached).
	eventually(t, 30*time.Second, "every flood connection accepted or refused", func() bool {
		return a.Status().Clients.Rejected-rejected0 >= int64(flood-limit+int(baseClients))
	})
	var refused, held atomic.Int64
	var heldConns []net.Conn
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, nc := range conns {
		wg.Go(func() {
			if refusedWithBusy(nc, 2*time.Second) {
				refused.Add(1)
				return
			}
			held.Add(1)
			mu.Lock()
			heldConns = append(heldConns, nc)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(began)
	heap1, fds1, g1 := heapInUse(), openFDs(t), runtime.NumGoroutine()
	t.Logf("flood: %d connections in %v: %d held (+%d open before: %d at the limit of %d), %d refused with busy; heap %s -> %s (+%s, %.1f KiB per held connection); fds %d -> %d; goroutines %d -> %d",
		flood, elapsed.Round(time.Millisecond), held.Load(), baseClients, fe.Clients(), limit, refused.Load(), mib(heap0), mib(heap1), mib(heap1-min(heap0, heap1)),
		float64(heap1-min(heap0, heap1))/1024/float64(limit), fds0, fds1, g0, g1)

	if got := fe.Clients(); got != limit || held.Load() != limit-baseClients || refused.Load() != flood-held.Load() {
		t.Fatalf("%d sessions (%d before the flood), %d held, %d refused: want the limit of %d held", got, baseClients, held.Load(), refused.Load(), limit)
	}
	if grown := heap1 - min(heap0, heap1); grown > limit*64<<10 {
		t.Fatalf("heap grew by %s under the flood (over 64 KiB per held connection): not bounded", mib(grown))
	}
	// Per held connection: its socket here and in the proxy; refused ones
	// are closed by the proxy (their client side stays open until the end).
	if fds1-fds0 > flood+limit+64 {
		t.Fatalf("%d more file descriptors: refused connections are not closed", fds1-fds0)
	}
	for _, nc := range heldConns[:10] { // the held connections are served
		c := &rawClient{t: t, nc: nc, r: ldapwire.NewReader(nc, 0)}
		c.send(baseSearch(1, slapdtest.BaseDN))
		if id, tag, code := nextDone(c); id != 1 || tag != ldapwire.OpSearchResultDone || code != 0 {
			t.Fatalf("held connection: id %d tag %x code %d", id, tag, code)
		}
	}

	for _, nc := range conns {
		nc.Close()
	}
	eventually(t, 15*time.Second, "every session released", func() bool { return fe.Clients() == baseClients })
	eventually(t, 15*time.Second, "file descriptors released", func() bool { return openFDs(t) <= fds0+16 })
	eventually(t, 15*time.Second, "goroutines released", func() bool { return runtime.NumGoroutine() <= g0+16 })
	if err := expectUID(dial(t, addr), 2); err != nil {
		t.Fatalf("after the flood: %v", err)
	}
}

// TestPerClientIPLimit caps connections per client address: one address at
// its limit is refused while another still gets in.
func TestPerClientIPLimit(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 2})
	a, addr := startProxy(t, cluster, "limits:\n  max-connections-per-client-ip: 3\n")
	fe, local := a.FrontendServer(), netip.MustParseAddr("127.0.0.1")
	var first []*ldap.Conn
	for range 3 {
		conn := dial(t, addr)
		if err := expectUID(conn, 1); err != nil {
			t.Fatal(err)
		}
		first = append(first, conn)
	}
	extra := rawDial(t, addr)
	extra.expectNoticeAndClose(ldapwire.Busy)

	other := dialFrom(t, "127.0.0.2", addr)
	if err := expectUID(other, 2); err != nil {
		t.Fatalf("another address must not be limited: %v", err)
	}
	first[0].Close()
	eventually(t, 10*time.Second, "the slot released", func() bool { return fe.ConnectionsFrom(local) == 2 })
	if err := expectUID(dial(t, addr), 1); err != nil {
		t.Fatalf("after a connection closed: %v", err)
	}
}

// dialFrom connects a go-ldap client from a given loopback address.
func dialFrom(t *testing.T, local, addr string) *ldap.Conn {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	conn, err := ldap.DialURL("ldap://"+addr, ldap.DialWithDialer(d))
	if err != nil {
		t.Fatalf("dial from %s: %v", local, err)
	}
	conn.SetTimeout(20 * time.Second)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestSlowloris trickles requests one byte at a time from 100 connections:
// each is dropped once the request timeout passes, before its request is
// complete, while a well-behaved client keeps working without an error.
func TestSlowloris(t *testing.T) {
	const slow = 100
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 3})
	a, addr := startProxy(t, cluster, "limits:\n  request-timeout: 1s\n")
	fe := a.FrontendServer()
	good := bindAs(t, addr, slapdtest.UserDN(1), slapdtest.UserPassword(1))
	base := fe.Clients()

	stop := make(chan struct{})
	var goodOps, goodErrs atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := expectUser(good, 1); err != nil {
				goodErrs.Add(1)
				t.Errorf("well-behaved client: %v", err)
			}
			goodOps.Add(1)
		}
	})

	pdu := baseSearch(1, slapdtest.PeopleDN) // 40+ bytes: 4+ s at one byte per 100 ms
	var dropped, completed atomic.Int64
	for range slow {
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		wg.Go(func() {
			if trickle(nc, pdu, 100*time.Millisecond) {
				completed.Add(1)
				return
			}
			dropped.Add(1)
		})
	}
	eventually(t, 20*time.Second, "every slow client dropped", func() bool { return dropped.Load()+completed.Load() == slow })
	close(stop)
	wg.Wait()
	if completed.Load() > 0 || goodErrs.Load() > 0 || goodOps.Load() == 0 {
		t.Fatalf("%d slow requests completed, well-behaved client: %d operations, %d errors", completed.Load(), goodOps.Load(), goodErrs.Load())
	}
	eventually(t, 10*time.Second, "slow sessions released", func() bool { return fe.Clients() == base })
	t.Logf("slowloris: %d slow clients dropped; the well-behaved client ran %d operations meanwhile", dropped.Load(), goodOps.Load())
}

// trickle writes pdu one byte per interval; it reports true when the whole
// request went through and was answered, false when the proxy cut it off.
func trickle(nc net.Conn, pdu []byte, interval time.Duration) bool {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for _, b := range pdu {
		if _, err := nc.Write([]byte{b}); err != nil {
			return false
		}
		<-tick.C
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	frame, err := ldapwire.NewReader(nc, 0).Next()
	if err != nil {
		return false
	}
	msg, err := ldapwire.Parse(frame)
	return err == nil && msg.ID == 1
}

// TestIdleTimeout closes idle clients but not those waiting for an answer.
func TestIdleTimeout(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 3})
	replica := cluster.Replicas[0]
	a, addr := startProxy(t, cluster, "limits:\n  idle-timeout: 300ms\npool:\n  operation-timeout: 20s\n"+
		"health-check-frequency: 1m\nhealth-check-timeout: 30s\n")
	server := a.Servers()[0]
	busy := rawDial(t, addr)
	busy.send(baseSearch(1, slapdtest.BaseDN)) // warms the pool
	nextDone(busy)

	if err := replica.Pause(); err != nil {
		t.Fatal(err)
	}
	defer replica.Resume()
	busy.send(baseSearch(2, slapdtest.BaseDN))
	eventually(t, 10*time.Second, "search 2 forwarded", func() bool { return server.Outstanding() == 1 })
	idle := rawDial(t, addr)
	idle.expectNoticeAndClose(ldapwire.Unavailable) // dropped after 300 ms
	idle2 := rawDial(t, addr)
	idle2.expectNoticeAndClose(ldapwire.Unavailable) // and again: the busy client outlived two idle periods
	if err := replica.Resume(); err != nil {
		t.Fatal(err)
	}
	if id, tag, code := nextDone(busy); id != 2 || tag != ldapwire.OpSearchResultDone || code != 0 {
		t.Fatalf("the busy client's search: id %d tag %x code %d", id, tag, code)
	}
	busy.expectNoticeAndClose(ldapwire.Unavailable) // idle once answered
}

// TestOperationLimits answers busy past the outstanding operations of a
// connection and of a server, and bounds the wait for a bind.
func TestOperationLimits(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 3})
	replica := cluster.Replicas[0]
	a, addr := startProxy(t, cluster, "limits:\n  max-operations-per-connection: 2\n  max-operations-per-server: 3\n"+
		"  bind-timeout: 500ms\npool:\n  operation-timeout: 20s\nhealth-check-frequency: 1m\nhealth-check-timeout: 30s\n")
	server := a.Servers()[0]
	x, y := rawDial(t, addr), rawDial(t, addr)
	x.send(baseSearch(9, slapdtest.BaseDN)) // warms the pool
	nextDone(x)
	// The answer may reach the client just before the operation is counted
	// out: wait, so that it does not count against the limits below.
	eventually(t, 10*time.Second, "the first search counted out", func() bool { return a.FrontendServer().Inflight() == 0 })

	if err := replica.Pause(); err != nil {
		t.Fatal(err)
	}
	defer replica.Resume()
	x.send(baseSearch(1, slapdtest.BaseDN))
	x.send(baseSearch(2, slapdtest.BaseDN))
	waitOutstanding(t, a.Registry(), server, 2)
	x.send(baseSearch(3, slapdtest.BaseDN))
	if id, tag, code := x.result(); id != 3 || tag != ldapwire.OpSearchResultDone || code != ldapwire.Busy {
		t.Fatalf("third operation on the connection: id %d tag %x code %d, want busy", id, tag, code)
	}
	y.send(baseSearch(1, slapdtest.BaseDN))
	waitOutstanding(t, a.Registry(), server, 3)
	y.send(baseSearch(2, slapdtest.BaseDN))
	if id, tag, code := y.result(); id != 2 || code != ldapwire.Busy {
		t.Fatalf("fourth operation on the server: id %d tag %x code %d, want busy", id, tag, code)
	}
	if err := replica.Resume(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*rawClient{x, x, y} {
		if _, _, code := nextDone(c); code != 0 {
			t.Fatalf("a waiting search ended with %d", code)
		}
	}

	if err := replica.Pause(); err != nil {
		t.Fatal(err)
	}
	conn := dial(t, addr)
	began := time.Now()
	err := conn.Bind(slapdtest.UserDN(1), slapdtest.UserPassword(1))
	if err == nil || time.Since(began) > 10*time.Second {
		t.Fatalf("bind to a hung server: %v after %v, want a failure after about the bind timeout", err, time.Since(began))
	}
	if resultCode(err) < 0 && !errors.Is(err, net.ErrClosed) {
		t.Fatalf("bind to a hung server: %v", err)
	}
}

// TestHandshakeAndHeaderTimeouts: a client that starts a TLS handshake or a
// PROXY header and stalls is dropped after the request timeout, like one
// that trickles a request.
func TestHandshakeAndHeaderTimeouts(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 2})
	ca := newTestCA(t, "proxy")
	cert := ca.server("proxy", "127.0.0.1")
	a, _, _ := startLoggedProxy(t, fmt.Sprintf(`listen:
  - address: 127.0.0.1:0
    mode: ldaps
    tls: {cert-file: %s, key-file: %s}
  - address: 127.0.0.1:0
    proxy-protocol: true
    trusted-proxies: [127.0.0.1]
`, cert.CertFile, cert.KeyFile)+tlsServers(cluster, false, "")+"limits:\n  request-timeout: 500ms\n")
	ldaps, lb := a.Addrs()[0], a.Addrs()[1]
	stalls := map[string]struct {
		addr  string
		bytes []byte
	}{
		"silent LDAPS client":      {ldaps, nil},
		"half a TLS record":        {ldaps, []byte{0x16, 0x03, 0x01, 0x00, 0xc8, 0x01}},
		"half a PROXY header":      {lb, []byte("\r\n\r\n\x00\r\nQU")},
		"silent load balancer":     {lb, nil},
		"header without addresses": {lb, append([]byte("\r\n\r\n\x00\r\nQUIT\n"), 0x21, 0x11, 0, 12, 127, 0)},
	}
	for name, s := range stalls {
		t.Run(name, func(t *testing.T) {
			nc, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.Write(s.bytes)
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadAll(nc); err != nil {
				t.Fatalf("the proxy did not hang up: %v", err)
			}
		})
	}
	eventually(t, 10*time.Second, "stalled sessions released", func() bool { return a.FrontendServer().Clients() == 0 })
	conn, err := ldap.DialURL("ldaps://"+ldaps, ldap.DialWithTLSConfig(ca.clientTLS(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := expectUID(conn, 1); err != nil {
		t.Fatal(err)
	}
}

// waitOutstanding waits until n operations are in flight to server, and
// says what the server's state was if they never are.
func waitOutstanding(t *testing.T, reg *backend.Registry, server *backend.Server, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for server.Outstanding() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d operations in flight to %s, want %d; health %+v", server.Outstanding(), server.Name, n,
				reg.Snapshot().Servers[server.Index].Health)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
