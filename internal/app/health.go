package app

import (
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/health"
)

// newChecker builds the health checks of every registry slot from the
// configuration; a server without any gets a search of the root DSE, a
// slot whose server left the configuration (reload.go) stays unavailable.
func (a *App) newChecker() *health.Checker {
	slots := slotServers(a.registry)
	targets := make([]*health.Target, len(slots))
	checks := make([][]health.Check, len(slots))
	views := a.replicationViews()
	for k, s := range slots {
		targets[k] = health.NewTarget(s, a.cfg.ServiceAccount.BindDN, a.cfg.ServiceAccount.Password.Reveal())
		i, ok := a.cfg.ServerByName(s.Name)
		if !ok {
			checks[k] = []health.Check{retiredCheck{}}
			continue
		}
		targets[k].Frequency = a.cfg.Servers[i].HealthCheckFrequency.D()
		for _, name := range a.cfg.ChecksOf(i) {
			checks[k] = append(checks[k], a.obs.checks.Instrument(s.Name, newCheck(name, a.cfg.HealthChecks[name], views[name], k)))
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

// replicationViews creates the view each replication-backlog check shares
// among the servers it applies to.
func (a *App) replicationViews() map[string]*health.ReplicationView {
	users := map[string]int{}
	for i := range a.cfg.Servers {
		for _, name := range a.cfg.ChecksOf(i) {
			if a.cfg.HealthChecks[name].Type == config.CheckReplicationBacklog {
				users[name]++
			}
		}
	}
	views := map[string]*health.ReplicationView{}
	for name, n := range users {
		views[name] = health.NewReplicationView(n)
	}
	return views
}

// newCheck builds check name of server i.
func newCheck(name string, hc config.HealthCheck, view *health.ReplicationView, i int) health.Check {
	switch hc.Type {
	case config.CheckReplicationBacklog:
		return health.NewReplicationBacklog(name, backlogConfig(hc), view, i)
	case config.CheckAdminAlert:
		return health.NewAdminAlert(name, alertConfig(hc.AlertCheck))
	case config.CheckBusyness:
		return health.NewBusyness(name, busynessConfig(hc.BusynessCheck))
	}
	return health.NewSearch(name, searchConfig(hc))
}

var scopes = map[string]int{"base": ldap.ScopeBaseObject, "one": ldap.ScopeSingleLevel, "sub": ldap.ScopeWholeSubtree}

func searchConfig(hc config.HealthCheck) health.SearchConfig {
	s := hc.SearchCheck
	mismatch := backend.Unavailable
	if s.MismatchState == "degraded" {
		mismatch = backend.Degraded
	}
	return health.SearchConfig{
		BaseDN: hc.BaseDN, Scope: scopes[s.Scope], Filter: s.Filter,
		ResponseTime:   health.DurationLevels(s.DegradedAbove.D(), s.AvailableBelow.D(), s.UnavailableAbove.D(), s.DegradedBelow.D()),
		AllowNoEntries: *s.AllowNoEntriesReturned, AllowMultipleEntries: *s.AllowMultipleEntriesReturned,
		ExpectedValues: s.ExpectedValues, MismatchState: mismatch,
	}
}

func backlogConfig(hc config.HealthCheck) health.BacklogConfig {
	b := hc.BacklogCheck
	return health.BacklogConfig{
		Source: b.Source, BaseDN: hc.BaseDN,
		Age:           health.DurationLevels(b.DegradedAge.D(), b.AvailableAge.D(), b.UnavailableAge.D(), 0),
		Count:         countLevels(b.DegradedCount, b.AvailableCount, b.UnavailableCount),
		MonitorBaseDN: b.MonitorBaseDN, MonitorFilter: b.MonitorFilter,
		CountAttribute: b.CountAttribute, AgeAttribute: b.AgeAttribute,
	}
}

func alertConfig(c config.AlertCheck) health.AlertConfig {
	return health.AlertConfig{
		MonitorDN: c.MonitorDN, AlertsBaseDN: c.AlertsBaseDN,
		DegradedAttribute: c.DegradedAlertAttribute, UnavailableAttribute: c.UnavailableAlertAttribute,
		PollOnly: c.PollOnly,
	}
}

func busynessConfig(b config.BusynessCheck) health.BusynessConfig {
	return health.BusynessConfig{
		Outstanding:   countLevels(int64(b.DegradedOutstanding), int64(b.AvailableOutstanding), int64(b.UnavailableOutstanding)),
		ResponseTime:  health.DurationLevels(b.DegradedResponseTime.D(), b.AvailableResponseTime.D(), b.UnavailableResponseTime.D(), 0),
		ServerMonitor: strings.ToLower(b.ServerMonitor),
		Queue:         countLevels(int64(b.DegradedQueue), int64(b.AvailableQueue), int64(b.UnavailableQueue)),
		PercentBusy:   countLevels(int64(b.DegradedPercentBusy), int64(b.AvailablePercentBusy), int64(b.UnavailablePercentBusy)),
	}
}

func countLevels(degraded, available, unavailable int64) health.Levels {
	return health.Levels{DegradedAbove: float64(degraded), AvailableBelow: float64(available), UnavailableAbove: float64(unavailable)}
}
