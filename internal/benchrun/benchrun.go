// Package benchrun is `make bench`: it starts slapd replicas, then puts the
// same load on a slapd directly, on ldapmux (failover and fewest-operations,
// run as a separate process built from this tree) and on HAProxy in TCP
// mode, and reports throughput, latency percentiles, the ratio to direct,
// and the CPU time and memory each process spent. Results are ratios from
// one run on one machine, never assertions.
package benchrun

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/ldapmux/ldapmux/internal/loadgen"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// Measurement is one load on one target.
type Measurement struct {
	Scenario       string          `json:"scenario"`
	Target         string          `json:"target"`
	Result         *loadgen.Result `json:"result"`
	Ratio          float64         `json:"ratio_to_direct"`
	AddedP50       float64         `json:"added_p50_us"`
	ProxyCPUPerOp  float64         `json:"proxy_cpu_us_per_op,omitempty"`
	ProxyRSSMiB    float64         `json:"proxy_rss_mib,omitempty"`
	SlapdCPUPerOp  float64         `json:"slapd_cpu_us_per_op"`
	ClientCPUPerOp float64         `json:"client_cpu_us_per_op"`
	// MachineCores is the CPU the whole machine used, in cores, and
	// OtherCores the part no process of the benchmark accounts for: other
	// load that makes the run less trustworthy.
	MachineCores float64 `json:"machine_cores"`
	OtherCores   float64 `json:"other_cores"`
}

// Report is everything one run measured.
type Report struct {
	Started      time.Time      `json:"started"`
	CPUs         int            `json:"cpus"`
	Options      Options        `json:"options"`
	Setup        []SetupTime    `json:"setup"`
	Measurements []*Measurement `json:"measurements"`
	Idle         *IdleResult    `json:"idle,omitempty"`
}

// SetupTime records how long preparing something took.
type SetupTime struct {
	What    string  `json:"what"`
	Seconds float64 `json:"seconds"`
}

// bench is one run in progress.
type bench struct {
	o     Options
	rep   *Report
	log   io.Writer
	slapd []int // pids of the running cluster's replicas
}

// Run performs the selected scenarios and prints the tables to stdout;
// progress goes to log. Results are also written to Out/results.json.
func Run(ctx context.Context, o Options, stdout, log io.Writer) error {
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return fmt.Errorf("benchrun: %w", err)
	}
	limit := raiseFileLimit(uint64(o.IdleConns) + 1024)
	fmt.Fprintf(log, "bench: %d CPUs, open-file limit %d, output in %s\n", runtime.NumCPU(), limit, o.Out)
	b := &bench{o: o, rep: &Report{Started: time.Now(), CPUs: runtime.NumCPU(), Options: o}, log: log}
	err := b.scenarios(ctx)
	b.rep.computeRatios()
	b.rep.WriteTables(stdout)
	if werr := b.writeJSON(); err == nil {
		err = werr
	}
	return err
}

// scenarios runs the main cluster's scenarios, then the scaling one.
func (b *bench) scenarios(ctx context.Context) error {
	if b.o.wants("search8") || b.o.wants("search1") || b.o.wants("idle") {
		if err := b.mainCluster(ctx); err != nil {
			return err
		}
	}
	if b.o.wants("scale") {
		return b.scaleCluster(ctx)
	}
	return nil
}

func (b *bench) writeJSON() error {
	data, err := json.MarshalIndent(b.rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(b.o.Out, "results.json"), data, 0o644)
}

// startCluster starts replicas with the benchmark's users and records how
// long it took (slapadd of the users dominates).
func (b *bench) startCluster(ctx context.Context, replicas, threads int) (*slapdtest.Cluster, error) {
	fmt.Fprintf(b.log, "bench: starting %d slapd replicas with %d users (threads %d)...\n", replicas, b.o.Users, threads)
	began := time.Now()
	c, err := slapdtest.Start(ctx, slapdtest.Options{Replicas: replicas, Users: b.o.Users, Threads: threads})
	if err != nil {
		return nil, fmt.Errorf("benchrun: %w (is slapd installed? `make deps`)", err)
	}
	took := time.Since(began)
	b.slapd = pids(c)
	what := fmt.Sprintf("%d replicas, %d users, threads %d (slapadd + start)", replicas, b.o.Users, threads)
	b.rep.Setup = append(b.rep.Setup, SetupTime{What: what, Seconds: took.Seconds()})
	fmt.Fprintf(b.log, "bench: replicas up in %s\n", took.Round(time.Millisecond))
	return c, nil
}

// searchLoad is the load of every scenario: base-object searches of
// random sample users, all attributes.
func (b *bench) searchLoad(conns int) loadgen.Config {
	return loadgen.Config{Conns: conns, Mix: loadgen.Mix{loadgen.Search: 1}, Scope: loadgen.ScopeBase,
		Base: fmt.Sprintf("uid=user.[1-%d],%s", max(b.o.Users, 1), slapdtest.PeopleDN), Filter: "(objectClass=*)"}
}

// target is where a load is sent.
type target struct {
	name  string
	addr  string
	proxy *proc // nil when the load goes straight to slapd
	slapd []int // pids of every replica
}

