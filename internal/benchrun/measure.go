package benchrun

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ldapmux/ldapmux/internal/loadgen"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// target is where a load is sent.
type target struct {
	name  string
	addr  string
	proxy *proc // nil when the load goes straight to slapd
	slapd []int // pids of every replica
}

// Measurement is one target in one scenario: medians over the rounds.
type Measurement struct {
	Scenario  string   `json:"scenario"`
	Target    string   `json:"target"`
	Rounds    []*Round `json:"rounds"`
	OpsPerSec float64  `json:"ops_per_sec"` // median
	P50       float64  `json:"p50_us"`      // median
	P99       float64  `json:"p99_us"`      // median
	Errors    uint64   `json:"errors"`      // total
	Ratio     float64  `json:"ratio_to_direct"`
	RatioMin  float64  `json:"ratio_min"`
	RatioMax  float64  `json:"ratio_max"`
	AddedP50  float64  `json:"added_p50_us"`
	// CPU per operation over all rounds, in microseconds.
	ProxyCPUPerOp  float64 `json:"proxy_cpu_us_per_op,omitempty"`
	SlapdCPUPerOp  float64 `json:"slapd_cpu_us_per_op"`
	ClientCPUPerOp float64 `json:"client_cpu_us_per_op"`
	ProxyRSSMiB    float64 `json:"proxy_rss_mib,omitempty"`
	// MachineCores is the CPU the whole machine used, in cores, and
	// OtherCores the part no process of the benchmark accounts for: other
	// load that makes the run less trustworthy (averages over the rounds).
	MachineCores float64 `json:"machine_cores"`
	OtherCores   float64 `json:"other_cores"`
}

// Round is one measurement of one target.
type Round struct {
	Result *loadgen.Result `json:"result"`
	Ratio  float64         `json:"ratio_to_direct"`
	RSSMiB float64         `json:"proxy_rss_mib,omitempty"` // after the round
	usage  cpuUsage
}

// cpuUsage is the CPU the processes involved used during a round.
type cpuUsage struct{ proxy, slapd, self, system, wall time.Duration }

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

func usage(before, after cpuSample) cpuUsage {
	return cpuUsage{proxy: after.proxy - before.proxy, slapd: after.slapd - before.slapd, self: after.self - before.self,
		system: after.system - before.system, wall: after.at.Sub(before.at)}
}

func (u cpuUsage) other() time.Duration { return max(u.system-u.proxy-u.slapd-u.self, 0) }

// compare measures every target in Rounds interleaved rounds, rotating the
// order, and records one aggregated measurement per target. targets[0] is
// the direct target the ratios refer to.
func (b *bench) compare(ctx context.Context, scenario string, targets []target, lc loadgen.Config) error {
	rounds := make([][]*Round, len(targets))
	for r := range max(b.o.Rounds, 1) {
		for k := range targets {
			i := (k + r) % len(targets)
			round, err := b.round(ctx, scenario, targets[i], lc)
			if err != nil {
				return fmt.Errorf("benchrun: %s/%s: %w", scenario, targets[i].name, err)
			}
			rounds[i] = append(rounds[i], round)
		}
	}
	for i, t := range targets {
		b.rep.Measurements = append(b.rep.Measurements, aggregate(scenario, t, rounds[i], rounds[0]))
	}
	return nil
}

