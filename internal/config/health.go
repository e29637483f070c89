package config

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Health holds the health checks and their schedule. Its keys sit at the top
// level of the file.
type Health struct {
	// HealthCheckFrequency is the time between two runs of a server's
	// checks, unless the server sets its own. Default 1s; at least 10ms.
	HealthCheckFrequency Duration `yaml:"health-check-frequency"`
	// HealthCheckTimeout bounds each check of a run. Default 5s; at least
	// 10ms. It is not bounded by the frequency: runs never overlap, so a run
	// that takes longer than the frequency delays the next one.
	HealthCheckTimeout Duration `yaml:"health-check-timeout"`
	// HealthChecks are the named checks. A server none applies to gets a
	// search of the root DSE.
	HealthChecks map[string]HealthCheck `yaml:"health-checks"`
}

// ServerHealth holds a server's own health-check settings.
type ServerHealth struct {
	// HealthChecks names the checks of this server, besides those used for
	// all servers.
	HealthChecks []string `yaml:"health-checks"`
	// HealthCheckFrequency overrides the top-level health-check-frequency.
	HealthCheckFrequency Duration `yaml:"health-check-frequency"`
}

// Health check types.
const (
	CheckSearch             = "search"
	CheckReplicationBacklog = "replication-backlog"
	CheckAdminAlert         = "admin-alert"
	CheckBusyness           = "busyness"
)

// KnownHealthCheckTypes lists the health check types.
var KnownHealthCheckTypes = []string{CheckSearch, CheckReplicationBacklog, CheckAdminAlert, CheckBusyness}

// HealthCheck is one named check. Besides type and use-for-all-servers,
// only the keys of its type apply.
type HealthCheck struct {
	// Type is one of KnownHealthCheckTypes; required.
	Type string `yaml:"type"`
	// UseForAllServers applies the check to every server; otherwise only
	// to the servers that list it.
	UseForAllServers bool `yaml:"use-for-all-servers"`
	// BaseDN (search, replication-backlog): the search base; for
	// replication-backlog the entry holding contextCSN (default: the
	// server's first naming context), or with source monitor the base-dn
	// attribute of the monitor entries that count (default: all).
	BaseDN string `yaml:"base-dn"`

	SearchCheck   `yaml:",inline"`
	BacklogCheck  `yaml:",inline"`
	AlertCheck    `yaml:",inline"`
	BusynessCheck `yaml:",inline"`
}

// SearchCheck holds the keys of search checks.
type SearchCheck struct {
	// Scope is base (default), one or sub.
	Scope string `yaml:"scope"`
	// Filter is an LDAP filter. Default (objectClass=*).
	Filter string `yaml:"filter"`
	// DegradedAbove: a response time above it makes the server degraded.
	DegradedAbove Duration `yaml:"degraded-above"`
	// AvailableBelow: a degraded server is available again only with a
	// response time below it. Default degraded-above.
	AvailableBelow Duration `yaml:"available-below"`
	// UnavailableAbove: a response time above it makes the server
	// unavailable (as does an error or no answer within the timeout).
	UnavailableAbove Duration `yaml:"unavailable-above"`
	// DegradedBelow: an unavailable server is degraded again only with a
	// response time below it. Default unavailable-above.
	DegradedBelow Duration `yaml:"degraded-below"`
	// AllowNoEntriesReturned accepts a search that returns nothing.
	// Default true.
	AllowNoEntriesReturned *bool `yaml:"allow-no-entries-returned"`
	// AllowMultipleEntriesReturned accepts a search that returns more than
	// one entry. Default true.
	AllowMultipleEntriesReturned *bool `yaml:"allow-multiple-entries-returned"`
	// ExpectedValues: each entry returned must have, for every attribute,
	// one of the values (compared without regard to case).
	ExpectedValues map[string][]string `yaml:"expected-values"`
	// MismatchState is the state when the entries returned are not as
	// expected: degraded or unavailable (default).
	MismatchState string `yaml:"mismatch-state"`
}

