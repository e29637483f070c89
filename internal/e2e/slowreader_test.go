package e2e

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// bulkBase holds the large entries of bulkLDIF.
const bulkBase = "ou=bulk," + slapdtest.BaseDN

// bulkLDIF makes n entries of about size bytes each (in 1000-byte
// description values) below bulkBase.
func bulkLDIF(n, size int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "dn: %s\nobjectClass: organizationalUnit\nou: bulk\n\n", bulkBase)
	value := strings.Repeat("x", 990)
	for i := range n {
		fmt.Fprintf(&b, "dn: cn=bulk-%d,%s\nobjectClass: organizationalRole\ncn: bulk-%d\n", i, bulkBase, i)
		for j := range size / 1000 {
			fmt.Fprintf(&b, "description: %04d-%s\n", j, value)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// bulkSearch is a raw subtree search of bulkBase for every attribute.
func bulkSearch(id int32) []byte {
	dn := bulkBase
	body := []byte{0x04, byte(len(dn))}
	body = append(body, dn...)
	body = append(body, 0x0a, 1, 2, 0x0a, 1, 0, 0x02, 1, 0, 0x02, 1, 0, 0x01, 1, 0)
	body = append(body, 0x87, 11)
	body = append(body, "objectClass"...)
	body = append(body, 0x30, 0)
	op := append([]byte{ldapwire.OpSearchRequest, byte(len(body))}, body...)
	return ldapwire.AppendMessage(nil, id, op, nil, nil)
}

// TestSlowReaderDoesNotStallOthers runs 50 clients at full speed, then
// again while clients that never read their results keep opening ~10 MB
// searches. All share ONE backend operation connection: a slow reader that
// stalled it would stop everybody. Each slow reader is dropped once its
// buffer is full and its search is abandoned upstream.
func TestSlowReaderDoesNotStallOthers(t *testing.T) {
	const clients = 50
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: clients, ExtraLDIF: bulkLDIF(600, 16000)})
	replica := cluster.Replicas[0]
	a, _, logs := startLoggedProxy(t, proxyConfig(cluster, "pool:\n  connections-per-server: 1\nlimits:\n  max-client-buffer: 1MiB\n"))
	addr := a.Addrs()[0]
	conns := make([]*ldap.Conn, clients)
	for i := range conns {
		conns[i] = dial(t, addr)
	}
	abandons := opCount(t, replica, "abandon")
	heap0 := heapInUse()

	without := throughput(t, conns, 2*time.Second)
	stop := make(chan struct{})
	var dropped atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() { slowReaders(t, addr, stop, &dropped) })
	eventually(t, 20*time.Second, "a first slow reader dropped", func() bool { return dropped.Load() > 0 })
	with := throughput(t, conns, 2*time.Second)
	heap1 := heapInUse()
	close(stop)
	wg.Wait()

	ratio := with / without
	t.Logf("50 clients: %.0f ops/s alone, %.0f ops/s beside slow readers (ratio %.2f); %d slow readers dropped; heap %s -> %s",
		without, with, ratio, dropped.Load(), mib(heap0), mib(heap1))
	if ratio < 0.25 {
		t.Fatalf("throughput fell to %.0f%% beside slow readers: the shared connection stalls", 100*ratio)
	}
	if heap1 > heap0+96<<20 {
		t.Fatalf("heap grew from %s to %s: what is buffered for slow readers is not bounded", mib(heap0), mib(heap1))
	}
	if !strings.Contains(logs.String(), "does not read its responses") {
		t.Fatal("no slow reader was dropped for its buffer")
	}
	eventually(t, 10*time.Second, "slapd counting the abandons", func() bool {
		return opCount(t, replica, "abandon") > abandons
	})
}

// throughput runs searches on every connection for d and returns the
// operations per second; any error fails the test.
func throughput(t *testing.T, conns []*ldap.Conn, d time.Duration) float64 {
	var ops atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for i, conn := range conns {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if err := expectUID(conn, i+1); err != nil {
					t.Errorf("client %d: %v", i, err)
					return
				}
				ops.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(ops.Load()) / d.Seconds()
}

// slowReaders keeps one client at a time that sends a huge search and
// never reads, until stop; it counts the clients the proxy dropped.
func slowReaders(t *testing.T, addr string, stop chan struct{}, dropped *atomic.Int64) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Errorf("slow reader: %v", err)
			return
		}
		nc.(*net.TCPConn).SetReadBuffer(4096)
		if awaitDrop(nc, stop) {
			dropped.Add(1)
		}
		nc.Close()
	}
}

// awaitDrop sends a bulk search and then harmless abandons of unknown IDs,
// never reading, until a write fails: the proxy has closed the connection.
func awaitDrop(nc net.Conn, stop chan struct{}) bool {
	if _, err := nc.Write(bulkSearch(1)); err != nil {
		return false
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for id := int32(2); ; id++ {
		select {
		case <-stop:
			return false
		case <-tick.C:
		}
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := nc.Write(ldapwire.AppendAbandon(nil, id, 999999)); err != nil {
			return true
		}
	}
}
