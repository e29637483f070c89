package e2e

import (
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// hostileCase sends one kind of bad or badly ordered input on a new
// connection; it may read what comes back but never expects anything.
type hostileCase func(nc net.Conn, rng *rand.Rand)

func hostileCases() map[string]hostileCase {
	search := baseSearch(1, slapdtest.BaseDN)
	return map[string]hostileCase{
		"random bytes": func(nc net.Conn, rng *rand.Rand) {
			b := make([]byte, 1+rng.IntN(300))
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			b[0] = 0x30 // mostly get past the first byte
			nc.Write(b)
		},
		"mutated search": func(nc net.Conn, rng *rand.Rand) {
			b := append([]byte{}, search...)
			for range 1 + rng.IntN(4) {
				b[rng.IntN(len(b))] = byte(rng.Uint32())
			}
			nc.Write(b)
		},
		"truncated": func(nc net.Conn, rng *rand.Rand) { nc.Write(search[:1+rng.IntN(len(search)-1)]) },
		"oversized": func(nc net.Conn, rng *rand.Rand) {
			nc.Write([]byte{0x30, 0x84, 0x40, 0x00, 0x00, 0x00, 0x02, 0x01, 0x01})
		},
		"just over the limit": func(nc net.Conn, rng *rand.Rand) {
			nc.Write([]byte{0x30, 0x83, 0x01, 0x00, 0x01})
			nc.Write(make([]byte, 4096))
		},
		"bind in the middle of a search": func(nc net.Conn, rng *rand.Rand) {
			n := 1 + rng.IntN(20)
			nc.Write(append(baseSearch(1, slapdtest.PeopleDN), ldapwire.AppendSimpleBind(nil, 2, slapdtest.UserDN(n), slapdtest.UserPassword(n))...))
			nc.Write(baseSearch(3, slapdtest.UserDN(n)))
		},
		"abandon of unknown IDs": func(nc net.Conn, rng *rand.Rand) {
			nc.Write(ldapwire.AppendAbandon(nil, 1, 12345))
			nc.Write(ldapwire.AppendAbandon(nil, 2, ldapwire.MaxMessageID))
			nc.Write(ldapwire.AppendAbandon(nil, 3, 3)) // itself
			nc.Write(search)
		},
		"message ID 0":  func(nc net.Conn, rng *rand.Rand) { nc.Write(baseSearch(0, slapdtest.BaseDN)) },
		"duplicate IDs": func(nc net.Conn, rng *rand.Rand) { nc.Write(append(append([]byte{}, search...), search...)) },
		"unknown tags": func(nc net.Conn, rng *rand.Rand) {
			op := []byte{0x60 | byte(rng.IntN(32)), 0}
			nc.Write(ldapwire.AppendMessage(nil, 1, op, nil, nil))
		},
		"bad controls": func(nc net.Conn, rng *rand.Rand) {
			m, _ := ldapwire.Parse(search)
			nc.Write(ldapwire.AppendMessage(nil, 2, m.Op, []byte{0xa0, 0x03, 0x30, 0x01, 0x04}, nil))
		},
		"StartTLS without TLS then garbage": func(nc net.Conn, rng *rand.Rand) {
			op := append([]byte{ldapwire.OpExtendedRequest, byte(2 + len(ldapwire.OIDStartTLS)), 0x80, byte(len(ldapwire.OIDStartTLS))}, ldapwire.OIDStartTLS...)
			nc.Write(ldapwire.AppendMessage(nil, 1, op, nil, nil))
			nc.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00})
		},
		"pipelined flood, never read": func(nc net.Conn, rng *rand.Rand) {
			var b []byte
			for id := int32(1); id <= 100; id++ {
				b = append(b, baseSearch(id, slapdtest.PeopleDN)...)
			}
			nc.Write(b)
		},
		"unbind then more": func(nc net.Conn, rng *rand.Rand) {
			nc.Write(append(ldapwire.AppendUnbind(nil, 1), search...))
		},
	}
}