// BacklogCheck holds the keys of replication-backlog checks.
type BacklogCheck struct {
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

// Health defaults and bounds.
const (
	defaultHealthCheckFrequency = Duration(time.Second)
	defaultHealthCheckTimeout   = Duration(5 * time.Second)
	minHealthCheckPeriod        = Duration(10 * time.Millisecond)
)

var (
	searchScopes   = []string{"base", "one", "sub"}
	mismatchStates = []string{"degraded", "unavailable"}
	backlogSources = []string{"csn", "monitor"}
	serverMonitors = []string{"none", "openldap", "pingdirectory", "389ds", "auto"}
)

// typeKeys lists the keys that only apply to each check type.
var typeKeys = map[string][]string{
	CheckSearch:             append(structKeys(reflect.TypeFor[SearchCheck]()).names, "base-dn"),
	CheckReplicationBacklog: append(structKeys(reflect.TypeFor[BacklogCheck]()).names, "base-dn"),
	CheckAdminAlert:         structKeys(reflect.TypeFor[AlertCheck]()).names,
	CheckBusyness:           structKeys(reflect.TypeFor[BusynessCheck]()).names,
}

func (c *Config) validateHealth(v *validator) {
	v.minDuration("health-check-frequency", c.HealthCheckFrequency, minHealthCheckPeriod)
	v.minDuration("health-check-timeout", c.HealthCheckTimeout, minHealthCheckPeriod)
	for _, name := range sortedNames(c.HealthChecks) {
		hc := c.HealthChecks[name]
		hc.validate(v, joinPath("health-checks", name), name)
	}
	for i, s := range c.Servers {
		path := fmt.Sprintf("servers[%d]", i)
		v.minDuration(path+".health-check-frequency", s.HealthCheckFrequency, minHealthCheckPeriod)
		c.validateServerChecks(v, path+".health-checks", s.HealthChecks)
	}
}

// minDuration checks that d is 0 (default) or at least lo.
func (v *validator) minDuration(path string, d, lo Duration) {
	if d != 0 && d < lo {
		v.add(path, "must be at least %s (got %s)", lo, d)
	}
}

// validateServerChecks checks that a server lists known checks once.
func (c *Config) validateServerChecks(v *validator, path string, names []string) {
	seen := map[string]bool{}
	for j, name := range names {
		p := fmt.Sprintf("%s[%d]", path, j)
		switch _, ok := c.HealthChecks[name]; {
		case !ok:
			v.add(p, "unknown health check %q (%s)", name, c.checkHint(name))
		case seen[name]:
			v.add(p, "health check %q listed twice", name)
		}
		seen[name] = true
	}
}

// checkHint suggests a defined check name or lists them.
func (c *Config) checkHint(name string) string {
	names := sortedNames(c.HealthChecks)
	if len(names) == 0 {
		return "no health-checks are defined"
	}
	if s := suggest(name, names); s != "" {
		return "did you mean " + s + "?"
	}
	return "defined: " + strings.Join(names, ", ")
}

func sortedNames[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// validate checks one named check at path.
func (hc *HealthCheck) validate(v *validator, path, name string) {
	if !serverName.MatchString(name) {
		v.add(path, "invalid health check name %q (use letters, digits, '.', '_' and '-')", name)
	}
	switch {
	case hc.Type == "":
		v.add(path+".type", "required (one of %s)", strings.Join(KnownHealthCheckTypes, ", "))
		return
	case !slices.Contains(KnownHealthCheckTypes, hc.Type):
		v.oneOf(path+".type", "health check type", hc.Type, KnownHealthCheckTypes)
		return
	}
	v.foreignKeys(path, hc.Type)
	switch hc.Type {
	case CheckSearch:
		hc.validateSearch(v, path)
	case CheckReplicationBacklog:
		hc.validateBacklog(v, path)
	case CheckAdminAlert:
		hc.validateAlert(v, path)
	case CheckBusyness:
		hc.BusynessCheck.validate(v, path)
	}
}

// foreignKeys reports keys given for a check that belong to other types.
func (v *validator) foreignKeys(path, typ string) {
	owners := map[string][]string{}
	var keys []string
	for _, other := range KnownHealthCheckTypes {
		for _, key := range typeKeys[other] {
			if _, given := v.lines[joinPath(path, key)]; !given || slices.Contains(typeKeys[typ], key) {
				continue
			}
			if owners[key] == nil {
				keys = append(keys, key)
			}
			owners[key] = append(owners[key], other)
		}
	}
	for _, key := range keys {
		v.add(joinPath(path, key), "does not apply to %s checks (it is a key of %s checks)", typ, strings.Join(owners[key], " and "))
	}
}

func (hc *HealthCheck) validateSearch(v *validator, path string) {
	s := &hc.SearchCheck
	v.optionalDN(path+".base-dn", hc.BaseDN)
	v.oneOf(path+".scope", "scope", s.Scope, searchScopes)
	v.filter(path+".filter", s.Filter)
	v.thresholds(path, durationLevels("degraded-above", "available-below", "unavailable-above", "degraded-below",
		s.DegradedAbove, s.AvailableBelow, s.UnavailableAbove, s.DegradedBelow))
	v.oneOf(path+".mismatch-state", "state", s.MismatchState, mismatchStates)
	for _, attr := range sortedNames(s.ExpectedValues) {
		p := joinPath(path+".expected-values", attr)
		if len(s.ExpectedValues[attr]) == 0 {
			v.add(p, "list at least one value")
		}
	}
}

func (hc *HealthCheck) validateBacklog(v *validator, path string) {
	b := &hc.BacklogCheck
	v.optionalDN(path+".base-dn", hc.BaseDN)
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
		if _, given := v.lines[joinPath(path, key)]; given {
			v.add(joinPath(path, key), "applies only with source: monitor")
		}
	}
}

func (hc *HealthCheck) validateAlert(v *validator, path string) {
	v.optionalDN(path+".monitor-dn", hc.MonitorDN)
	v.optionalDN(path+".alerts-base-dn", hc.AlertsBaseDN)
}

func (b *BusynessCheck) validate(v *validator, path string) {
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

// levels is a set of thresholds for validation: degraded, available,
// unavailable and degraded-below, with their key names ("" when absent).
type levels struct {
	keys [4]string
	vals [4]float64
	show func(float64) string
}

func (l levels) any() bool { return l.vals != [4]float64{} }

func durationLevels(dk, ak, uk, dbk string, d, a, u, db Duration) levels {
	show := func(f float64) string { return Duration(f).String() }
	return levels{[4]string{dk, ak, uk, dbk}, [4]float64{float64(d), float64(a), float64(u), float64(db)}, show}
}

func intLevels(dk, ak, uk string, d, a, u int64) levels {
	show := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	return levels{[4]string{dk, ak, uk, ""}, [4]float64{float64(d), float64(a), float64(u), 0}, show}
}

// thresholds checks that a set of thresholds is consistent: the threshold
// for leaving a state needs, and may not exceed, the one for entering it,
// and degraded comes before unavailable.
func (v *validator) thresholds(path string, l levels) {
	const deg, avail, unavail, degBelow = 0, 1, 2, 3
	for i, k := range l.keys {
		if k != "" && l.vals[i] < 0 {
			v.add(joinPath(path, k), "must not be negative (got %s)", l.show(l.vals[i]))
		}
	}
	v.leaving(path, l, avail, deg)
	v.leaving(path, l, degBelow, unavail)
	if l.vals[deg] > 0 && l.vals[unavail] > 0 && l.vals[deg] >= l.vals[unavail] {
		v.add(joinPath(path, l.keys[deg]), "must be below %s (%s)", l.keys[unavail], l.show(l.vals[unavail]))
	}
}

// leaving checks the threshold for leaving a state against the one for
// entering it.
func (v *validator) leaving(path string, l levels, leave, enter int) {
	if l.keys[leave] == "" || l.vals[leave] <= 0 {
		return
	}
	p := joinPath(path, l.keys[leave])
	switch {
	case l.vals[enter] < 0:
	case l.vals[enter] == 0:
		v.add(p, "needs %s", l.keys[enter])
	case l.vals[leave] > l.vals[enter]:
		v.add(p, "must not be above %s (%s)", l.keys[enter], l.show(l.vals[enter]))
	}
}

// percents checks that percentages are at most 100.
func (v *validator) percents(path string, l levels) {
	for i, k := range l.keys {
		if k != "" && l.vals[i] > 100 {
			v.add(joinPath(path, k), "must be between 0 and 100 (got %s)", l.show(l.vals[i]))
		}
	}
}

// optionalDN checks the syntax of a DN that may be empty.
func (v *validator) optionalDN(path, dn string) {
	if dn == "" {
		return
	}
	if msg := validateDN(dn); msg != "" {
		v.add(path, "%s", msg)
	}
}

// filter checks the syntax of an LDAP filter that may be empty.
func (v *validator) filter(path, f string) {
	if f == "" {
		return
	}
	if _, err := ldap.CompileFilter(f); err != nil {
		v.add(path, "invalid filter %q: %v", f, err)
	}
}

func (c *Config) setHealthDefaults() {
	setDefault(&c.HealthCheckFrequency, defaultHealthCheckFrequency)
	setDefault(&c.HealthCheckTimeout, defaultHealthCheckTimeout)
	for i := range c.Servers {
		setDefault(&c.Servers[i].HealthCheckFrequency, c.HealthCheckFrequency)
	}
	for name, hc := range c.HealthChecks {
		hc.setDefaults()
		c.HealthChecks[name] = hc
	}
}

func (hc *HealthCheck) setDefaults() {
	switch hc.Type {
	case CheckSearch:
		hc.SearchCheck.setDefaults()
	case CheckReplicationBacklog:
		hc.BacklogCheck.setDefaults()
	case CheckAdminAlert:
		hc.AlertCheck.setDefaults()
	case CheckBusyness:
		hc.BusynessCheck.setDefaults()
	}
}

func (s *SearchCheck) setDefaults() {
	setDefault(&s.Scope, "base")
	setDefault(&s.Filter, "(objectClass=*)")
	setDefault(&s.AvailableBelow, s.DegradedAbove)
	setDefault(&s.DegradedBelow, s.UnavailableAbove)
	yes := true
	setDefault(&s.AllowNoEntriesReturned, &yes)
	setDefault(&s.AllowMultipleEntriesReturned, &yes)
	setDefault(&s.MismatchState, "unavailable")
}

func (b *BacklogCheck) setDefaults() {
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

func (a *AlertCheck) setDefaults() {
	setDefault(&a.MonitorDN, "cn=monitor")
	setDefault(&a.AlertsBaseDN, "cn=alerts")
	setDefault(&a.DegradedAlertAttribute, "degraded-alert-type")
	setDefault(&a.UnavailableAlertAttribute, "unavailable-alert-type")
}

func (b *BusynessCheck) setDefaults() {
	setDefault(&b.AvailableOutstanding, b.DegradedOutstanding)
	setDefault(&b.AvailableResponseTime, b.DegradedResponseTime)
	setDefault(&b.ServerMonitor, "none")
	setDefault(&b.AvailableQueue, b.DegradedQueue)
	setDefault(&b.AvailablePercentBusy, b.DegradedPercentBusy)
}

// ChecksOf returns the names of the checks of server i: those used for all
// servers, then those the server lists, each once, in a stable order.
func (c *Config) ChecksOf(i int) []string {
	var names []string
	for _, name := range sortedNames(c.HealthChecks) {
		if c.HealthChecks[name].UseForAllServers {
			names = append(names, name)
		}
	}
	for _, name := range c.Servers[i].HealthChecks {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}
