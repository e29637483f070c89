// Package health decides each backend server's state. It is the only writer
// of health into the backend registry; algorithms read the snapshots.
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
	Score  int // 1..10
	Reason string
}

// Check examines one server. Run must honour ctx's deadline.
type Check interface {
	Name() string
	Run(ctx context.Context, t *Target) Result
}

// Config sets when checks run.
type Config struct {
	Frequency time.Duration // between two runs on a server
	Timeout   time.Duration // bounds one run
}

// Checker runs the checks of every server, one run at a time per server, on a
// schedule and again at once after an operation to the server failed.
type Checker struct {
	cfg     Config
	reg     *backend.Registry
	targets []*Target
	checks  [][]Check // per server
	log     *slog.Logger
}

// NewChecker prepares checks for every server of the registry.
func NewChecker(cfg Config, reg *backend.Registry, targets []*Target, checks [][]Check, log *slog.Logger) *Checker {
	return &Checker{cfg: cfg, reg: reg, targets: targets, checks: checks, log: log}
}

// Run checks every server until ctx ends.
func (c *Checker) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range c.targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.loop(ctx, i)
		}()
	}
	wg.Wait()
	for _, t := range c.targets {
		t.Close()
	}
}

// loop runs the checks of one server: never two runs at once.
func (c *Checker) loop(ctx context.Context, i int) {
	ticker := time.NewTicker(c.cfg.Frequency)
	defer ticker.Stop()
	for {
		c.CheckNow(ctx, i)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-c.targets[i].trigger:
		}
	}
}

// CheckNow runs every check of server i once and publishes the combined result.
func (c *Checker) CheckNow(ctx context.Context, i int) Result {
	t := c.targets[i]
	if !t.running.CompareAndSwap(false, true) {
		t.overlaps.Add(1) // never expected: loop runs one check at a time
		return Result{State: backend.Unavailable, Reason: "check already running"}
	}
	defer t.running.Store(false)
	t.runs.Add(1)
	worst, name := Result{State: backend.Available, Score: 10, Reason: "all checks passed"}, ""
	for _, chk := range c.checks[i] {
		rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		r := chk.Run(rctx, t)
		cancel()
		if ctx.Err() != nil {
			return worst
		}
		if r.State > worst.State || (r.State == worst.State && r.Score < worst.Score) {
			worst, name = r, chk.Name()
		}
	}
	c.publish(i, worst, name)
	return worst
}

// publish records a result; a state change is logged once.
func (c *Checker) publish(i int, r Result, check string) {
	h := backend.Health{State: r.State, Score: r.Score, Reason: r.Reason, Check: check}
	if c.reg.SetHealth(i, h) {
		srv := c.reg.Snapshot().Servers[i]
		c.log.Info("server state changed", "server", srv.Name, "state", r.State.String(), "score", r.Score, "check", check, "reason", r.Reason)
	}
}

// OperationFailed marks a server unavailable at once after a failed
// operation and checks it again right away: the next check decides when it
// comes back.
func (c *Checker) OperationFailed(s *backend.Server, err error) {
	c.publish(s.Index, Result{State: backend.Unavailable, Score: 1, Reason: fmt.Sprintf("operation failed: %v", err)}, "operation")
	select {
	case c.targets[s.Index].trigger <- struct{}{}:
	default:
	}
}
