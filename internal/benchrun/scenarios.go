package benchrun

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// readyTimeout bounds how long a started proxy may take to answer.
const readyTimeout = 20 * time.Second

// haproxyMaxConn is enough for the load scenarios (HAProxy is not part of
// the idle-connection one) and fits a 20000 open-file limit.
const haproxyMaxConn = 4096

// mainCluster measures the headline (search8), the added latency (search1)
// and the idle connections on three replicas with slapd's default threads.
func (b *bench) mainCluster(ctx context.Context) error {
	c, err := b.startCluster(ctx, 3, 0)
	if err != nil {
		return err
	}
	defer c.Close()
	direct := target{name: "direct", addr: c.Replicas[0].Addr, slapd: b.slapd}
	if err := b.searches(ctx, direct); err != nil {
		return err
	}
	if b.o.HAProxy != "" {
		if err := b.withHAProxy(ctx, c, "haproxy (tcp, roundrobin)", b.searches); err != nil {
			return err
		}
	}
	for _, alg := range []string{"failover", "fewest-operations"} {
		run := b.searches
		if alg == "fewest-operations" {
			run = b.searchesThenIdle
		}
		if err := b.withLdapmux(ctx, c.Replicas, alg, "ldapmux "+alg, run); err != nil {
			return err
		}
	}
	if b.o.ProfileBin != "" {
		return b.profile(ctx, c)
	}
	return nil
}

// searches runs the 8- and 1-connection search scenarios on t.
func (b *bench) searches(ctx context.Context, t target) error {
	if b.o.wants("search8") {
		if err := b.measure(ctx, "search8", t, b.searchLoad(b.o.Conns)); err != nil {
			return err
		}
	}
	if b.o.wants("search1") {
		return b.measure(ctx, "search1", t, b.searchLoad(1))
	}
	return nil
}

// searchesThenIdle adds the idle-connection scenario for ldapmux.
func (b *bench) searchesThenIdle(ctx context.Context, t target) error {
	if err := b.searches(ctx, t); err != nil {
		return err
	}
	if !b.o.wants("idle") || b.o.IdleConns == 0 {
		return nil
	}
	res, err := idleConnections(ctx, t.addr, b.o.IdleConns, b.o.IdleHold, t.proxy.pid(), b.log)
	b.rep.Idle = res
	return err
}

// scaleCluster compares fewest-operations over one and three replicas
// whose slapd may only use a few threads, then again with each replica
// pinned to one CPU, so that the replicas rather than the proxy are the
// bottleneck even on a small machine.
func (b *bench) scaleCluster(ctx context.Context) error {
	c, err := b.startCluster(ctx, 3, b.o.ScaleThreads)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := b.scaleTargets(ctx, c, "scale"); err != nil || !b.o.ScalePin {
		return err
	}
	for i, r := range c.Replicas {
		if err := pinToCPU(r.PID(), i%runtime.NumCPU()); err != nil {
			return err
		}
	}
	return b.scaleTargets(ctx, c, "scale-pinned")
}

// scaleTargets measures direct, ldapmux over one and three replicas, and
// HAProxy over three.
func (b *bench) scaleTargets(ctx context.Context, c *slapdtest.Cluster, scenario string) error {
	load := b.searchLoad(b.o.ScaleConns)
	one := func(ctx context.Context, t target) error { return b.measure(ctx, scenario, t, load) }
	if err := one(ctx, target{name: "direct", addr: c.Replicas[0].Addr, slapd: b.slapd}); err != nil {
		return err
	}
	if err := b.withLdapmux(ctx, c.Replicas[:1], "fewest-operations", "ldapmux fewest-ops, 1 replica", one); err != nil {
		return err
	}
	if err := b.withLdapmux(ctx, c.Replicas, "fewest-operations", "ldapmux fewest-ops, 3 replicas", one); err != nil {
		return err
	}
	if b.o.HAProxy == "" {
		return nil
	}
	return b.withHAProxy(ctx, c, "haproxy, 3 replicas", one)
}

