package config

// CheckAdminAlert is the type of checks of the alerts a server raises.
const CheckAdminAlert = "admin-alert"

// AlertCheck holds the keys of admin-alert checks.
type AlertCheck struct {
	// MonitorDN is the entry read for alerts. Default cn=monitor.
	MonitorDN string `yaml:"monitor-dn"`
	// AlertsBaseDN is where new alerts appear, watched with a persistent
	// search where the server supports it. Default cn=alerts.
	AlertsBaseDN string `yaml:"alerts-base-dn"`
	// DegradedAlertAttribute: a value makes the server degraded. Default
	// degraded-alert-type.
	DegradedAlertAttribute string `yaml:"degraded-alert-attribute"`
	// UnavailableAlertAttribute: a value makes the server unavailable.
	// Default unavailable-alert-type.
	UnavailableAlertAttribute string `yaml:"unavailable-alert-attribute"`
	// PollOnly never uses a persistent search. Default false.
	PollOnly bool `yaml:"poll-only"`
}

// Validate implements CheckSettings.
func (a *AlertCheck) Validate(c CheckValidator) {
	c.v.optionalDN(c.path+".monitor-dn", a.MonitorDN)
	c.v.optionalDN(c.path+".alerts-base-dn", a.AlertsBaseDN)
}

// SetDefaults implements CheckSettings.
func (a *AlertCheck) SetDefaults() {
	setDefault(&a.MonitorDN, "cn=monitor")
	setDefault(&a.AlertsBaseDN, "cn=alerts")
	setDefault(&a.DegradedAlertAttribute, "degraded-alert-type")
	setDefault(&a.UnavailableAlertAttribute, "unavailable-alert-type")
}