// round warms a target up and measures it once.
func (b *bench) round(ctx context.Context, scenario string, t target, lc loadgen.Config) (*Round, error) {
	b.waitQuiet(ctx, t)
	lc.URL = "ldap://" + t.addr
	if b.o.Warmup > 0 {
		warm := lc
		warm.Duration = b.o.Warmup
		if _, err := loadgen.Run(ctx, warm); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	lc.Duration = b.o.Duration
	if b.o.Verbose {
		lc.Progress = b.log
	}
	before := t.cpu()
	res, err := loadgen.Run(ctx, lc)
	if err != nil {
		return nil, err
	}
	u := usage(before, t.cpu())
	var rss float64
	if t.proxy != nil {
		rss = rssMiB(t.proxy.pid(), "VmRSS")
	}
	fmt.Fprintf(b.log, "bench: %-12s %-30s %8.0f ops/s  p50 %6.0fµs  p99 %6.0fµs  errors %d  other load %.2f cores\n",
		scenario, t.name, res.OpsPerSec, res.Latency.P50, res.Latency.P99, res.Errors, u.other().Seconds()/u.wall.Seconds())
	return &Round{Result: res, RSSMiB: rss, usage: u}, nil
}

// aggregate turns a target's rounds into a measurement; direct holds the
// direct target's rounds of the same scenario, in the same order.
func aggregate(scenario string, t target, rounds, direct []*Round) *Measurement {
	m := &Measurement{Scenario: scenario, Target: t.name, Rounds: rounds}
	var ops, p50, p99, ratios, dp50 []float64
	var total cpuUsage
	var n uint64
	for i, r := range rounds {
		res := r.Result
		ops, p50, p99 = append(ops, res.OpsPerSec), append(p50, res.Latency.P50), append(p99, res.Latency.P99)
		if d := direct[i].Result; d.OpsPerSec > 0 {
			r.Ratio = res.OpsPerSec / d.OpsPerSec
			ratios = append(ratios, r.Ratio)
		}
		dp50 = append(dp50, direct[i].Result.Latency.P50)
		m.Errors += res.Errors
		m.ProxyRSSMiB = max(m.ProxyRSSMiB, r.RSSMiB)
		n += res.Operations
		total = total.add(r.usage)
	}
	m.OpsPerSec, m.P50, m.P99 = median(ops), median(p50), median(p99)
	m.Ratio, m.RatioMin, m.RatioMax = median(ratios), slices.Min(ratios), slices.Max(ratios)
	m.AddedP50 = m.P50 - median(dp50)
	m.account(t, total, n)
	return m
}

func (u cpuUsage) add(o cpuUsage) cpuUsage {
	return cpuUsage{u.proxy + o.proxy, u.slapd + o.slapd, u.self + o.self, u.system + o.system, u.wall + o.wall}
}

// account fills in the CPU per operation and the machine's load.
func (m *Measurement) account(t target, u cpuUsage, ops uint64) {
	perOp := func(d time.Duration) float64 { return float64(d) / 1e3 / float64(max(ops, 1)) }
	m.SlapdCPUPerOp, m.ClientCPUPerOp = perOp(u.slapd), perOp(u.self)
	if t.proxy != nil {
		m.ProxyCPUPerOp = perOp(u.proxy)
	}
	if u.wall > 0 {
		m.MachineCores = u.system.Seconds() / u.wall.Seconds()
		m.OtherCores = u.other().Seconds() / u.wall.Seconds()
	}
}

// median of xs (0 for none); xs is reordered.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}

// waitQuiet waits, at most QuietWait, until processes other than the
// benchmark's use less than a tenth of a core.
func (b *bench) waitQuiet(ctx context.Context, t target) {
	deadline := time.Now().Add(b.o.QuietWait)
	for said := false; time.Now().Before(deadline) && ctx.Err() == nil; said = true {
		before := t.cpu()
		sleepFor(ctx, time.Second)
		u := usage(before, t.cpu())
		other := u.other().Seconds() / u.wall.Seconds()
		if other < 0.1 {
			return
		}
		if !said {
			fmt.Fprintf(b.log, "bench: waiting up to %s for other load (%.2f cores) to end...\n", b.o.QuietWait, other)
		}
	}
}

// bindLoad is simple binds of random sample users with their passwords,
// one outstanding per connection (mail or single sign-on logins).
func (b *bench) bindLoad(conns int) loadgen.Config {
	users := max(b.o.Users, 1)
	return loadgen.Config{Conns: conns, Mix: loadgen.Mix{loadgen.Bind: 1},
		BindDNs:       fmt.Sprintf("uid=user.[1-%d],%s", users, slapdtest.PeopleDN),
		BindPasswords: fmt.Sprintf("password.[1-%d]", users)}
}

// searchLoad is the load of every scenario: base-object searches of
// random sample users, all attributes.
func (b *bench) searchLoad(conns int) loadgen.Config {
	return loadgen.Config{Conns: conns, Mix: loadgen.Mix{loadgen.Search: 1}, Scope: loadgen.ScopeBase,
		Base: fmt.Sprintf("uid=user.[1-%d],%s", max(b.o.Users, 1), slapdtest.PeopleDN), Filter: "(objectClass=*)"}
}

// boundSearchLoad is searchLoad on connections bound as a user: through
// ldapmux each search then carries the user's identity in a Proxied
// Authorization control, where anonymous ones go on unbound connections.
func (b *bench) boundSearchLoad(conns int) loadgen.Config {
	cfg := b.searchLoad(conns)
	cfg.BindDN, cfg.Password = slapdtest.UserDN(1), slapdtest.UserPassword(1)
	return cfg
}
