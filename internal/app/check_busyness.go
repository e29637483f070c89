package app

import (
	"strings"

	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/health"
)

var busynessCheck = checkType{build: func(c checkSpec) health.Check {
	return health.NewBusyness(c.name, busynessConfig(c.config.Settings.(*config.BusynessCheck)))
}}

func busynessConfig(b *config.BusynessCheck) health.BusynessConfig {
	return health.BusynessConfig{
		Outstanding:   countLevels(int64(b.DegradedOutstanding), int64(b.AvailableOutstanding), int64(b.UnavailableOutstanding)),
		ResponseTime:  health.DurationLevels(b.DegradedResponseTime.D(), b.AvailableResponseTime.D(), b.UnavailableResponseTime.D(), 0),
		ServerMonitor: strings.ToLower(b.ServerMonitor),
		Queue:         countLevels(int64(b.DegradedQueue), int64(b.AvailableQueue), int64(b.UnavailableQueue)),
		PercentBusy:   countLevels(int64(b.DegradedPercentBusy), int64(b.AvailablePercentBusy), int64(b.UnavailablePercentBusy)),
	}
}
