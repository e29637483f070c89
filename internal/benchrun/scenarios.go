package benchrun

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/ldapmux/ldapmux/internal/loadgen"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// readyTimeout bounds how long a started proxy may take to answer.
const readyTimeout = 20 * time.Second

// haproxyMaxConn is enough for the load scenarios (HAProxy is not part of
// the idle-connection one) and fits a 20000 open-file limit (HAProxy needs
// two descriptors per connection).
const haproxyMaxConn = 4096

// proxies collects started proxy processes so that they can be stopped.
type proxies []*proc

func (ps proxies) stop() {
	for _, p := range ps {
		p.stop(15 * time.Second)
	}
}

// mainCluster measures the headline (search8), the added latency (search1)
// and the idle connections on three replicas with slapd's default threads.
func (b *bench) mainCluster(ctx context.Context) error {
	c, err := b.startCluster(ctx, 3, 0)
	if err != nil {
		return err
	}
	defer c.Close()
	var ps proxies
	defer func() { ps.stop() }()
	targets := []target{{name: "direct", addr: c.Replicas[0].Addr, slapd: b.slapd}}
	if b.o.HAProxy != "" {
		t, err := b.startHAProxy(ctx, c, "haproxy (tcp, roundrobin)", &ps)
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	for _, alg := range []string{"failover", "fewest-operations"} {
		t, err := b.startLdapmux(ctx, c.Replicas, alg, "ldapmux "+alg, &ps)
		if err != nil {
			return err
		}
		targets = append(targets, t)
		if b.o.Baseline == "" {
			continue
		}
		if t, err = b.startLdapmuxBin(ctx, b.o.Baseline, c.Replicas, alg, "baseline ldapmux "+alg, nil, &ps); err != nil {
			return err
		}
		targets = append(targets, t)
	}
	if err := b.searches(ctx, targets); err != nil {
		return err
	}
	if err := b.idle(ctx, targets[len(targets)-1]); err != nil {
		return err
	}
	ps.stop()
	ps = nil
	if b.o.ProfileBin != "" {
		return b.profile(ctx, c)
	}
	return nil
}

// searches runs the search scenarios (8, 64 and 1 connections, anonymous;
// 8 bound as a user) and the bind one (64 connections).
func (b *bench) searches(ctx context.Context, targets []target) error {
	for _, sc := range []struct {
		name string
		load func() loadgen.Config
	}{{"search8", func() loadgen.Config { return b.searchLoad(b.o.Conns) }}, {"bound8", func() loadgen.Config { return b.boundSearchLoad(b.o.Conns) }},
		{"search64", func() loadgen.Config { return b.searchLoad(64) }},
		{"search1", func() loadgen.Config { return b.searchLoad(1) }}, {"bind64", func() loadgen.Config { return b.bindLoad(64) }}} {
		if !b.o.wants(sc.name) {
			continue
		}
		if err := b.compare(ctx, sc.name, targets, sc.load()); err != nil {
			return err
		}
	}
	return nil
}

// idle runs the idle-connection scenario on an ldapmux target.
func (b *bench) idle(ctx context.Context, t target) error {
	if !b.o.wants("idle") || b.o.IdleConns == 0 {
		return nil
	}
	res, err := idleConnections(ctx, t.addr, b.o.IdleConns, b.o.IdleHold, t.proxy.pid(), b.log)
	b.rep.Idle = res
	return err
}

// scaleCluster compares fewest-operations over one and three replicas
// whose slapd may only use a few threads, then again with each replica
// pinned to one CPU (a machine of its own, one core large).
func (b *bench) scaleCluster(ctx context.Context) error {
	c, err := b.startCluster(ctx, 3, b.o.ScaleThreads)
	if err != nil {
		return err
	}
	defer c.Close()
	var ps proxies
	defer ps.stop()
	targets, err := b.scaleTargets(ctx, c, &ps)
	if err != nil {
		return err
	}
	load := b.searchLoad(b.o.ScaleConns)
	if err := b.compare(ctx, "scale", targets, load); err != nil || !b.o.ScalePin {
		return err
	}
	for i, r := range c.Replicas {
		if err := pinToCPU(r.PID(), i%runtime.NumCPU()); err != nil {
			return err
		}
	}
	return b.compare(ctx, "scale-pinned", targets, load)
}

// scaleTargets starts ldapmux over one and over three replicas, and
// HAProxy over three.
func (b *bench) scaleTargets(ctx context.Context, c *slapdtest.Cluster, ps *proxies) ([]target, error) {
	targets := []target{{name: "direct", addr: c.Replicas[0].Addr, slapd: b.slapd}}
	one, err := b.startLdapmux(ctx, c.Replicas[:1], "fewest-operations", "ldapmux fewest-ops, 1 replica", ps)
	if err != nil {
		return nil, err
	}
	three, err := b.startLdapmux(ctx, c.Replicas, "fewest-operations", "ldapmux fewest-ops, 3 replicas", ps)
	if err != nil {
		return nil, err
	}
	targets = append(targets, one, three)
	if b.o.HAProxy == "" {
		return targets, nil
	}
	t, err := b.startHAProxy(ctx, c, "haproxy, 3 replicas", ps)
	return append(targets, t), err
}

// startLdapmux runs ldapmux as its own process in front of replicas.
func (b *bench) startLdapmux(ctx context.Context, replicas []*slapdtest.Replica, alg, name string, ps *proxies) (target, error) {
	return b.startLdapmuxBin(ctx, b.o.Ldapmux, replicas, alg, name, nil, ps)
}

// startLdapmuxBin runs the ldapmux binary bin with env added to
// BENCH_LDAPMUX_ENV.
func (b *bench) startLdapmuxBin(ctx context.Context, bin string, replicas []*slapdtest.Replica, alg, name string, env []string, ps *proxies) (target, error) {
	pool := b.o.Pool
	if bin != b.o.Ldapmux {
		pool = PoolKeys{Conns: pool.Conns}
	}
	addr, cfgPath, err := b.writeProxyConfig(replicas, alg, name, pool)
	if err != nil {
		return target{}, err
	}
	env = append(strings.Fields(os.Getenv("BENCH_LDAPMUX_ENV")), env...)
	p, err := startProc(name, b.file(name, ".log"), env, bin, "serve", "-config", cfgPath)
	if err != nil {
		return target{}, err
	}
	*ps = append(*ps, p)
	return b.ready(ctx, p, addr, name)
}

// startHAProxy runs HAProxy in TCP mode over all replicas of c.
func (b *bench) startHAProxy(ctx context.Context, c *slapdtest.Cluster, name string, ps *proxies) (target, error) {
	return b.startHAProxyThreads(ctx, c, name, 0, ps)
}

// startHAProxyThreads runs HAProxy with nbthread threads (0: its default).
func (b *bench) startHAProxyThreads(ctx context.Context, c *slapdtest.Cluster, name string, nbthread int, ps *proxies) (target, error) {
	port, err := freePort()
	if err != nil {
		return target{}, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	path := b.file(name, ".cfg")
	if err := os.WriteFile(path, []byte(haproxyConfig(addr, c.Replicas, haproxyMaxConn, nbthread)), 0o600); err != nil {
		return target{}, err
	}
	p, err := startProc(name, b.file(name, ".log"), nil, b.o.HAProxy, "-db", "-f", path)
	if err != nil {
		return target{}, err
	}
	*ps = append(*ps, p)
	return b.ready(ctx, p, addr, name)
}

// ready waits for a started proxy to answer and describes it as a target.
func (b *bench) ready(ctx context.Context, p *proc, addr, name string) (target, error) {
	if err := p.waitLDAP(ctx, addr, readyTimeout); err != nil {
		return target{}, err
	}
	return target{name: name, addr: addr, proxy: p, slapd: b.slapd}, nil
}

func (b *bench) writeProxyConfig(replicas []*slapdtest.Replica, alg, name string, pool PoolKeys) (addr, path string, err error) {
	port, err := freePort()
	if err != nil {
		return "", "", err
	}
	addr = "127.0.0.1:" + strconv.Itoa(port)
	path = b.file(name, ".yaml")
	cfg := ldapmuxConfig(addr, replicas, alg, b.o.IdleConns+1000, pool)
	return addr, path, os.WriteFile(path, []byte(cfg), 0o600)
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
	addr, cfgPath, err := b.writeProxyConfig(c.Replicas, "fewest-operations", name, b.o.Pool)
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
	defer p.stop(30 * time.Second)
	t, err := b.ready(ctx, p, addr, name)
	if err != nil {
		return err
	}
	saved := b.o.Rounds
	b.o.Rounds = 1
	defer func() { b.o.Rounds = saved }()
	if err := b.compare(ctx, "profile", []target{t}, b.searchLoad(b.o.Conns)); err != nil {
		return err
	}
	fmt.Fprintf(b.log, "bench: profiles in %s: go tool pprof -top %s %s\n", abs, b.o.ProfileBin, filepath.Join(abs, "cpu.pprof"))
	return nil
}
