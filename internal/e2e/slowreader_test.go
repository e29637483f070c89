package e2e

import (
	"fmt"
	"net"
	"slices"
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

// TestSlowReaderDoesNotStallOthers: 50 clients share ONE backend operation
// connection with clients that send huge searches and never read. A slow
// reader that stalled that connection would stop everybody. First a reader
// stays stuck on a 6 MB result (more than the kernel's socket buffers take,
// so ldapmux queues the rest, within its 8 MiB bound) while the 50 clients'
// throughput is compared with their throughput alone (same run, a ratio);
// then one that pipelines ten such searches passes its bound and is
// dropped, its searches abandoned on slapd, while the others keep working.
func TestSlowReaderDoesNotStallOthers(t *testing.T) {
	const clients = 50
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: clients, ExtraLDIF: bulkLDIF(400, 16000)})
	replica := cluster.Replicas[0]
	a, _, logs := startLoggedProxy(t, proxyConfig(cluster, "pool:\n  connections-per-server: 1\nlimits:\n  max-client-buffer: 8MiB\n"))
	addr := a.Addrs()[0]
	conns := make([]*ldap.Conn, clients)
	for i := range conns {
		conns[i] = dial(t, addr)
	}
	heap0 := heapInUse()

	// Alternate windows alone and beside a stuck reader, so that load from
	// outside the test weighs on both sides alike; compare the medians.
	var alone, beside []float64
	for range 3 {
		alone = append(alone, throughput(t, conns, time.Second))
		stuck := slowReader(t, addr, 1)
		beside = append(beside, throughput(t, conns, time.Second))
		if !stillConnected(stuck) {
			t.Fatal("the reader within its buffer was dropped")
		}
		stuck.Close()
		eventually(t, 10*time.Second, "the stuck reader gone", func() bool { return a.FrontendServer().Clients() == clients })
	}
	ratio := median(beside) / median(alone)
	t.Logf("50 clients: %.0f ops/s alone, %.0f ops/s beside a reader stuck on a 6 MB result (median ratio %.2f; alone %.0f, beside %.0f)",
		median(alone), median(beside), ratio, alone, beside)
	if ratio < 0.3 {
		t.Fatalf("throughput fell to %.0f%% beside a slow reader: the shared connection stalls", 100*ratio)
	}

	abandons := opCount(t, replica, "abandon")
	flooder := slowReader(t, addr, 10)
	eventually(t, 20*time.Second, "the reader over its buffer dropped", func() bool { return !stillConnected(flooder) })
	if n := throughput(t, conns, 500*time.Millisecond); n == 0 {
		t.Fatal("no operation completed after the drop")
	}
	eventually(t, 10*time.Second, "slapd counting the abandons", func() bool {
		return opCount(t, replica, "abandon") > abandons
	})
	if !strings.Contains(logs.String(), "does not read its responses") {
		t.Fatal("the slow reader was not dropped for its buffer")
	}
	if heap := heapInUse(); heap > heap0+64<<20 {
		t.Fatalf("heap grew from %s to %s: what is buffered for slow readers is not bounded", mib(heap0), mib(heap))
	}
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

// slowReader opens a client with a tiny receive buffer that sends n bulk
// searches and never reads.
func slowReader(t *testing.T, addr string, n int) net.Conn {
	nc := dialTCP(t, addr)
	nc.(*net.TCPConn).SetReadBuffer(4096)
	for id := int32(1); id <= int32(n); id++ {
		if _, err := nc.Write(bulkSearch(id)); err != nil {
			t.Fatal(err)
		}
	}
	return nc
}

// stillConnected writes a harmless abandon of an unknown ID, without
// reading: once the proxy has closed the connection, writes fail.
func stillConnected(nc net.Conn) bool {
	for range 2 { // the first write after a close may still be accepted
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := nc.Write(ldapwire.AppendAbandon(nil, 999, 999999)); err != nil {
			return false
		}
	}
	return true
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
