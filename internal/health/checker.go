// Package health decides each backend server's state. It is the only writer
// of health into the backend registry; algorithms read the snapshots.
//
// Each server has checks (search, replication-backlog, admin-alert,
// busyness; one file each). A run executes all of a server's checks, one
// after the other, and publishes their combination: the worst state wins,
// the score is the lowest of all the checks' scores, and the reason is that
// of the check that decided the state. Runs happen every Frequency, never
// two at once on one server, and at once after an operation to the server
// failed or a watcher (the admin-alert persistent search) asked for one.
package health

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
)

// Result is what one check says about one server.
type Result struct {
	State  backend.State
	Score  int // 1..10, ranks servers of the same state
	Reason string
}

// Check examines one server. A check value belongs to one server: it may
// remember earlier runs (hysteresis) since runs never overlap. Run must
// honour ctx's deadline.
type Check interface {
	Name() string
	Run(ctx context.Context, t *Target) Result
}

// Watcher is a check that also watches its server between runs (such as a
// persistent search). Watch runs until ctx ends and calls t.Trigger to ask
// for a run.
type Watcher interface {
	Watch(ctx context.Context, t *Target)
}

// demoter is a check with hysteresis: after an operation to its server
// failed, it treats the server as unavailable until it sees it recover by
// the stricter thresholds for leaving that state.
type demoter interface {
	demote()
}

// Config sets when checks run.
type Config struct {
	Frequency time.Duration    // default time between two runs on a server; default 1s
	Timeout   time.Duration    // bounds each check of a run; default 5s
	Now       func() time.Time // clock for measurements; default time.Now
}

// Checker runs the checks of every server.
type Checker struct {
	cfg     Config
	reg     *backend.Registry
	targets []*Target
	checks  [][]Check // per server
	log     *slog.Logger
}

// NewChecker prepares checks for every server of the registry. It gives
// each target the checker's clock and, unless set, its frequency.
func NewChecker(cfg Config, reg *backend.Registry, targets []*Target, checks [][]Check, log *slog.Logger) *Checker {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Frequency <= 0 {
		cfg.Frequency = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	for _, t := range targets {
		t.now = cfg.Now
		if t.Frequency <= 0 {
			t.Frequency = cfg.Frequency
		}
	}
	return &Checker{cfg: cfg, reg: reg, targets: targets, checks: checks, log: log}
}

// Targets are the check targets, in server order.
func (c *Checker) Targets() []*Target { return c.targets }

// Run checks every server until ctx ends.
func (c *Checker) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i, t := range c.targets {
		wg.Go(func() { c.loop(ctx, i) })
		for _, chk := range c.checks[i] {
			if w, ok := chk.(Watcher); ok {
				wg.Go(func() { w.Watch(ctx, t) })
			}
		}
	}
	wg.Wait()
	for _, t := range c.targets {
		t.Close()
	}
}

// loop runs the checks of one server: never two runs at once. A tick that
// comes during a long run is kept, so the next run starts when it ends.
func (c *Checker) loop(ctx context.Context, i int) {
	t := c.targets[i]
	ticker := time.NewTicker(t.Frequency)
	defer ticker.Stop()
	for {
		c.CheckNow(ctx, i)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-t.trigger:
		}
	}
}

// CheckNow runs every check of server i once and publishes the combined
// result, unless ctx ended or an operation to the server failed meanwhile
// (the run that failure triggered decides then).
func (c *Checker) CheckNow(ctx context.Context, i int) Result {
	t := c.targets[i]
	if !t.running.CompareAndSwap(false, true) {
		t.overlaps.Add(1) // never expected: loop runs one check at a time
		return Result{State: backend.Unavailable, Score: 1, Reason: "check already running"}
	}
	defer t.running.Store(false)
	t.runs.Add(1)
	gen := c.applyFailures(i)
	t.beginRun()
	r, check, ok := c.runChecks(ctx, i)
	if ok {
		c.publishRun(i, gen, r, check)
		if r.State == backend.Unavailable && t.wasSilent() {
			c.giveUpInFlight(t, r.Reason)
		}
	}
	return r
}

// giveUpInFlight takes the operations that can leave server t off it once
// a run found it not answering: reads with no response yet go to the next
// server, long-lived searches end, instead of waiting for their timeout
// (or for ever). Writes keep waiting: the server may still apply them.
func (c *Checker) giveUpInFlight(t *Target, reason string) {
	if n := t.Server.GiveUpInFlight(reason); n > 0 {
		c.log.Warn("operations taken off a server that does not answer", "server", t.Server.Name, "operations", n, "reason", reason)
	}
}

