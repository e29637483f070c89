package config

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Defaults, applied to zero values.
const (
	defaultWeight               = 1
	defaultConnectionsPerServer = 8
	defaultBindConnections      = 2
	defaultMaxConnections       = 64
	defaultMaxBindConnections   = 64
	defaultBoundConnections     = 16
	defaultGrowAt               = 4
	defaultMaxConnectionAge     = Duration(5 * time.Minute)
	defaultIdleCheckInterval    = Duration(10 * time.Second)
	defaultConnectTimeout       = Duration(2 * time.Second)
	defaultOperationTimeout     = Duration(30 * time.Second)
	defaultLeasedConnections    = 64
	defaultLeaseIdleTimeout     = Duration(5 * time.Minute)
	defaultMaxPDUSize           = 16 * MiB
	defaultMaxClientConnections = 10000
	defaultLogLevel             = "info"
	defaultLogFormat            = "text"
	defaultShutdownGracePeriod  = Duration(10 * time.Second)
)

// Bounds checked by validation.
const (
	maxConnections      = 1024
	minMaxConnectionAge = Duration(time.Second)
	minMaxPDUSize       = KiB
)

var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
	serverName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
)

// validator collects problems found in decoded values, locating them with
// the lines the walker recorded.
type validator struct {
	lines map[string]int
	probs Problems
}

func (v *validator) add(path, format string, args ...any) {
	v.probs = append(v.probs, Problem{Path: path, Line: v.lineOf(path), Message: fmt.Sprintf(format, args...)})
}

