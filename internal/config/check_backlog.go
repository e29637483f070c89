package config

// CheckReplicationBacklog is the type of checks of replication lag.
const CheckReplicationBacklog = "replication-backlog"

var backlogSources = []string{"csn", "monitor"}

// BacklogCheck holds the keys of replication-backlog checks.
type BacklogCheck struct {
	// BaseDN is the entry holding contextCSN (default: the server's first
	// naming context), or with source monitor the base-dn attribute of the
	// monitor entries that count (default: all).
	BaseDN string `yaml:"base-dn"`
	// Source is csn (default: compare contextCSN values across the
	// servers, for OpenLDAP syncrepl) or monitor (read the backlog the
	// server publishes in monitor entries, e.g. PingDirectory).
	Source string `yaml:"source"`
	// DegradedAge, AvailableAge, UnavailableAge: thresholds on the age of
	// the oldest missing change; available-age defaults to degraded-age.
	DegradedAge    Duration `yaml:"degraded-age"`
	AvailableAge   Duration `yaml:"available-age"`
	UnavailableAge Duration `yaml:"unavailable-age"`
	// DegradedCount, AvailableCount, UnavailableCount: thresholds on the
	// number of missing changes, where the server publishes it (source
	// monitor); available-count defaults to degraded-count.
	DegradedCount    int64 `yaml:"degraded-count"`
	AvailableCount   int64 `yaml:"available-count"`
	UnavailableCount int64 `yaml:"unavailable-count"`
	// MonitorBaseDN and MonitorFilter find the monitor entries (subtree
	// search). Defaults cn=monitor and (objectClass=ds-replica-monitor-entry).
	MonitorBaseDN string `yaml:"monitor-base-dn"`
	MonitorFilter string `yaml:"monitor-filter"`
	// CountAttribute holds the number of missing changes. Default
	// replication-backlog.
	CountAttribute string `yaml:"count-attribute"`
	// AgeAttribute holds the time of the oldest missing change (generalized
	// time) or its age in seconds. Default age-of-oldest-backlog-change.
	AgeAttribute string `yaml:"age-attribute"`
}

// Validate implements CheckSettings.
func (b *BacklogCheck) Validate(c CheckValidator) {
	v, path := c.v, c.path
	v.optionalDN(path+".base-dn", b.BaseDN)
	v.oneOf(path+".source", "source", b.Source, backlogSources)
	age := durationLevels("degraded-age", "available-age", "unavailable-age", "",
		b.DegradedAge, b.AvailableAge, b.UnavailableAge, 0)
	cnt := intLevels("degraded-count", "available-count", "unavailable-count", b.DegradedCount, b.AvailableCount, b.UnavailableCount)
	v.thresholds(path, age)
	v.thresholds(path, cnt)
	if !age.any() && !cnt.any() {
		v.add(path, "set at least one of degraded-age, unavailable-age, degraded-count or unavailable-count")
	}
	if b.Source == "monitor" {
		v.optionalDN(path+".monitor-base-dn", b.MonitorBaseDN)
		v.filter(path+".monitor-filter", b.MonitorFilter)
		return
	}
	for _, key := range []string{"monitor-base-dn", "monitor-filter", "count-attribute", "age-attribute"} {
		if c.Given(key) {
			c.Problem(key, "applies only with source: monitor")
		}
	}
}

// SetDefaults implements CheckSettings.
func (b *BacklogCheck) SetDefaults() {
	setDefault(&b.Source, "csn")
	setDefault(&b.AvailableAge, b.DegradedAge)
	setDefault(&b.AvailableCount, b.DegradedCount)
	if b.Source != "monitor" {
		return
	}
	setDefault(&b.MonitorBaseDN, "cn=monitor")
	setDefault(&b.MonitorFilter, "(objectClass=ds-replica-monitor-entry)")
	setDefault(&b.CountAttribute, "replication-backlog")
	setDefault(&b.AgeAttribute, "age-of-oldest-backlog-change")
}