// applyFailures tells the checks of server i about passive failures
// reported since the last run, and returns the failure count.
func (c *Checker) applyFailures(i int) int64 {
	t := c.targets[i]
	gen := t.failures.Load()
	if gen == t.seenFailures {
		return gen
	}
	t.seenFailures = gen
	for _, chk := range c.checks[i] {
		if d, ok := chk.(demoter); ok {
			d.demote()
		}
	}
	return gen
}

// runChecks runs each check of server i with its own timeout and combines
// the results; it names the deciding check. ok is false if ctx ended.
func (c *Checker) runChecks(ctx context.Context, i int) (r Result, check string, ok bool) {
	checks := c.checks[i]
	if len(checks) == 0 {
		return Result{State: backend.Available, Score: 10, Reason: "no checks"}, "", true
	}
	results := make([]Result, len(checks))
	for j, chk := range checks {
		rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		results[j] = chk.Run(rctx, c.targets[i])
		cancel()
		if ctx.Err() != nil {
			return results[j], chk.Name(), false
		}
	}
	r, at := decide(results)
	return r, checks[at].Name(), true
}

// publishRun publishes a run's result unless a passive failure came in
// since the run began. A server that declined an operation within
// DeclineHold stays degraded at best.
func (c *Checker) publishRun(i int, gen int64, r Result, check string) {
	t := c.targets[i]
	t.pubMu.Lock()
	defer t.pubMu.Unlock()
	if t.failures.Load() != gen {
		return
	}
	if d, ok := c.declined(t); ok && d.State > r.State {
		r, check = d, declinedCheck
	}
	c.publish(i, r, check)
}

// DeclineHold is how long a server that answered an operation busy or
// unavailable stays degraded after the last such answer: used only when
// no available server is left, it gets operations again once that long
// has passed without one.
const DeclineHold = 10 * time.Second

// declinedCheck names the passive decline signal in states and metrics.
const declinedCheck = "declined"

// declined is the degraded result of a server that declined an operation
// within DeclineHold. Caller holds t.pubMu.
func (c *Checker) declined(t *Target) (Result, bool) {
	at := t.declinedAt.Load()
	if at == 0 || c.cfg.Now().Sub(time.Unix(0, at)) >= DeclineHold {
		return Result{}, false
	}
	return Result{State: backend.Degraded, Score: fixedScore(backend.Degraded), Reason: *t.declineReason.Load()}, true
}

// OperationDeclined marks an available server degraded at once after it
// answered an operation busy (51) or unavailable (52): it works, but said
// it would not do what it was asked. It stays degraded for DeclineHold
// after its last such answer, whatever its checks say.
func (c *Checker) OperationDeclined(s *backend.Server, reason string) {
	t := c.targets[s.Index]
	reason = "declined an operation: " + reason
	t.pubMu.Lock()
	defer t.pubMu.Unlock()
	t.declineReason.Store(&reason)
	t.declinedAt.Store(c.cfg.Now().UnixNano())
	if c.reg.Snapshot().Servers[s.Index].Health.State == backend.Available {
		d, _ := c.declined(t)
		c.publish(s.Index, d, declinedCheck)
	}
}

// publish records a result; a state change is logged once.
func (c *Checker) publish(i int, r Result, check string) {
	h := backend.Health{State: r.State, Score: r.Score, Reason: r.Reason, Check: check}
	if !c.reg.SetHealth(i, h) {
		return
	}
	level := slog.LevelWarn
	if r.State == backend.Available {
		level = slog.LevelInfo
	}
	srv := c.reg.Snapshot().Servers[i]
	c.log.Log(context.Background(), level, "server state changed", "server", srv.Name,
		"state", r.State.String(), "score", r.Score, "check", check, "reason", r.Reason)
}

// OperationFailed marks a server unavailable at once after a failed
// operation and checks it again right away. The checks with hysteresis
// then treat it as coming back from unavailable: it must meet their
// thresholds for leaving that state (e.g. available-below), so a passive
// failure cannot be undone by a merely borderline result.
func (c *Checker) OperationFailed(s *backend.Server, err error) {
	t := c.targets[s.Index]
	t.pubMu.Lock()
	t.failures.Add(1)
	c.publish(s.Index, Result{State: backend.Unavailable, Score: 1, Reason: fmt.Sprintf("operation failed: %v", err)}, "operation")
	t.pubMu.Unlock()
	t.Trigger()
}
