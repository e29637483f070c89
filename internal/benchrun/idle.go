package benchrun

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// IdleResult is the proxy's memory with many idle client connections.
type IdleResult struct {
	Wanted            int     `json:"wanted"`
	Opened            int     `json:"opened"`
	Searched          int     `json:"searched"` // connections that then answered one search
	HoldSeconds       float64 `json:"hold_seconds"`
	BaseRSSMiB        float64 `json:"base_rss_mib"`
	IdleRSSMiB        float64 `json:"idle_rss_mib"`
	AfterSearchRSSMiB float64 `json:"after_search_rss_mib"`
	PeakRSSMiB        float64 `json:"peak_rss_mib"`
	IdleKiBPerConn    float64 `json:"idle_kib_per_conn"`
	SearchKiBPerConn  float64 `json:"after_search_kib_per_conn"`
}

// dialers is how many connections are opened (or searched) at once.
const dialers = 16

// idleConnections opens n connections to addr (a proxy with process pid),
// holds them idle, then makes each do one search and holds them again,
// reading the proxy's RSS at each step. Everything is bounded: loopback
// only, n connections, about 2*hold plus the time to connect.
func idleConnections(ctx context.Context, addr string, n int, hold time.Duration, pid int, log io.Writer) (*IdleResult, error) {
	res := &IdleResult{Wanted: n, HoldSeconds: hold.Seconds(), BaseRSSMiB: rssMiB(pid, "VmRSS")}
	fmt.Fprintf(log, "bench: opening %d idle connections to %s...\n", n, addr)
	conns, err := openConns(ctx, addr, n)
	defer closeAll(conns)
	res.Opened = len(conns)
	if err != nil {
		return res, fmt.Errorf("benchrun: idle connections: %d of %d opened: %w", len(conns), n, err)
	}
	sleepFor(ctx, hold)
	res.IdleRSSMiB = rssMiB(pid, "VmRSS")
	res.Searched = searchEach(conns)
	sleepFor(ctx, hold)
	res.AfterSearchRSSMiB = rssMiB(pid, "VmRSS")
	res.PeakRSSMiB = rssMiB(pid, "VmHWM")
	res.IdleKiBPerConn = (res.IdleRSSMiB - res.BaseRSSMiB) * 1024 / float64(max(res.Opened, 1))
	res.SearchKiBPerConn = (res.AfterSearchRSSMiB - res.BaseRSSMiB) * 1024 / float64(max(res.Opened, 1))
	fmt.Fprintf(log, "bench: %d idle connections: RSS %.1f MiB (%.1f before); after one search each (%d answered): %.1f MiB\n",
		res.Opened, res.IdleRSSMiB, res.BaseRSSMiB, res.Searched, res.AfterSearchRSSMiB)
	return res, nil
}

// openConns dials n connections, a few at a time; it stops at the first error.
func openConns(ctx context.Context, addr string, n int) ([]net.Conn, error) {
	var (
		mu    sync.Mutex
		conns = make([]net.Conn, 0, n)
		left  atomic.Int64
		first error
	)
	left.Store(int64(n))
	var wg sync.WaitGroup
	for range dialers {
		wg.Go(func() {
			d := net.Dialer{Timeout: 5 * time.Second}
			for left.Add(-1) >= 0 && ctx.Err() == nil {
				nc, err := d.DialContext(ctx, "tcp", addr)
				mu.Lock()
				if err != nil {
					first = err
					left.Store(0)
				} else {
					conns = append(conns, nc)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return conns, first
}

// searchEach sends one root DSE search on every connection and returns how
// many were answered successfully.
func searchEach(conns []net.Conn) int {
	var ok atomic.Int64
	var wg sync.WaitGroup
	for w := range dialers {
		wg.Go(func() {
			for i := w; i < len(conns); i += dialers {
				if searchOnce(conns[i]) == nil {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(ok.Load())
}

func searchOnce(nc net.Conn) error {
	_, err := rootDSE(nc, 10*time.Second)
	return err
}

func closeAll(conns []net.Conn) {
	for _, nc := range conns {
		nc.Close()
	}
}

func sleepFor(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
