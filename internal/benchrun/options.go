package benchrun

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Options configure a benchmark run. OptionsFromEnv fills them from BENCH_*
// environment variables with defaults that keep `make bench` under about
// ten minutes on a small machine.
type Options struct {
	Ldapmux string // ldapmux binary built from this tree
	HAProxy string // haproxy binary; "" skips the HAProxy targets
	// Baseline is another ldapmux binary measured alongside in the same
	// rounds (BENCH_BASELINE: before and after a change); "" for none.
	Baseline string
	// LLoadd is OpenLDAP's load balancer, measured in the many-core
	// scenario when given (BENCH_LLOADD); "" for none.
	LLoadd     string
	ProfileBin string // test binary holding TestServeForProfile; "" skips profiling
	Out        string // directory for configurations, logs, results and profiles

	Duration     time.Duration // measured time per target and round (BENCH_DURATION, 5s)
	Warmup       time.Duration // unmeasured load before each    (BENCH_WARMUP, 2s)
	Rounds       int           // interleaved rounds per scenario (BENCH_ROUNDS, 3)
	Users        int           // sample users in the directory  (BENCH_USERS, 10000)
	Conns        int           // connections of the headline    (BENCH_CONNS, 8)
	IdleConns    int           // idle client connections        (BENCH_IDLE_CONNS, 10000)
	IdleHold     time.Duration // how long they are held         (BENCH_IDLE_HOLD, 5s)
	ScaleThreads int           // slapd threads when scaling     (BENCH_SCALE_THREADS, 2)
	ScaleConns   int           // connections when scaling       (BENCH_SCALE_CONNS, 16)
	// Pool holds pool keys of the ldapmux targets (BENCH_POOL_CONNS,
	// BENCH_POOL_MAX_CONNS, BENCH_POOL_GROW_AT; 0: the default). The
	// baseline gets only connections-per-server, which every version knows.
	Pool      PoolKeys
	ScalePin  bool          // also scale with pinned replicas (BENCH_SCALE_PIN, 1)
	Scenarios []string      // subset of AllScenarios         (BENCH_SCENARIOS, all)
	QuietWait time.Duration // wait for other load to end     (BENCH_QUIET_WAIT, 30s)
	Nice      int           // priority every process runs at (BENCH_NICE, set by scripts/bench.sh)
	Verbose   bool          // per-second progress lines      (BENCH_VERBOSE)
	// Cores is the many-core layout (cores.go).
	Cores Layout
}

// AllScenarios are the scenario names BENCH_SCENARIOS may list.
var AllScenarios = []string{"search8", "bound8", "search64", "search1", "bind64", "idle", "scale", "cores"}

// manyCoreCPUs is the machine size from which the scenarios default to the
// many-core layout, with slapd, the proxies and the load on separate CPUs.
const manyCoreCPUs = 8

// defaultScenarios are the scenarios of a machine with cpus CPUs.
func defaultScenarios(cpus int) string {
	if cpus >= manyCoreCPUs {
		return "cores,idle"
	}
	return "search8,bound8,search64,search1,bind64,idle,scale"
}

// OptionsFromEnv reads the BENCH_* variables.
func OptionsFromEnv() (Options, error) {
	o := Options{Out: env("BENCH_OUT", "bench-out"), Scenarios: strings.Split(env("BENCH_SCENARIOS", defaultScenarios(runtime.NumCPU())), ","),
		Verbose: env("BENCH_VERBOSE", "") != "", ScalePin: env("BENCH_SCALE_PIN", "1") != "0",
		Baseline: os.Getenv("BENCH_BASELINE"), LLoadd: os.Getenv("BENCH_LLOADD")}
	var errs []string
	layout, err := layoutFromEnv(runtime.NumCPU())
	if err != nil {
		errs = append(errs, err.Error())
	}
	o.Cores = layout
	durations := []struct {
		dst *time.Duration
		key string
		def string
	}{{&o.Duration, "BENCH_DURATION", "5s"}, {&o.Warmup, "BENCH_WARMUP", "2s"}, {&o.IdleHold, "BENCH_IDLE_HOLD", "5s"},
		{&o.QuietWait, "BENCH_QUIET_WAIT", "30s"}}
	for _, d := range durations {
		v, err := time.ParseDuration(env(d.key, d.def))
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", d.key, err))
		}
		*d.dst = v
	}
	ints := []struct {
		dst *int
		key string
		def int
	}{{&o.Users, "BENCH_USERS", 10000}, {&o.Conns, "BENCH_CONNS", 8}, {&o.IdleConns, "BENCH_IDLE_CONNS", 10000},
		{&o.ScaleThreads, "BENCH_SCALE_THREADS", 2}, {&o.ScaleConns, "BENCH_SCALE_CONNS", 16},
		{&o.Rounds, "BENCH_ROUNDS", 3}, {&o.Pool.Conns, "BENCH_POOL_CONNS", 0},
		{&o.Pool.MaxConns, "BENCH_POOL_MAX_CONNS", 0}, {&o.Pool.GrowAt, "BENCH_POOL_GROW_AT", 0}}
	o.Pool.EventLoops = os.Getenv("BENCH_EVENT_LOOPS")
	if n, err := strconv.Atoi(env("BENCH_NICE", "0")); err == nil {
		o.Nice = n
	}
	for _, i := range ints {
		v, err := strconv.Atoi(env(i.key, strconv.Itoa(i.def)))
		if err != nil || v < 0 {
			errs = append(errs, fmt.Sprintf("%s: want a non-negative integer", i.key))
		}
		*i.dst = v
	}
	if len(errs) > 0 {
		return o, fmt.Errorf("benchrun: %s", strings.Join(errs, "; "))
	}
	if o.Nice < 0 { // shielded from other load: do not wait for it to end
		o.QuietWait = 0
	}
	return o, nil
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// wants reports whether scenario is selected.
func (o *Options) wants(scenario string) bool {
	for _, s := range o.Scenarios {
		if strings.TrimSpace(s) == scenario {
			return true
		}
	}
	return false
}
