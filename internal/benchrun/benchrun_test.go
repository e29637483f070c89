package benchrun

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/loadgen"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

func result(opsPerSec, p50 float64) *loadgen.Result {
	return &loadgen.Result{Operations: uint64(opsPerSec * 10), OpsPerSec: opsPerSec, Latency: loadgen.Latency{P50: p50, P99: 2 * p50}}
}

func TestTablesAndRatios(t *testing.T) {
	rep := &Report{CPUs: 2, Options: Options{Conns: 8, ScaleThreads: 2, ScaleConns: 16}}
	rep.Measurements = []*Measurement{
		{Scenario: "search8", Target: "direct", Result: result(1000, 100)},
		{Scenario: "search8", Target: "ldapmux failover", Result: result(900, 150), ProxyCPUPerOp: 12.5},
		{Scenario: "search1", Target: "direct", Result: result(500, 80)},
		{Scenario: "search1", Target: "ldapmux failover", Result: result(400, 130)},
	}
	rep.Idle = &IdleResult{Wanted: 10, Opened: 10, IdleRSSMiB: 20}
	rep.computeRatios()
	var sb strings.Builder
	rep.WriteTables(&sb)
	out := sb.String()
	for _, want := range []string{"| direct | 1000 | 100 | 200 | 1.00 | - |", "| ldapmux failover | 900 | 150 | 300 | 0.90 | +50 | 12.5 |",
		"| ldapmux failover | 400 | 130 | 260 | 0.80 | +50 |", "idle client connections", "| 10 of 10"} {
		if !strings.Contains(out, want) {
			t.Errorf("tables lack %q:\n%s", want, out)
		}
	}
}

func TestLdapmuxConfigIsValid(t *testing.T) {
	replicas := []*slapdtest.Replica{{ID: 1, Addr: "127.0.0.1:3891"}, {ID: 2, Addr: "127.0.0.1:3892"}}
	cfg, err := config.Parse([]byte(ldapmuxConfig("127.0.0.1:0", replicas, "fewest-operations", 11000)))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Limits.MaxClientConnections != 11000 || len(cfg.Servers) != 2 {
		t.Errorf("limits %+v, servers %d", cfg.Limits, len(cfg.Servers))
	}
	hc := haproxyConfig("127.0.0.1:1", replicas, 100)
	if !strings.Contains(hc, "balance roundrobin") || !strings.Contains(hc, "server ds2 127.0.0.1:3892") {
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