// withLdapmux runs ldapmux as its own process in front of replicas, calls
// fn with it as the target, and stops it.
func (b *bench) withLdapmux(ctx context.Context, replicas []*slapdtest.Replica, alg, name string, fn func(context.Context, target) error) error {
	addr, cfgPath, err := b.writeProxyConfig(replicas, alg, name)
	if err != nil {
		return err
	}
	p, err := startProc(name, b.file(name, ".log"), nil, b.o.Ldapmux, "serve", "-config", cfgPath)
	if err != nil {
		return err
	}
	defer p.stop(15 * time.Second)
	return b.onProxy(ctx, p, addr, name, fn)
}

// onProxy waits for a started proxy and runs fn against it.
func (b *bench) onProxy(ctx context.Context, p *proc, addr, name string, fn func(context.Context, target) error) error {
	if err := p.waitLDAP(ctx, addr, readyTimeout); err != nil {
		return err
	}
	return fn(ctx, target{name: name, addr: addr, proxy: p, slapd: b.slapd})
}

func (b *bench) writeProxyConfig(replicas []*slapdtest.Replica, alg, name string) (addr, path string, err error) {
	port, err := freePort()
	if err != nil {
		return "", "", err
	}
	addr = "127.0.0.1:" + strconv.Itoa(port)
	path = b.file(name, ".yaml")
	cfg := ldapmuxConfig(addr, replicas, alg, b.o.IdleConns+1000)
	return addr, path, os.WriteFile(path, []byte(cfg), 0o600)
}

// withHAProxy runs HAProxy in TCP mode over all replicas of c.
func (b *bench) withHAProxy(ctx context.Context, c *slapdtest.Cluster, name string, fn func(context.Context, target) error) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	path := b.file(name, ".cfg")
	if err := os.WriteFile(path, []byte(haproxyConfig(addr, c.Replicas, haproxyMaxConn)), 0o600); err != nil {
		return err
	}
	p, err := startProc(name, b.file(name, ".log"), nil, b.o.HAProxy, "-db", "-f", path)
	if err != nil {
		return err
	}
	defer p.stop(5 * time.Second)
	return b.onProxy(ctx, p, addr, name, fn)
}

// file is a path in the output directory named after a target.
func (b *bench) file(name, ext string) string {
	clean := make([]rune, 0, len(name))
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			clean = append(clean, r)
		case r == ' ' || r == ',':
			if n := len(clean); n > 0 && clean[n-1] != '-' {
				clean = append(clean, '-')
			}
		}
	}
	return filepath.Join(b.o.Out, string(clean)+ext)
}

// profile runs the proxy inside a test binary with -test.cpuprofile and
// -test.memprofile under the headline load (see profile_test.go).
func (b *bench) profile(ctx context.Context, c *slapdtest.Cluster) error {
	const name = "ldapmux fewest-operations profiled"
	addr, cfgPath, err := b.writeProxyConfig(c.Replicas, "fewest-operations", name)
	if err != nil {
		return err
	}
	abs, _ := filepath.Abs(b.o.Out)
	p, err := startProc(name, b.file(name, ".log"), []string{"LDAPMUX_PROFILE_CONFIG=" + cfgPath}, b.o.ProfileBin,
		"-test.run=^TestServeForProfile$", "-test.count=1",
		"-test.cpuprofile="+filepath.Join(abs, "cpu.pprof"), "-test.memprofile="+filepath.Join(abs, "mem.pprof"))
	if err != nil {
		return err
	}
	err = b.onProxy(ctx, p, addr, name, func(ctx context.Context, t target) error {
		return b.measure(ctx, "profile", t, b.searchLoad(b.o.Conns))
	})
	p.stop(30 * time.Second)
	fmt.Fprintf(b.log, "bench: profiles in %s: go tool pprof -top %s %s\n", abs, b.o.ProfileBin, filepath.Join(abs, "cpu.pprof"))
	return err
}
