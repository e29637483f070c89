package app

import (
	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/health"
)

// backlogCheck: the servers of a check share one view of their
// replication state.
var backlogCheck = checkType{
	build: func(c checkSpec) health.Check {
		cfg := backlogConfig(c.config.Settings.(*config.BacklogCheck))
		return health.NewReplicationBacklog(c.name, cfg, c.shared.(*health.ReplicationView), c.server)
	},
	share: func(n int) any { return health.NewReplicationView(n) },
}

func backlogConfig(b *config.BacklogCheck) health.BacklogConfig {
	return health.BacklogConfig{
		Source: b.Source, BaseDN: b.BaseDN,
		Age:           health.DurationLevels(b.DegradedAge.D(), b.AvailableAge.D(), b.UnavailableAge.D(), 0),
		Count:         countLevels(b.DegradedCount, b.AvailableCount, b.UnavailableCount),
		MonitorBaseDN: b.MonitorBaseDN, MonitorFilter: b.MonitorFilter,
		CountAttribute: b.CountAttribute, AgeAttribute: b.AgeAttribute,
	}
}
