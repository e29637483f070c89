package app

import (
	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/health"
)

var alertCheck = checkType{build: func(c checkSpec) health.Check {
	return health.NewAdminAlert(c.name, alertConfig(c.config.Settings.(*config.AlertCheck)))
}}

func alertConfig(c *config.AlertCheck) health.AlertConfig {
	return health.AlertConfig{
		MonitorDN: c.MonitorDN, AlertsBaseDN: c.AlertsBaseDN,
		DegradedAttribute: c.DegradedAlertAttribute, UnavailableAttribute: c.UnavailableAlertAttribute,
		PollOnly: c.PollOnly,
	}
}
