package app

import (
	"fmt"
	"slices"

	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/health"
)

// checkTypes build the checks of each health check type. A type is its own
// file (the translation of its configuration and its constructor) and one
// entry here.
var checkTypes = map[string]checkType{
	config.CheckSearch:             searchCheck,
	config.CheckReplicationBacklog: backlogCheck,
	config.CheckAdminAlert:         alertCheck,
	config.CheckBusyness:           busynessCheck,
}

// checkType builds the checks of one type.
type checkType struct {
	// build makes one server's check.
	build func(c checkSpec) health.Check
	// share, if set, makes what the n servers a check applies to share
	// (checkSpec.shared).
	share func(n int) any
}

// checkSpec is one server's check to build.
type checkSpec struct {
	name   string
	config config.HealthCheck
	server int // registry slot
	shared any // made by checkType.share
}

// newChecker builds the health checks of every registry slot from the
// configuration; a server without any gets a search of the root DSE, a
// slot whose server left the configuration (reload.go) stays unavailable.
func (a *App) newChecker() *health.Checker {
	slots := slotServers(a.registry)
	targets := make([]*health.Target, len(slots))
	checks := make([][]health.Check, len(slots))
	shared := a.sharedCheckState()
	a.observePositions(shared)
	a.notePositionBases(a.cfg)
	for k, s := range slots {
		targets[k] = health.NewTarget(s, a.cfg.ServiceAccount.BindDN, a.cfg.ServiceAccount.Password.Reveal())
		i, ok := a.cfg.ServerByName(s.Name)
		if !ok {
			checks[k] = []health.Check{retiredCheck{}}
			continue
		}
		targets[k].Frequency = a.cfg.Servers[i].HealthCheckFrequency.D()
		for _, name := range a.cfg.ChecksOf(i) {
			spec := checkSpec{name: name, config: a.cfg.HealthChecks[name], server: k, shared: shared[name]}
			checks[k] = append(checks[k], a.obs.checks.Instrument(s.Name, newCheck(spec)))
		}
		if len(checks[k]) == 0 {
			checks[k] = []health.Check{a.obs.checks.Instrument(s.Name, health.DefaultCheck())}
		}
		// last, so that it decides only when it finds a problem: a server
		// that cannot serve its identity mode is unusable
		checks[k] = append(checks[k], health.Identity{})
	}
	hc := health.Config{Frequency: a.cfg.HealthCheckFrequency.D(), Timeout: a.cfg.HealthCheckTimeout.D()}
	return health.NewChecker(hc, a.registry, targets, checks, a.log)
}

// forgetRemovedChecks drops the series of the checks that servers kept in
// the configuration no longer run. The old checker has stopped (commit), so
// no run of theirs can bring a series back; servers that left the
// configuration are forgotten whole once drained.
func (a *App) forgetRemovedChecks(old, cfg *config.Config) {
	for i, s := range old.Servers {
		j, ok := cfg.ServerByName(s.Name)
		if !ok {
			continue
		}
		now := checkNames(cfg, j)
		for _, name := range checkNames(old, i) {
			if !slices.Contains(now, name) {
				a.obs.checks.ForgetCheck(s.Name, name)
			}
		}
	}
}

// checkNames are the checks server i of cfg runs: the configured ones, or
// the default search of the root DSE.
func checkNames(cfg *config.Config, i int) []string {
	if names := cfg.ChecksOf(i); len(names) > 0 {
		return names
	}
	return []string{health.DefaultCheck().Name()}
}

// sharedCheckState makes, for each check whose type shares state among
// its servers, that state.
func (a *App) sharedCheckState() map[string]any {
	users := map[string]int{}
	for i := range a.cfg.Servers {
		for _, name := range a.cfg.ChecksOf(i) {
			users[name]++
		}
	}
	shared := map[string]any{}
	for name, n := range users {
		if share := checkTypes[a.cfg.HealthChecks[name].Type].share; share != nil {
			shared[name] = share(n)
		}
	}
	return shared
}

// newCheck builds a server's check by its type.
func newCheck(c checkSpec) health.Check {
	t, ok := checkTypes[c.config.Type]
	if !ok {
		panic(fmt.Sprintf("app: no builder for health check type %q", c.config.Type))
	}
	return t.build(c)
}

func countLevels(degraded, available, unavailable int64) health.Levels {
	return health.Levels{DegradedAbove: float64(degraded), AvailableBelow: float64(available), UnavailableAbove: float64(unavailable)}
}
