package benchrun

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// Layout places the many-core scenario on the machine's CPUs: one slapd on
// its CPUs, each proxy on the first k of the proxy CPUs for every k of
// ProxyCores, the load generator (this process) on its own.
type Layout struct {
	Slapd        []int `json:"slapd_cpus"`
	Proxy        []int `json:"proxy_cpus"`
	Load         []int `json:"load_cpus"`
	ProxyCores   []int `json:"proxy_cores"`
	Clients      []int `json:"clients"`
	SlapdThreads int   `json:"slapd_threads"`
	LLoaddConns  int   `json:"lloadd_conns"`
}

// defaultLayout splits n CPUs: a quarter (at least one) for the load, four
// for the proxies, the rest for slapd (16 CPUs: slapd 0-7, proxies 8-11,
// load 12-15). Below manyCoreCPUs the CPUs overlap: the scenario then only
// exercises the machinery.
func defaultLayout(n int) Layout {
	l := Layout{ProxyCores: []int{1, 2, 4}, Clients: []int{1, 64, 128}, LLoaddConns: 4}
	if n < manyCoreCPUs {
		last := n - 1
		l.Slapd, l.Proxy, l.Load, l.ProxyCores = []int{0}, []int{last}, []int{last}, []int{1}
	} else {
		load := max(1, n/4)
		l.Slapd, l.Proxy, l.Load = cpuRange(0, n-load-4), cpuRange(n-load-4, n-load), cpuRange(n-load, n)
	}
	l.SlapdThreads = 2 * len(l.Slapd)
	return l
}

func cpuRange(from, to int) []int {
	var out []int
	for c := from; c < to; c++ {
		out = append(out, c)
	}
	return out
}

// layoutFromEnv is defaultLayout with BENCH_CORES_* overrides: CPU lists
// (0-7,9) for SLAPD, PROXY and LOAD, number lists for PROXIES (proxy cores
// per step) and CLIENTS, and SLAPD_THREADS, LLOADD_CONNS.
func layoutFromEnv(n int) (Layout, error) {
	l := defaultLayout(n)
	var errs []string
	for _, f := range []struct {
		key  string
		dst  *[]int
		cpus bool
	}{{"BENCH_CORES_SLAPD", &l.Slapd, true}, {"BENCH_CORES_PROXY", &l.Proxy, true}, {"BENCH_CORES_LOAD", &l.Load, true},
		{"BENCH_CORES_PROXIES", &l.ProxyCores, false}, {"BENCH_CORES_CLIENTS", &l.Clients, false}} {
		v := os.Getenv(f.key)
		if v == "" {
			continue
		}
		list, err := parseList(v, f.cpus)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", f.key, err))
			continue
		}
		*f.dst = list
		if f.key == "BENCH_CORES_SLAPD" {
			l.SlapdThreads = 2 * len(list)
		}
	}
	for _, f := range []struct {
		key string
		dst *int
	}{{"BENCH_CORES_SLAPD_THREADS", &l.SlapdThreads}, {"BENCH_CORES_LLOADD_CONNS", &l.LLoaddConns}} {
		if v := os.Getenv(f.key); v != "" {
			x, err := strconv.Atoi(v)
			if err != nil || x < 1 {
				errs = append(errs, fmt.Sprintf("%s: want a positive integer", f.key))
				continue
			}
			*f.dst = x
		}
	}
	if len(errs) > 0 {
		return l, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return l, nil
}

// parseList reads "1,2,4" or, for CPUs, also ranges: "0-7,9".
func parseList(s string, ranges bool) ([]int, error) {
	var out []int
	for _, item := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(item), "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange && ranges {
			b, err = strconv.Atoi(hi)
		} else if isRange {
			err = fmt.Errorf("no range expected")
		}
		if err != nil || a < 0 || b < a {
			return nil, fmt.Errorf("bad item %q", item)
		}
		out = append(out, cpuRange(a, b+1)...)
	}
	return out, nil
}

// cores is the many-core scenario: for each number of proxy cores, the
// proxies (ldapmux failover, the baseline ldapmux, HAProxy, lloadd) pinned
// to them, one slapd pinned to its own CPUs, and every client count measured
// in interleaved rounds against direct.
func (b *bench) cores(ctx context.Context) error {
	l := b.o.Cores
	c, err := b.startCluster(ctx, 1, l.SlapdThreads)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := pinTasks(c.Replicas[0].PID(), l.Slapd); err != nil {
		return err
	}
	if err := pinTasks(os.Getpid(), l.Load); err != nil {
		return err
	}
	fmt.Fprintf(b.log, "bench: many-core layout: slapd (threads %d) on CPUs %s, proxies on %s, load on %s\n",
		l.SlapdThreads, cpuList(l.Slapd), cpuList(l.Proxy), cpuList(l.Load))
	for _, k := range l.ProxyCores {
		if k > len(l.Proxy) {
			fmt.Fprintf(b.log, "bench: skipping %d proxy cores: only %d proxy CPUs\n", k, len(l.Proxy))
			continue
		}
		if err := b.coresStep(ctx, c, k, l.Proxy[:k]); err != nil {
			return err
		}
	}
	return nil
}