// lineOf returns the line of path, or of its nearest ancestor present in
// the file (for missing keys).
func (v *validator) lineOf(path string) int {
	for {
		if line, ok := v.lines[path]; ok {
			return line
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
}

// intRange checks that n is 0 (default) or within lo..hi.
func (v *validator) intRange(path string, n, lo, hi int) {
	if n != 0 && (n < lo || n > hi) {
		v.add(path, "must be between %d and %d (got %d)", lo, hi, n)
	}
}

// atLeast checks that a maximum (when set) is not below the minimum it
// bounds (when set).
func (v *validator) atLeast(path string, max int, minKey string, min int) {
	if max > 0 && min > 0 && max < min {
		v.add(path, "must be at least %s (%d), the minimum it grows from (got %d); raise it or lower %s", minKey, min, max, minKey)
	}
}

// oneOf checks that s is empty (default) or one of allowed.
func (v *validator) oneOf(path, what, s string, allowed []string) {
	if s == "" || slices.Contains(allowed, s) {
		return
	}
	if guess := suggest(s, allowed); guess != "" {
		v.add(path, "unknown %s %q (did you mean %s?)", what, s, guess)
		return
	}
	v.add(path, "unknown %s %q (must be one of %s)", what, s, strings.Join(allowed, ", "))
}

// checkAddress checks a host:port address, returning a problem message or "".
func checkAddress(addr string, minPort int, needHost bool) string {
	if addr == "" {
		return "required"
	}
	host, port, err := net.SplitHostPort(addr)
	switch {
	case err != nil && strings.Contains(err.Error(), "missing port"), err == nil && port == "":
		return "missing port"
	case err != nil && strings.Contains(err.Error(), "too many colons"):
		return fmt.Sprintf("invalid address %q (write IPv6 hosts in brackets, e.g. [::1]:389)", addr)
	case err != nil:
		return fmt.Sprintf("invalid address %q (use host:port)", addr)
	case needHost && host == "":
		return "missing host"
	}
	if n, err := strconv.Atoi(port); err != nil || n < minPort || n > 65535 {
		return fmt.Sprintf("invalid port %q (must be a number from %d to 65535)", port, minPort)
	}
	return ""
}

func (c *Config) validate(v *validator) {
	validateListeners(v, c.Listen)
	validateServers(v, c.Servers)
	c.ServiceAccount.validate(v, "service-account", c.Dir)
	c.Pool.validate(v, "pool")
	v.oneOf("load-balancing.algorithm", "algorithm", c.LoadBalancing.Algorithm, KnownAlgorithms)
	c.Limits.validate(v, "limits")
	v.oneOf("log.level", "level", c.Log.Level, logLevels)
	v.oneOf("log.format", "format", c.Log.Format, logFormats)
	c.validateRouting(v)
	c.validateObservability(v)
	c.validateSecurity(v)
	c.validateHealth(v)
	c.validateIdentity(v)
	c.validateEventLoops(v)
}

func validateListeners(v *validator, ls []Listener) {
	if len(ls) == 0 {
		v.add("listen", "at least one listener is required")
	}
	seen := map[string]int{}
	for i, l := range ls {
		path := fmt.Sprintf("listen[%d].address", i)
		if msg := checkAddress(l.Address, 0, false); msg != "" {
			v.add(path, "%s", msg)
			continue
		}
		if strings.HasSuffix(l.Address, ":0") {
			continue // each picks its own free port
		}
		if j, dup := seen[l.Address]; dup {
			v.add(path, "duplicate address %q (also used by listen[%d])", l.Address, j)
			continue
		}
		seen[l.Address] = i
	}
}

func validateServers(v *validator, ss []Server) {
	if len(ss) == 0 {
		v.add("servers", "at least one server is required")
	}
	seen := map[string]int{}
	for i, s := range ss {
		path := fmt.Sprintf("servers[%d]", i)
		s.validate(v, path)
		if s.Name == "" {
			continue
		}
		if j, dup := seen[s.Name]; dup {
			v.add(path+".name", "duplicate name %q (also used by servers[%d])", s.Name, j)
			continue
		}
		seen[s.Name] = i
	}
}

func (s *Server) validate(v *validator, path string) {
	switch {
	case s.Name == "":
		v.add(path+".name", "required")
	case !serverName.MatchString(s.Name):
		v.add(path+".name", "invalid name %q (use letters, digits, '.', '_' and '-')", s.Name)
	}
	if msg := checkAddress(s.Address, 1, true); msg != "" {
		v.add(path+".address", "%s", msg)
	}
	if s.Weight < 0 {
		v.add(path+".weight", "must be at least 1 (got %d)", s.Weight)
	}
}

func (p *Pool) validate(v *validator, path string) {
	v.intRange(path+".connections-per-server", p.ConnectionsPerServer, 1, maxConnections)
	v.intRange(path+".bind-connections-per-server", p.BindConnectionsPerServer, 1, maxConnections)
	v.intRange(path+".max-connections-per-server", p.MaxConnectionsPerServer, 1, maxConnections)
	v.intRange(path+".max-bind-connections-per-server", p.MaxBindConnectionsPerServer, 1, maxConnections)
	if p.BoundConnectionsPerServer != nil {
		v.intRange(path+".bound-connections-per-server", *p.BoundConnectionsPerServer, 0, maxConnections)
	}
	v.intRange(path+".grow-at-operations-per-connection", p.GrowAtOperationsPerConnection, 1, 100000)
	v.atLeast(path+".max-connections-per-server", p.MaxConnectionsPerServer, "connections-per-server", p.ConnectionsPerServer)
	v.atLeast(path+".max-bind-connections-per-server", p.MaxBindConnectionsPerServer, "bind-connections-per-server", p.BindConnectionsPerServer)
	if p.LeasedConnectionsPerServer != 0 {
		v.intRange(path+".leased-connections-per-server", p.LeasedConnectionsPerServer, 1, 100000)
	}
	for key, d := range map[string]Duration{"search-time-limit": p.SearchTimeLimit, "lease-idle-timeout": p.LeaseIdleTimeout} {
		if d < 0 {
			v.add(path+"."+key, "must not be negative (got %s)", d)
		}
	}
	if p.MaxConnectionAge != 0 && p.MaxConnectionAge < minMaxConnectionAge {
		v.add(path+".max-connection-age", "must be at least %s (got %s)", minMaxConnectionAge, p.MaxConnectionAge)
	}
}

func (l *Limits) validate(v *validator, path string) {
	if l.MaxPDUSize != 0 && l.MaxPDUSize < minMaxPDUSize {
		v.add(path+".max-pdu-size", "must be at least %s (got %s)", minMaxPDUSize, l.MaxPDUSize)
	}
	if l.MaxClientConnections < 0 {
		v.add(path+".max-client-connections", "must not be negative (got %d)", l.MaxClientConnections)
	}
	l.validateMore(v, path)
}

func (c *Config) setDefaults() {
	for i := range c.Servers {
		setDefault(&c.Servers[i].Weight, defaultWeight)
	}
	c.Pool.setDefaults()
	setDefault(&c.LoadBalancing.Algorithm, KnownAlgorithms[0])
	setDefault(&c.Limits.MaxPDUSize, defaultMaxPDUSize)
	setDefault(&c.Limits.MaxClientConnections, defaultMaxClientConnections)
	c.Limits.setMoreDefaults(c.Pool.OperationTimeout)
	setDefault(&c.Log.Level, defaultLogLevel)
	setDefault(&c.Log.Format, defaultLogFormat)
	setDefault(&c.ShutdownGracePeriod, defaultShutdownGracePeriod)
	setDefault(&c.EventLoops, EventLoopsAuto)
	c.setRoutingDefaults()
	c.setObservabilityDefaults()
	c.setSecurityDefaults()
	c.setHealthDefaults()
	c.setIdentityDefaults()
}

func (p *Pool) setDefaults() {
	setDefault(&p.ConnectionsPerServer, defaultConnectionsPerServer)
	setDefault(&p.BindConnectionsPerServer, defaultBindConnections)
	setDefault(&p.MaxConnectionsPerServer, max(defaultMaxConnections, p.ConnectionsPerServer))
	setDefault(&p.MaxBindConnectionsPerServer, max(defaultMaxBindConnections, p.BindConnectionsPerServer))
	setDefault(&p.GrowAtOperationsPerConnection, defaultGrowAt)
	if p.BoundConnectionsPerServer == nil {
		n := defaultBoundConnections
		p.BoundConnectionsPerServer = &n
	}
	setDefault(&p.MaxConnectionAge, defaultMaxConnectionAge)
	setDefault(&p.IdleCheckInterval, defaultIdleCheckInterval)
	setDefault(&p.ConnectTimeout, defaultConnectTimeout)
	setDefault(&p.OperationTimeout, defaultOperationTimeout)
	setDefault(&p.LeasedConnectionsPerServer, defaultLeasedConnections)
	setDefault(&p.LeaseIdleTimeout, defaultLeaseIdleTimeout)
}

// setDefault sets *p to def if it is the zero value.
func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// validateDN checks the syntax of a DN, returning a problem message or "".
func validateDN(dn string) string {
	if dn == "" {
		return "required"
	}
	if _, err := ldap.ParseDN(dn); err != nil {
		return fmt.Sprintf("invalid DN %q: %v", dn, err)
	}
	return ""
}