// measure warms the target up, then measures it while reading the CPU time
// of the proxy, the replicas and this process. A measurement disturbed by
// other load on the machine is repeated once the machine is quiet again.
func (b *bench) measure(ctx context.Context, scenario string, t target, lc loadgen.Config) error {
	lc.URL = "ldap://" + t.addr
	for attempt := 1; ; attempt++ {
		b.waitQuiet(ctx, t)
		m, err := b.measureOnce(ctx, scenario, t, lc)
		if err != nil {
			return fmt.Errorf("benchrun: %s/%s: %w", scenario, t.name, err)
		}
		if m.OtherCores <= maxOtherCores || attempt > b.o.Retries {
			b.rep.Measurements = append(b.rep.Measurements, m)
			return nil
		}
		fmt.Fprintf(b.log, "bench: other load on the machine (%.2f cores): measuring again\n", m.OtherCores)
	}
}

// maxOtherCores is the CPU other processes may use during a measurement
// before it is repeated (it also holds this run's own interrupt time).
const maxOtherCores = 0.25

func (b *bench) measureOnce(ctx context.Context, scenario string, t target, lc loadgen.Config) (*Measurement, error) {
	if err := b.warmup(ctx, lc); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	lc.Duration, lc.Warmup = b.o.Duration, 0
	if b.o.Verbose {
		lc.Progress = b.log
	}
	before := t.cpu()
	res, err := loadgen.Run(ctx, lc)
	if err != nil {
		return nil, err
	}
	m := t.account(scenario, res, before)
	fmt.Fprintf(b.log, "bench: %-8s %-30s %8.0f ops/s  p50 %6.0fµs  p99 %6.0fµs  errors %d  CPU %.2f cores (other %.2f)\n",
		scenario, t.name, res.OpsPerSec, res.Latency.P50, res.Latency.P99, res.Errors, m.MachineCores, m.OtherCores)
	return m, nil
}

// waitQuiet waits, at most QuietWait, until processes other than the
// benchmark's use less than a tenth of a core.
func (b *bench) waitQuiet(ctx context.Context, t target) {
	deadline := time.Now().Add(b.o.QuietWait)
	for said := false; time.Now().Before(deadline) && ctx.Err() == nil; said = true {
		before := t.cpu()
		sleepFor(ctx, time.Second)
		after := t.cpu()
		if other := otherCores(before, after); other < 0.1 {
			return
		} else if !said {
			fmt.Fprintf(b.log, "bench: waiting up to %s for other load (%.2f cores) to end...\n", b.o.QuietWait, other)
		}
	}
}

func (b *bench) warmup(ctx context.Context, lc loadgen.Config) error {
	if b.o.Warmup <= 0 {
		return nil
	}
	lc.Duration = b.o.Warmup
	_, err := loadgen.Run(ctx, lc)
	return err
}

// cpuSample is the CPU time of the processes involved at one moment.
type cpuSample struct {
	at                         time.Time
	proxy, slapd, self, system time.Duration
}

func (t target) cpu() cpuSample {
	s := cpuSample{at: time.Now(), slapd: cpuTimes(t.slapd), self: selfCPU(), system: systemBusy()}
	if t.proxy != nil {
		s.proxy, _ = cpuTime(t.proxy.pid())
	}
	return s
}

// account turns a result and the CPU time spent since before into a
// measurement.
func (t target) account(scenario string, res *loadgen.Result, before cpuSample) *Measurement {
	after := t.cpu()
	m := &Measurement{Scenario: scenario, Target: t.name, Result: res}
	ops := float64(max(res.Operations, 1))
	perOp := func(a, b time.Duration) float64 { return float64(a-b) / 1e3 / ops }
	m.SlapdCPUPerOp = perOp(after.slapd, before.slapd)
	m.ClientCPUPerOp = perOp(after.self, before.self)
	if t.proxy != nil {
		m.ProxyCPUPerOp = perOp(after.proxy, before.proxy)
		m.ProxyRSSMiB = rssMiB(t.proxy.pid(), "VmRSS")
	}
	wall := after.at.Sub(before.at).Seconds()
	m.MachineCores = (after.system - before.system).Seconds() / wall
	m.OtherCores = otherCores(before, after)
	return m
}

// otherCores is the CPU, in cores, that the machine used between two
// samples beyond what the benchmark's processes account for.
func otherCores(before, after cpuSample) float64 {
	wall := after.at.Sub(before.at).Seconds()
	ours := (after.proxy - before.proxy) + (after.slapd - before.slapd) + (after.self - before.self)
	return max((after.system-before.system-ours).Seconds()/wall, 0)
}

// computeRatios relates every measurement to the direct one of its scenario.
func (r *Report) computeRatios() {
	direct := map[string]*Measurement{}
	for _, m := range r.Measurements {
		if m.Target == "direct" {
			direct[m.Scenario] = m
		}
	}
	for _, m := range r.Measurements {
		if d := direct[m.Scenario]; d != nil && d.Result.OpsPerSec > 0 {
			m.Ratio = m.Result.OpsPerSec / d.Result.OpsPerSec
			m.AddedP50 = m.Result.Latency.P50 - d.Result.Latency.P50
		}
	}
}

func pids(c *slapdtest.Cluster) []int {
	var out []int
	for _, r := range c.Replicas {
		out = append(out, r.PID())
	}
	return out
}
