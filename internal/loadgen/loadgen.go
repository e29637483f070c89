// Package loadgen puts LDAP load on a server, in the spirit of OpenLDAP's
// searchrate, modrate and authrate tools: a fixed number of connections,
// each with one operation outstanding at a time, sending searches, modifies
// and binds drawn from templates, optionally paced to a target rate. It
// records latencies in fixed-memory histograms and reports throughput and
// percentiles, live and at the end.
//
// Requests are encoded by hand and responses framed with ldapwire, so that
// the client costs a few hundred nanoseconds and almost no allocations per
// operation: on a small machine the load generator shares the CPU with the
// servers it measures.
package loadgen

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes a load.
type Config struct {
	URL      string        // ldap://host:port
	BindDN   string        // identity of the search/modify connections; "" is anonymous
	Password string        // password of BindDN
	Conns    int           // client connections, default 1
	Duration time.Duration // measured time, default 10s
	Warmup   time.Duration // load before measuring, not counted
	Rate     float64       // target operations per second over all connections; 0 is unbounded
	Timeout  time.Duration // per operation and connection attempt, default 10s
	Mix      Mix           // shares of searches, modifies and binds; default searches only

	Base      string   // search base, and entry modified (template)
	Scope     int      // ScopeBase, ScopeOne or ScopeSub
	Filter    string   // search filter (template), default (objectClass=*)
	Attrs     []string // attributes to return; none means all user attributes
	SizeLimit int

	ModifyAttr  string // attribute replaced by modifies, default description
	ModifyValue string // its new value (template)

	BindDNs       string // DN of bind operations (template)
	BindPasswords string // their password (template)

	Progress io.Writer // receives a progress line every second; nil for none
	Seed     uint64    // random seed; 0 picks one from the clock
}

func (c Config) withDefaults() Config {
	if c.Conns <= 0 {
		c.Conns = 1
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Mix.total() == 0 {
		c.Mix = Mix{Search: 1}
	}
	if c.Filter == "" {
		c.Filter = "(objectClass=*)"
	}
	if c.ModifyAttr == "" {
		c.ModifyAttr = "description"
	}
	if c.ModifyValue == "" {
		c.ModifyValue = "loadgen [0-999999999]"
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	return c
}

// Phases of a run.
const (
	warming int32 = iota
	measuring
	stopped
)

// run is the shared state of one Run.
type run struct {
	cfg     Config
	addr    string
	plan    *plan
	phase   atomic.Int32
	pace    *pacer
	workers []*worker
}

// Run puts the load on the server and returns the measurements. It stops
// early, with what was measured so far, when ctx ends during measurement.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	r, err := newRun(cfg)
	if err != nil {
		return nil, err
	}
	if err := r.connect(ctx); err != nil {
		return nil, err
	}
	return r.execute(ctx), nil
}

func newRun(cfg Config) (*run, error) {
	cfg = cfg.withDefaults()
	addr, err := hostPort(cfg.URL)
	if err != nil {
		return nil, err
	}
	p, err := newPlan(&cfg)
	if err != nil {
		return nil, err
	}
	return &run{cfg: cfg, addr: addr, plan: p}, nil
}

// connect opens every connection before the clock starts.
func (r *run) connect(ctx context.Context) error {
	for i := range r.cfg.Conns {
		w := newWorker(r, uint64(i))
		if err := w.connect(ctx); err != nil {
			r.closeAll()
			return fmt.Errorf("%w (connection %d of %d)", err, i+1, r.cfg.Conns)
		}
		r.workers = append(r.workers, w)
	}
	return nil
}

func (r *run) closeAll() {
	for _, w := range r.workers {
		w.closeConns()
	}
}

// execute runs the warm-up and the measurement.
func (r *run) execute(ctx context.Context) *Result {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if r.cfg.Rate > 0 {
		r.pace = newPacer(r.cfg.Rate)
	}
	var wg sync.WaitGroup
	for _, w := range r.workers {
		wg.Go(func() { w.loop(ctx) })
	}
	rep := newReporter(r)
	repDone := make(chan struct{})
	go func() { defer close(repDone); rep.loop(ctx) }()
	measured := r.timeline(ctx)
	cancel()
	wg.Wait()
	<-repDone
	return r.result(measured)
}

// timeline waits out the warm-up and the measurement and returns how long
// the measurement lasted.
func (r *run) timeline(ctx context.Context) time.Duration {
	defer r.phase.Store(stopped)
	if !sleepCtx(ctx, r.cfg.Warmup) {
		return 0
	}
	r.phase.Store(measuring)
	start := time.Now()
	sleepCtx(ctx, r.cfg.Duration)
	return time.Since(start)
}

// sleepCtx waits d or until ctx ends; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// pacer hands out evenly spaced start times for a target rate.
type pacer struct {
	start    time.Time
	interval time.Duration
	n        atomic.Int64
}

func newPacer(rate float64) *pacer {
	return &pacer{start: time.Now(), interval: time.Duration(float64(time.Second) / rate)}
}

// next waits for the next operation's slot and returns the time latency is
// measured from: the intended start when the worker is behind (so that a
// server that cannot keep up has its queueing counted: no coordinated
// omission), the actual wake-up otherwise (timer lateness is the client's).
func (p *pacer) next(ctx context.Context) (time.Time, bool) {
	at := p.start.Add(time.Duration(p.n.Add(1)-1) * p.interval)
	d := time.Until(at)
	if d <= 0 {
		return at, true
	}
	ok := sleepCtx(ctx, d)
	return time.Now(), ok
}