// coresStep measures every client count with the proxies on cpus.
func (b *bench) coresStep(ctx context.Context, c *slapdtest.Cluster, k int, cpus []int) error {
	var ps proxies
	defer func() { ps.stop() }()
	targets := []target{{name: "direct", addr: c.Replicas[0].Addr, slapd: b.slapd}}
	env := []string{"GOMAXPROCS=" + strconv.Itoa(k)}
	add := func(t target, err error) error {
		if err != nil {
			return err
		}
		targets = append(targets, t)
		return pinTasks(t.proxy.pid(), cpus)
	}
	if err := add(b.startLdapmuxBin(ctx, b.o.Ldapmux, c.Replicas, "failover", "ldapmux failover", env, &ps)); err != nil {
		return err
	}
	if b.o.Baseline != "" {
		if err := add(b.startLdapmuxBin(ctx, b.o.Baseline, c.Replicas, "failover", "baseline ldapmux failover", env, &ps)); err != nil {
			return err
		}
	}
	if b.o.HAProxy != "" {
		if err := add(b.startHAProxyThreads(ctx, c, "haproxy (tcp)", k, &ps)); err != nil {
			return err
		}
	}
	if b.o.LLoadd != "" {
		if err := add(b.startLLoadd(ctx, c, k, &ps)); err != nil {
			return err
		}
	}
	for _, clients := range b.o.Cores.Clients {
		sc := fmt.Sprintf("cores%d-c%d", k, clients)
		scenarioTitles[sc] = fmt.Sprintf("many-core: proxies on %d core(s) (CPUs %s), %d connections; slapd on %s, load on %s",
			k, cpuList(cpus), clients, cpuList(b.o.Cores.Slapd), cpuList(b.o.Cores.Load))
		if err := b.compare(ctx, sc, targets, b.searchLoad(clients)); err != nil {
			return err
		}
	}
	return nil
}

// lloaddConfig runs OpenLDAP's lloadd standalone with k I/O threads in
// front of one slapd, its operation connections bound as the service
// account.
func lloaddConfig(dir string, k, conns int, server string) string {
	return fmt.Sprintf("pidfile %s\nthreads %d\nio-threads %d\n"+
		"bindconf bindmethod=simple binddn=\"%s\" credentials=%s\n"+
		"backend-server uri=ldap://%s numconns=%d bindconns=2 retry=1000 max-pending-ops=5000 conn-max-pending=1000\n",
		filepath.Join(dir, "lloadd.pid"), 2*k, k, slapdtest.ServiceDN, slapdtest.ServicePassword, server, conns)
}

// startLLoadd runs lloadd (BENCH_LLOADD) in front of the first replica.
func (b *bench) startLLoadd(ctx context.Context, c *slapdtest.Cluster, k int, ps *proxies) (target, error) {
	port, err := freePort()
	if err != nil {
		return target{}, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	name := fmt.Sprintf("lloadd (%d conns)", b.o.Cores.LLoaddConns)
	abs, _ := filepath.Abs(b.o.Out)
	path := b.file(name, ".conf")
	if err := os.WriteFile(path, []byte(lloaddConfig(abs, k, b.o.Cores.LLoaddConns, c.Replicas[0].Addr)), 0o600); err != nil {
		return target{}, err
	}
	p, err := startProc(name, b.file(name, ".log"), nil, b.o.LLoadd, "-f", path, "-h", "ldap://"+addr+"/", "-d", "0")
	if err != nil {
		return target{}, err
	}
	*ps = append(*ps, p)
	return b.ready(ctx, p, addr, name)
}

// pinTasks restricts every thread of process pid to cpus (threads created
// later inherit it from their creator).
func pinTasks(pid int, cpus []int) error {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return fmt.Errorf("benchrun: %w", err)
	}
	var mask [16]uint64 // up to 1024 CPUs
	for _, c := range cpus {
		mask[c/64] |= 1 << (c % 64)
	}
	for _, t := range tasks {
		tid, _ := strconv.Atoi(t.Name())
		_, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, uintptr(tid), unsafe.Sizeof(mask), uintptr(unsafe.Pointer(&mask)))
		if errno != 0 && errno != syscall.ESRCH { // a thread may end meanwhile
			return fmt.Errorf("benchrun: pin %d to CPUs %s: %w", tid, cpuList(cpus), errno)
		}
	}
	return nil
}

// cpuList writes CPUs as taskset does: "0-7,9".
func cpuList(cpus []int) string {
	var parts []string
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", cpus[i], cpus[j]))
		} else {
			parts = append(parts, strconv.Itoa(cpus[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}
