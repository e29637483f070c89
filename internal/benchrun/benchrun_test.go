package benchrun

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/loadgen"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

func round(opsPerSec, p50 float64) *Round {
	return &Round{Result: &loadgen.Result{Operations: uint64(opsPerSec * 5), OpsPerSec: opsPerSec,
		Latency: loadgen.Latency{P50: p50, P99: 2 * p50}}, usage: cpuUsage{proxy: time.Second, wall: 5 * time.Second}}
}

func TestAggregateAndTables(t *testing.T) {
	direct := []*Round{round(1000, 100), round(1100, 90), round(900, 110)}
	proxied := []*Round{round(900, 150), round(800, 140), round(900, 160)}
	rep := &Report{CPUs: 2, Options: Options{Conns: 8, Rounds: 3}}
	dm := aggregate("search8", target{name: "direct"}, direct, direct)
	pm := aggregate("search8", target{name: "ldapmux failover", proxy: &proc{}}, proxied, direct)
	if dm.OpsPerSec != 1000 || dm.Ratio != 1 || pm.OpsPerSec != 900 || pm.P50 != 150 || pm.AddedP50 != 50 {
		t.Fatalf("direct %+v\nproxied %+v", dm, pm)
	}
	if pm.Ratio != 0.9 || pm.RatioMin < 0.72 || pm.RatioMin > 0.73 || pm.RatioMax != 1 {
		t.Errorf("ratios %.3f [%.3f-%.3f], want 0.90 [0.73-1.00]", pm.Ratio, pm.RatioMin, pm.RatioMax)
	}
	rep.Measurements = []*Measurement{dm, pm}
	rep.Idle = &IdleResult{Wanted: 10, Opened: 10, IdleRSSMiB: 20}
	var sb strings.Builder
	rep.WriteTables(&sb)
	out := sb.String()
	for _, want := range []string{"| direct | 1000 | 100 | 200 | 1.00 | - |", "| ldapmux failover | 900 | 150 | 300 | 0.90 [0.73-1.00] | +50 |",
		"idle client connections", "| 10 of 10"} {
		if !strings.Contains(out, want) {
			t.Errorf("tables lack %q:\n%s", want, out)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestLdapmuxConfigIsValid(t *testing.T) {
	replicas := []*slapdtest.Replica{{ID: 1, Addr: "127.0.0.1:3891"}, {ID: 2, Addr: "127.0.0.1:3892"}}
	cfg, err := config.Parse([]byte(ldapmuxConfig("127.0.0.1:0", replicas, "fewest-operations", 11000, PoolKeys{Conns: 2, MaxConns: 8, GrowAt: 3, EventLoops: "off"})))
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.Pool; p.ConnectionsPerServer != 2 || p.MaxConnectionsPerServer != 8 || p.GrowAtOperationsPerConnection != 3 {
		t.Errorf("pool %+v", p)
	}
	if cfg.Limits.MaxClientConnections != 11000 || len(cfg.Servers) != 2 {
		t.Errorf("limits %+v, servers %d", cfg.Limits, len(cfg.Servers))
	}
	hc := haproxyConfig("127.0.0.1:1", replicas, 100, 2)
	if !strings.Contains(hc, "balance roundrobin") || !strings.Contains(hc, "server ds2 127.0.0.1:3892") || !strings.Contains(hc, "nbthread 2") {
		t.Errorf("haproxy config:\n%s", hc)
	}
}

func TestProcessStatistics(t *testing.T) {
	if _, err := cpuTime(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if rss := rssMiB(os.Getpid(), "VmRSS"); rss <= 0 {
		t.Errorf("RSS %.1f MiB", rss)
	}
	if selfCPU() <= 0 {
		t.Error("no CPU time for this process")
	}
	if _, err := cpuTime(-1); err == nil {
		t.Error("cpuTime of a missing process")
	}
}

func TestOptionsFromEnv(t *testing.T) {
	t.Setenv("BENCH_DURATION", "2s")
	t.Setenv("BENCH_SCENARIOS", "search8,idle")
	o, err := OptionsFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if o.Duration.Seconds() != 2 || !o.wants("idle") || o.wants("scale") || o.Users != 10000 {
		t.Errorf("options %+v", o)
	}
	t.Setenv("BENCH_NICE", "-5")
	if o, _ := OptionsFromEnv(); o.QuietWait != 0 || o.Nice != -5 {
		t.Errorf("with BENCH_NICE: quiet wait %s, nice %d", o.QuietWait, o.Nice)
	}
	t.Setenv("BENCH_USERS", "many")
	if _, err := OptionsFromEnv(); err == nil {
		t.Error("bad BENCH_USERS accepted")
	}
}

func TestPinToCPU(t *testing.T) {
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep command:", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if err := pinToCPU(cmd.Process.Pid, 0); err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), "Cpus_allowed_list:\t0\n") {
		t.Errorf("not pinned to CPU 0:\n%s", status)
	}
}

func TestLayouts(t *testing.T) {
	l := defaultLayout(16)
	if cpuList(l.Slapd) != "0-7" || cpuList(l.Proxy) != "8-11" || cpuList(l.Load) != "12-15" || l.SlapdThreads != 16 {
		t.Errorf("16 CPUs: %+v", l)
	}
	if l := defaultLayout(8); cpuList(l.Slapd) != "0-1" || cpuList(l.Proxy) != "2-5" || cpuList(l.Load) != "6-7" {
		t.Errorf("8 CPUs: %+v", l)
	}
	t.Setenv("BENCH_CORES_SLAPD", "0-3,6")
	t.Setenv("BENCH_CORES_CLIENTS", "1,32")
	l, err := layoutFromEnv(16)
	if err != nil || cpuList(l.Slapd) != "0-3,6" || l.SlapdThreads != 10 || len(l.Clients) != 2 || l.Clients[1] != 32 {
		t.Errorf("overrides: %+v %v", l, err)
	}
	t.Setenv("BENCH_CORES_PROXIES", "1-2")
	if _, err := layoutFromEnv(16); err == nil {
		t.Error("a range of proxy core counts was accepted")
	}
}

func TestCoresSummary(t *testing.T) {
	withSlapd := func(r *Round, slapd time.Duration) *Round { r.usage.slapd = slapd; return r }
	direct := []*Round{withSlapd(round(1000, 100), 250*time.Millisecond)}
	rep := &Report{CPUs: 16, Options: Options{Rounds: 1}}
	for _, sc := range []string{"cores1-c64", "cores2-c64"} {
		rep.Measurements = append(rep.Measurements, aggregate(sc, target{name: "direct"}, direct, direct),
			aggregate(sc, target{name: "ldapmux failover", proxy: &proc{}}, []*Round{withSlapd(round(950, 120), 285*time.Millisecond)}, direct),
			aggregate(sc, target{name: "haproxy (tcp)", proxy: &proc{}}, []*Round{withSlapd(round(990, 110), 247500*time.Microsecond)}, direct))
	}
	var sb strings.Builder
	rep.WriteTables(&sb)
	for _, want := range []string{"| proxy cores, clients | direct ops/s, slapd CPU µs/op | ldapmux failover | haproxy (tcp) |",
		"| 2, 64 | 1000, 50.0 | 0.95, 210.5, +20, 60.0 | 0.99, 202.0, +10, 50.0 |"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, sb.String())
		}
	}
}
