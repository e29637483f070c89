package config

import (
	"fmt"
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

// HealthCheck is one named check: the keys of every check, and those of its
// type in Settings.
type HealthCheck struct {
	// Type names one of the registered check types (checktypes.go);
	// required.
	Type string `yaml:"type"`
	// UseForAllServers applies the check to every server; otherwise only
	// to the servers that list it.
	UseForAllServers bool `yaml:"use-for-all-servers"`
	// Settings holds the keys of the type, such as *SearchCheck; nil when
	// the type is unknown.
	Settings CheckSettings `yaml:"-"`
}

// Health defaults and bounds.
const (
	defaultHealthCheckFrequency = Duration(time.Second)
	defaultHealthCheckTimeout   = Duration(5 * time.Second)
	minHealthCheckPeriod        = Duration(10 * time.Millisecond)
)

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
	types := CheckTypeNames()
	switch {
	case hc.Type == "":
		v.add(path+".type", "required (one of %s)", strings.Join(types, ", "))
		return
	case !slices.Contains(types, hc.Type):
		v.oneOf(path+".type", "health check type", hc.Type, types)
		return
	}
	v.foreignKeys(path, hc.Type)
	if hc.Settings != nil {
		hc.Settings.Validate(CheckValidator{v: v, path: path})
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
	for _, hc := range c.HealthChecks {
		if hc.Settings != nil {
			hc.Settings.SetDefaults()
		}
	}
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
