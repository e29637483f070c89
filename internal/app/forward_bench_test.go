package app

import (
	"fmt"
	"net"
	"testing"

	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/fakeldap"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// Benchmarks of the whole forwarding path: a raw client sends searches
// through a real in-process ldapmux (frontend, proxy, route, backend pool)
// to an in-process fake server that answers each with N entries. The client
// and the fake server allocate nothing in steady state (BenchmarkDirect
// shows it), so B/op and allocs/op are the proxy's.
//
//	go test -run='^$' -bench=Forward -benchmem ./internal/app/
//	go test -run='^$' -bench='Forward/entries=1$' -cpuprofile cpu.out -memprofile mem.out ./internal/app/

var benchEntries = []int{0, 1, 10, 100}

// startBenchProxy runs ldapmux in front of a fake server.
func startBenchProxy(b testing.TB, fake *fakeldap.Server, algorithm string) string {
	b.Helper()
	yaml := fmt.Sprintf(`listen: [{address: '127.0.0.1:0'}]
servers:
  - {name: ds1, address: '%s'}
service-account: {bind-dn: 'cn=svc', password: x}
load-balancing: {algorithm: %s}
log: {level: error}
`, fake.Addr(), algorithm)
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		b.Fatal(err)
	}
	a := startApp(b, cfg)
	return a.Addrs()[0]
}

func startFake(b testing.TB, entries int) *fakeldap.Server {
	b.Helper()
	fake, err := fakeldap.Start(entries)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(fake.Close)
	return fake
}

// benchClient sends one search at a time and reads its responses without
// allocating.
type benchClient struct {
	nc  net.Conn
	r   *ldapwire.Reader
	buf []byte
	id  int32
}

func dialBench(b *testing.B, addr string) *benchClient {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	return &benchClient{nc: nc, r: ldapwire.NewReader(nc, 0)}
}

// search sends a base search and returns the number of entries received.
func (c *benchClient) search() (int, error) {
	c.id = c.id%ldapwire.MaxMessageID + 1
	c.buf = ldapwire.AppendRootDSEProbe(c.buf[:0], c.id)
	if _, err := c.nc.Write(c.buf); err != nil {
		return 0, err
	}
	for n := 0; ; n++ {
		frame, err := c.r.Next()
		if err != nil {
			return n, err
		}
		msg, err := ldapwire.Parse(frame)
		if err != nil {
			return n, err
		}
		if msg.OpTag == ldapwire.OpSearchResultDone {
			return n, nil
		}
	}
}

// run performs b.N searches on c, checking the entry count.
func (c *benchClient) run(b *testing.B, want int) {
	for range 100 { // warm up the pool and the buffers
		c.search()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if n, err := c.search(); err != nil || n != want {
			b.Fatalf("got %d entries, want %d: %v", n, want, err)
		}
	}
}

// BenchmarkForward is one client connection, one search at a time, through
// the proxy (failover, one server).
func BenchmarkForward(b *testing.B) {
	for _, n := range benchEntries {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			fake := startFake(b, n)
			dialBench(b, startBenchProxy(b, fake, "failover")).run(b, n)
		})
	}
}

// BenchmarkForwardParallel is several client connections at once
// (4 per GOMAXPROCS), as with the 8-connection load of make bench.
func BenchmarkForwardParallel(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			addr := startBenchProxy(b, startFake(b, n), "fewest-operations")
			b.SetParallelism(4)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				c := dialBench(b, addr)
				for pb.Next() {
					if got, err := c.search(); err != nil || got != n {
						b.Errorf("got %d entries, want %d: %v", got, n, err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkDirect is the same client on the fake server without the proxy:
// the cost of the harness itself.
func BenchmarkDirect(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			dialBench(b, startFake(b, n).Addr()).run(b, n)
		})
	}
}
