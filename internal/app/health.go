package app

import (
	"time"

	"github.com/ldapmux/ldapmux/internal/health"
)

// newChecker gives every server the default check.
func (a *App) newChecker() *health.Checker {
	targets := make([]*health.Target, len(a.servers))
	checks := make([][]health.Check, len(a.servers))
	for i, s := range a.servers {
		targets[i] = health.NewTarget(s, a.cfg.ServiceAccount.BindDN, a.cfg.ServiceAccount.Password.Reveal())
		checks[i] = []health.Check{health.RootDSE{}}
	}
	timeout := min(a.cfg.Pool.OperationTimeout.D(), 5*time.Second)
	hc := health.Config{Frequency: time.Second, Timeout: timeout}
	return health.NewChecker(hc, a.registry, targets, checks, a.log)
}

