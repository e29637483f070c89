package config

import "slices"

// CheckBusyness is the type of checks of how busy a server is.
const CheckBusyness = "busyness"

var serverMonitors = []string{"none", "openldap", "pingdirectory", "389ds", "auto"}

// BusynessCheck holds the keys of busyness checks. Each set of thresholds
// is judged only when one of them is set; available-X defaults to
// degraded-X.
type BusynessCheck struct {
	// Operations the proxy has in flight to the server.
	DegradedOutstanding    int `yaml:"degraded-outstanding"`
	AvailableOutstanding   int `yaml:"available-outstanding"`
	UnavailableOutstanding int `yaml:"unavailable-outstanding"`
	// Mean response time of the proxy's operations since the previous run.
	DegradedResponseTime    Duration `yaml:"degraded-response-time"`
	AvailableResponseTime   Duration `yaml:"available-response-time"`
	UnavailableResponseTime Duration `yaml:"unavailable-response-time"`
	// ServerMonitor is none (default), openldap, 389ds, pingdirectory or
	// auto (by the server type found at connect): where the
	// server publishes its load (needed by the queue and percent-busy keys).
	ServerMonitor string `yaml:"server-monitor"`
	// Operations the server has accepted and not finished, from all its
	// clients.
	DegradedQueue    int `yaml:"degraded-queue"`
	AvailableQueue   int `yaml:"available-queue"`
	UnavailableQueue int `yaml:"unavailable-queue"`
	// Share of the server's worker threads at work, 0-100.
	DegradedPercentBusy    int `yaml:"degraded-percent-busy"`
	AvailablePercentBusy   int `yaml:"available-percent-busy"`
	UnavailablePercentBusy int `yaml:"unavailable-percent-busy"`
}

// Validate implements CheckSettings.
func (b *BusynessCheck) Validate(c CheckValidator) {
	v, path := c.v, c.path
	sets := []levels{
		intLevels("degraded-outstanding", "available-outstanding", "unavailable-outstanding",
			int64(b.DegradedOutstanding), int64(b.AvailableOutstanding), int64(b.UnavailableOutstanding)),
		durationLevels("degraded-response-time", "available-response-time", "unavailable-response-time", "",
			b.DegradedResponseTime, b.AvailableResponseTime, b.UnavailableResponseTime, 0),
	}
	v.oneOf(path+".server-monitor", "server monitor", b.ServerMonitor, serverMonitors)
	server := []levels{
		intLevels("degraded-queue", "available-queue", "unavailable-queue",
			int64(b.DegradedQueue), int64(b.AvailableQueue), int64(b.UnavailableQueue)),
		intLevels("degraded-percent-busy", "available-percent-busy", "unavailable-percent-busy",
			int64(b.DegradedPercentBusy), int64(b.AvailablePercentBusy), int64(b.UnavailablePercentBusy)),
	}
	for i, l := range slices.Concat(sets, server) {
		v.thresholds(path, l)
		if i >= len(sets) && l.any() && (b.ServerMonitor == "" || b.ServerMonitor == "none") {
			v.add(joinPath(path, l.keys[0]), "needs server-monitor (openldap, 389ds, pingdirectory or auto)")
		}
	}
	v.percents(path, server[1])
	if !slices.ContainsFunc(slices.Concat(sets, server), levels.any) {
		v.add(path, "set at least one threshold (e.g. degraded-outstanding or degraded-response-time)")
	}
}

// SetDefaults implements CheckSettings.
func (b *BusynessCheck) SetDefaults() {
	setDefault(&b.AvailableOutstanding, b.DegradedOutstanding)
	setDefault(&b.AvailableResponseTime, b.DegradedResponseTime)
	setDefault(&b.ServerMonitor, "none")
	setDefault(&b.AvailableQueue, b.DegradedQueue)
	setDefault(&b.AvailablePercentBusy, b.DegradedPercentBusy)
}