// TestHostileClientsUnderLoad throws malformed, truncated, oversized and
// out-of-order PDUs at a live proxy from 8 connections at a time while 8
// well-behaved clients run a steady load: they see no error, the heap stays
// bounded and the proxy keeps serving.
func TestHostileClientsUnderLoad(t *testing.T) {
	const duration = 5 * time.Second
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: 20})
	a, _, logs := startLoggedProxy(t, proxyConfig(cluster, "limits:\n  max-pdu-size: 64KiB\n  request-timeout: 2s\n"))
	addr := a.Addrs()[0]
	heap0 := heapInUse()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var goodOps, goodErrs, attacks atomic.Int64
	for i := 1; i <= 8; i++ {
		conn := bindAs(t, addr, slapdtest.UserDN(i), slapdtest.UserPassword(i))
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				if n%10 == 9 {
					err = conn.Bind(slapdtest.UserDN(i), slapdtest.UserPassword(i))
				} else {
					err = expectUser(conn, i)
				}
				if err != nil {
					goodErrs.Add(1)
					t.Errorf("well-behaved client %d: %v", i, err)
				}
				goodOps.Add(1)
			}
		})
	}
	var peak atomic.Uint64
	wg.Go(func() { samplePeak(stop, &peak) })
	cases := hostileCases()
	names := make([]string, 0, len(cases))
	for name := range cases {
		names = append(names, name)
	}
	deadline := time.Now().Add(duration)
	var hw sync.WaitGroup
	for w := range 8 {
		hw.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for time.Now().Before(deadline) {
				name := names[rng.IntN(len(names))]
				if err := attack(addr, cases[name], rng); err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				attacks.Add(1)
			}
		})
	}
	hw.Wait()
	close(stop)
	wg.Wait()
	heap1 := heapInUse()
	t.Logf("%d hostile connections; well-behaved clients: %d operations, %d errors; heap %s -> %s, peak %s",
		attacks.Load(), goodOps.Load(), goodErrs.Load(), mib(heap0), mib(heap1), mib(peak.Load()))
	if goodErrs.Load() > 0 || goodOps.Load() == 0 {
		t.Fatalf("well-behaved clients: %d operations, %d errors", goodOps.Load(), goodErrs.Load())
	}
	if peak.Load() > heap0+128<<20 {
		t.Fatalf("heap peaked at %s (from %s): not bounded", mib(peak.Load()), mib(heap0))
	}
	eventually(t, 15*time.Second, "hostile sessions released", func() bool { return a.FrontendServer().Clients() == 8 })
	if err := expectUser(bindAs(t, addr, slapdtest.UserDN(9), slapdtest.UserPassword(9)), 9); err != nil {
		t.Fatalf("after the attack: %v", err)
	}
	if n := strings.Count(logs.String(), "dropping client: bad PDU"); n == 0 {
		t.Fatal("no bad PDU was noticed: the attack did not reach the decoder")
	}
}

// attack runs one hostile case on a fresh connection, reads for a moment
// and hangs up.
func attack(addr string, c hostileCase, rng *rand.Rand) error {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	c(nc, rng)
	nc.SetReadDeadline(time.Now().Add(time.Duration(rng.IntN(50)) * time.Millisecond))
	buf := make([]byte, 4096)
	for {
		if _, err := nc.Read(buf); err != nil {
			return nil
		}
	}
}

// samplePeak records the largest heap in use until stop.
func samplePeak(stop chan struct{}, peak *atomic.Uint64) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse > peak.Load() {
			peak.Store(ms.HeapInuse)
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// TestConnectionStateOperationsRefused: transactions or Turn change the
// connection for everybody: refused. (Cancel, which names a message ID of
// the connection, ldapmux answers itself: TestCancelAsOnSlapd.)
func TestConnectionStateOperationsRefused(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 2})
	_, addr := startProxy(t, cluster, "")
	conn := bindAs(t, addr, slapdtest.UserDN(1), slapdtest.UserPassword(1))
	for _, oid := range []string{"1.3.6.1.1.21.1", "1.3.6.1.1.21.3", "1.3.6.1.1.19"} {
		if _, err := conn.Extended(ldap.NewExtendedRequest(oid, nil)); resultCode(err) != ldapwire.UnwillingToPerform {
			t.Errorf("extended %s: want unwillingToPerform, got %v", oid, err)
		}
	}
	_, err := conn.Search(ldap.NewSearchRequest(slapdtest.BaseDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", nil, []ldap.Control{ldap.NewControlString("1.3.6.1.1.21.2", true, "txn")}))
	if resultCode(err) != ldapwire.UnwillingToPerform {
		t.Errorf("search with a transaction control: want unwillingToPerform, got %v", err)
	}
	if err := expectUser(conn, 1); err != nil {
		t.Fatal(err)
	}
}
