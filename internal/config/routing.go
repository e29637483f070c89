package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Routing holds locations, named algorithms, criteria-based routes and
// server affinity. Its keys sit at the top level of the file.
type Routing struct {
	// Location is where this proxy runs, compared with servers[].location.
	// Optional; without it locations play no part in choosing servers.
	Location string `yaml:"location"`
	// Locations holds settings per location name.
	Locations map[string]Location `yaml:"locations"`
	// UseLocation makes every algorithm prefer servers in this proxy's
	// location, then its preferred failover locations in order, then any
	// other. Default true.
	UseLocation *bool `yaml:"use-location"`
	// PreferDegradedServersOverFailover lets a degraded server in a better
	// location beat an available server in a worse one. Default false:
	// every available server is tried before any degraded one.
	PreferDegradedServersOverFailover bool `yaml:"prefer-degraded-servers-over-failover"`
	// Algorithms are named load-balancing algorithms for Routes.
	Algorithms map[string]Algorithm `yaml:"algorithms"`
	// Routes are tried in order: the first whose criteria all match an
	// operation picks its algorithm. A last route without criteria is the
	// default; without one, load-balancing.algorithm over all servers is.
	Routes []Route `yaml:"routes"`
	// Affinity sends a client's operations to the server it used recently.
	Affinity Affinity `yaml:"affinity"`
}

// Location holds the settings of one location.
type Location struct {
	// PreferredFailoverLocations are tried in order when no server of this
	// location is usable, before any other location.
	PreferredFailoverLocations []string `yaml:"preferred-failover-locations"`
}

// Algorithm is a named load-balancing algorithm.
type Algorithm struct {
	// Type is one of KnownAlgorithms; required.
	Type string `yaml:"type"`
	// Servers are the names of the servers it may use, in preference
	// order. Default: every server, in list order.
	Servers []string `yaml:"servers"`
}

// Route sends the operations its criteria match to an algorithm.
type Route struct {
	// Match holds the criteria; all given must hold. Empty: every operation.
	Match Match `yaml:"match"`
	// Algorithm names an entry of algorithms, or is an algorithm type
	// (one of KnownAlgorithms) over all servers; required.
	Algorithm string `yaml:"algorithm"`
}

// Match holds the criteria of a route. Each criterion holds when one of its
// values does; DNs are compared case-insensitively after normalisation.
type Match struct {
	// Operations are operation types: add, delete, modify, modify-dn, bind,
	// search, compare, extended, or the groups write (add, delete, modify,
	// modify-dn) and read (bind, search, compare).
	Operations []string `yaml:"operations"`
	// ClientNetworks are networks in CIDR notation (a bare address is one
	// host) the client's address must be in.
	ClientNetworks []string `yaml:"client-networks"`
	// ClientBindDNs are DNs the client must be bound as. For a bind, the
	// DN being bound is used.
	ClientBindDNs []string `yaml:"client-bind-dns"`
	// ClientBindSubtrees are subtrees the client's bind DN must be in.
	ClientBindSubtrees []string `yaml:"client-bind-subtrees"`
	// TargetSubtrees are subtrees the operation's entry (a search's base)
	// must be in.
	TargetSubtrees []string `yaml:"target-subtrees"`
	// RequestControls are control OIDs; the request must carry one of them.
	RequestControls []string `yaml:"request-controls"`
	// ExtendedOperations are OIDs; the operation must be an extended
	// operation with one of them.
	ExtendedOperations []string `yaml:"extended-operations"`
}

// Affinity sends a client's operations to the server it used recently.
type Affinity struct {
	// Type is client-connection, client-ip or bind-dn; empty disables
	// affinity.
	Type string `yaml:"type"`
	// Mode is per-proxy (default: each proxy remembers which server
	// answered a client's last write) or consistent (no memory: every
	// proxy picks the same server for a client identity by rendezvous
	// hashing; bind-dn or client-ip only).
	Mode string `yaml:"mode"`
	// Duration is how long affinity lasts after an operation of After
	// (per-proxy mode). Default 10s, unless Until is set.
	Duration Duration `yaml:"duration"`
	// Until, set to "replicated" instead of a duration, follows each
	// client's successful writes by replication position: its reads go
	// only to servers that have applied its last write (per-proxy mode).
	Until string `yaml:"until"`
	// MaxWait bounds how long a read may wait for fresher replication
	// positions (until: replicated). Default 2s.
	MaxWait Duration `yaml:"max-wait"`
	// LostWriteTimeout bounds how long a client's reads are refused while
	// the server that took its last write is unusable and no other server
	// has that write (until: replicated); past it the write is treated as
	// lost to the client, logged, and its reads go to the other servers.
	// Default 1m; 0 refuses until the writer is back or another server has
	// the write.
	LostWriteTimeout *Duration `yaml:"lost-write-timeout"`
	// After lists the operations that set affinity (per-proxy mode), as
	// in match.operations. Default [write].
	After []string `yaml:"after"`
	// MaxEntries bounds the clients remembered (per-proxy mode); the
	// least recently recorded are forgotten first. Default 100000.
	MaxEntries int `yaml:"max-entries"`
}

// UsesLocation reports whether algorithms prefer servers by location
// (use-location, default true).
func (r *Routing) UsesLocation() bool { return r.UseLocation == nil || *r.UseLocation }

// Routing settings values.
var (
	// OperationNames are the operation types and groups of match.operations.
	OperationNames = []string{"add", "delete", "modify", "modify-dn", "bind", "search", "compare", "extended", "write", "read"}
	affinityTypes  = []string{"client-connection", "client-ip", "bind-dn"}
	affinityModes  = []string{"per-proxy", "consistent"}
	affinityUntils = []string{AffinityUntilReplicated}
	oidSyntax      = regexp.MustCompile(`^[0-2](\.(0|[1-9][0-9]*))+$`)
)

// AffinityUntilReplicated is the affinity.until value that follows writes
// by replication position.
const AffinityUntilReplicated = "replicated"

const (
	defaultAffinityMaxWait    = Duration(2 * time.Second)
	minAffinityMaxWait        = Duration(time.Millisecond)
	maxAffinityMaxWait        = Duration(time.Minute)
	defaultLostWriteTimeout   = Duration(time.Minute)
	maxLostWriteTimeout       = Duration(24 * time.Hour)
	defaultAffinityDuration   = Duration(10 * time.Second)
	defaultAffinityMaxEntries = 100000
	maxAffinityMaxEntries     = 10_000_000
)

func (c *Config) validateRouting(v *validator) {
	c.validateLocation(v)
	for _, name := range sortedKeys(c.Locations) {
		c.validateFailoverLocations(v, joinPath("locations", name), name)
	}
	for _, name := range sortedKeys(c.Algorithms) {
		c.validateAlgorithm(v, joinPath("algorithms", name), name)
	}
	for i := range c.Routes {
		c.validateRoute(v, fmt.Sprintf("routes[%d]", i), i)
	}
	c.Affinity.validate(v, "affinity")
}

// knownLocations are the locations of servers and those under locations.
func (c *Config) knownLocations() []string {
	var locs []string
	for _, s := range c.Servers {
		if s.Location != "" && !slices.Contains(locs, s.Location) {
			locs = append(locs, s.Location)
		}
	}
	for _, name := range sortedKeys(c.Locations) {
		if !slices.Contains(locs, name) {
			locs = append(locs, name)
		}
	}
	return locs
}

func (c *Config) validateLocation(v *validator) {
	if c.Location == "" || slices.Contains(c.knownLocations(), c.Location) {
		return
	}
	v.add("location", "no server is in location %q and it has no entry under locations%s",
		c.Location, didYouMean(c.Location, c.knownLocations()))
}

func (c *Config) validateFailoverLocations(v *validator, path, name string) {
	path += ".preferred-failover-locations"
	seen := map[string]bool{}
	for i, loc := range c.Locations[name].PreferredFailoverLocations {
		p := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case loc == name:
			v.add(p, "location %q cannot fail over to itself", loc)
		case seen[loc]:
			v.add(p, "duplicate location %q", loc)
		case !slices.Contains(c.knownLocations(), loc):
			v.add(p, "unknown location %q (no server is in it)%s", loc, didYouMean(loc, c.knownLocations()))
		}
		seen[loc] = true
	}
}

func (c *Config) validateAlgorithm(v *validator, path, name string) {
	a := c.Algorithms[name]
	switch {
	case !serverName.MatchString(name):
		v.add(path, "invalid algorithm name %q (use letters, digits, '.', '_' and '-')", name)
	case slices.Contains(KnownAlgorithms, name):
		v.add(path, "%q is an algorithm type; give the named algorithm another name", name)
	}
	if a.Type == "" {
		v.add(path+".type", "required (one of %s)", strings.Join(KnownAlgorithms, ", "))
	}
	v.oneOf(path+".type", "algorithm type", a.Type, KnownAlgorithms)
	c.validateServerNames(v, path+".servers", a.Servers)
}

func (c *Config) validateServerNames(v *validator, path string, names []string) {
	seen := map[string]bool{}
	for i, name := range names {
		p := fmt.Sprintf("%s[%d]", path, i)
		if _, ok := c.ServerByName(name); !ok {
			v.add(p, "unknown server %q (%s)", name, choiceHint(name, c.serverNames(), "servers are"))
		} else if seen[name] {
			v.add(p, "duplicate server %q", name)
		}
		seen[name] = true
	}
}

func (c *Config) serverNames() []string {
	names := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		names[i] = s.Name
	}
	return names
}

func (c *Config) validateRoute(v *validator, path string, i int) {
	r := c.Routes[i]
	if r.Match.empty() && i != len(c.Routes)-1 {
		v.add(path, "a route without criteria matches every operation, so it must be the last (routes after it are never used)")
	}
	r.Match.validate(v, path+".match")
	_, named := c.Algorithms[r.Algorithm]
	switch {
	case r.Algorithm == "":
		v.add(path+".algorithm", "required (a name under algorithms, or one of %s)", strings.Join(KnownAlgorithms, ", "))
	case !named && !slices.Contains(KnownAlgorithms, r.Algorithm):
		v.add(path+".algorithm", "unknown algorithm %q (%s)", r.Algorithm, c.algorithmHint(r.Algorithm))
	}
}

// algorithmHint suggests a known algorithm name or says how to define one.
func (c *Config) algorithmHint(name string) string {
	if s := suggest(name, append(sortedKeys(c.Algorithms), KnownAlgorithms...)); s != "" {
		return "did you mean " + s + "?"
	}
	return "define it under algorithms, or use one of " + strings.Join(KnownAlgorithms, ", ")
}

func (m *Match) empty() bool {
	return len(m.Operations) == 0 && len(m.ClientNetworks) == 0 && len(m.ClientBindDNs) == 0 &&
		len(m.ClientBindSubtrees) == 0 && len(m.TargetSubtrees) == 0 && len(m.RequestControls) == 0 &&
		len(m.ExtendedOperations) == 0
}

func (m *Match) validate(v *validator, path string) {
	validateOperations(v, path+".operations", m.Operations)
	for i, n := range m.ClientNetworks {
		if _, err := ParseNetwork(n); err != nil {
			v.add(fmt.Sprintf("%s.client-networks[%d]", path, i), "%v", err)
		}
	}
	validateDNs(v, path+".client-bind-dns", m.ClientBindDNs)
	validateDNs(v, path+".client-bind-subtrees", m.ClientBindSubtrees)
	validateDNs(v, path+".target-subtrees", m.TargetSubtrees)
	validateOIDs(v, path+".request-controls", m.RequestControls)
	validateOIDs(v, path+".extended-operations", m.ExtendedOperations)
}

// ParseNetwork reads a network in CIDR notation; a bare address is a
// single host.
func ParseNetwork(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		if p != p.Masked() {
			return p, fmt.Errorf("network %q has host bits set (did you mean %s?)", s, p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid network %q (use CIDR notation such as 10.0.0.0/8, or an address)", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func validateOperations(v *validator, path string, ops []string) {
	for i, op := range ops {
		p := fmt.Sprintf("%s[%d]", path, i)
		if op == "" {
			v.add(p, "empty operation (use one of %s)", strings.Join(OperationNames, ", "))
		}
		v.oneOf(p, "operation", op, OperationNames)
	}
}

func validateDNs(v *validator, path string, dns []string) {
	for i, dn := range dns {
		if msg := validateDN(dn); msg != "" {
			v.add(fmt.Sprintf("%s[%d]", path, i), "%s", msg)
		}
	}
}

func validateOIDs(v *validator, path string, oids []string) {
	for i, oid := range oids {
		if !oidSyntax.MatchString(oid) {
			v.add(fmt.Sprintf("%s[%d]", path, i), "invalid OID %q (use dotted numbers such as 1.3.6.1.4.1.4203.1.11.1)", oid)
		}
	}
}

func (a *Affinity) validate(v *validator, path string) {
	if a.Type == "" {
		if a.Mode != "" || a.Duration != 0 || a.After != nil || a.MaxEntries != 0 || a.Until != "" || a.MaxWait != 0 || a.LostWriteTimeout != nil {
			v.add(path+".type", "required to enable affinity (one of %s)", strings.Join(affinityTypes, ", "))
		}
		return
	}
	v.oneOf(path+".type", "affinity type", a.Type, affinityTypes)
	v.oneOf(path+".mode", "affinity mode", a.Mode, affinityModes)
	if a.Mode == "consistent" {
		a.validateConsistent(v, path)
		return
	}
	v.intRange(path+".max-entries", a.MaxEntries, 1, maxAffinityMaxEntries)
	if a.Until != "" || a.MaxWait != 0 || a.LostWriteTimeout != nil {
		a.validateUntil(v, path)
		return
	}
	if a.After != nil && len(a.After) == 0 {
		v.add(path+".after", "at least one operation is required (default [write])")
	}
	validateOperations(v, path+".after", a.After)
}

// validateUntil checks affinity that lasts until a client's writes are
// replicated: no duration, every successful write sets it.
func (a *Affinity) validateUntil(v *validator, path string) {
	switch {
	case a.Until == "":
		v.add(path+".until", "max-wait and lost-write-timeout apply only with until: %s", AffinityUntilReplicated)
	default:
		v.oneOf(path+".until", "affinity end", a.Until, affinityUntils)
	}
	if a.Duration != 0 {
		v.add(path+".duration", "does not apply with until: %s, which ends when every server has the write (remove one of them)", AffinityUntilReplicated)
	}
	if a.After != nil {
		v.add(path+".after", "does not apply with until: %s: every successful add, delete, modify and modify-dn sets it (remove it)", AffinityUntilReplicated)
	}
	if a.MaxWait != 0 && (a.MaxWait < minAffinityMaxWait || a.MaxWait > maxAffinityMaxWait) {
		v.add(path+".max-wait", "must be between %s and %s (got %s)", minAffinityMaxWait, maxAffinityMaxWait, a.MaxWait)
	}
	if t := a.LostWriteTimeout; t != nil && (*t < 0 || *t > maxLostWriteTimeout) {
		v.add(path+".lost-write-timeout", "must be between 0 (refuse until the writer is back) and %s (got %s)", maxLostWriteTimeout, *t)
	}
}

// LostWrite is lost-write-timeout, 0 when unset.
func (a *Affinity) LostWrite() time.Duration {
	if a.LostWriteTimeout == nil {
		return 0
	}
	return a.LostWriteTimeout.D()
}

// UntilReplicated reports whether affinity follows writes by replication
// position.
func (a *Affinity) UntilReplicated() bool { return a.Until == AffinityUntilReplicated }

func (a *Affinity) validateConsistent(v *validator, path string) {
	if a.Type == "client-connection" {
		v.add(path+".type", "consistent mode needs an identity every proxy sees: use bind-dn or client-ip")
	}
	for _, k := range []struct {
		key string
		set bool
	}{{"duration", a.Duration != 0}, {"after", a.After != nil}, {"max-entries", a.MaxEntries != 0},
		{"until", a.Until != ""}, {"max-wait", a.MaxWait != 0}, {"lost-write-timeout", a.LostWriteTimeout != nil}} {
		if k.set {
			v.add(path+"."+k.key, "does not apply in consistent mode, which remembers nothing (remove it)")
		}
	}
}

func (c *Config) setRoutingDefaults() {
	for name, a := range c.Algorithms {
		if len(a.Servers) == 0 {
			a.Servers = c.serverNames()
			c.Algorithms[name] = a
		}
	}
	a := &c.Affinity
	if a.Type == "" {
		return
	}
	setDefault(&a.Mode, affinityModes[0])
	if a.Mode == "consistent" {
		return
	}
	setDefault(&a.MaxEntries, defaultAffinityMaxEntries)
	if a.Until != "" {
		setDefault(&a.MaxWait, defaultAffinityMaxWait)
		if a.LostWriteTimeout == nil {
			d := defaultLostWriteTimeout
			a.LostWriteTimeout = &d
		}
		return
	}
	setDefault(&a.Duration, defaultAffinityDuration)
	if a.After == nil {
		a.After = []string{"write"}
	}
}

// choiceHint suggests the choice probably meant, or lists them all after
// the given words.
func choiceHint(word string, choices []string, listed string) string {
	if s := suggest(word, choices); s != "" {
		return "did you mean " + s + "?"
	}
	return listed + " " + strings.Join(choices, ", ")
}

// didYouMean formats a suggestion as " (did you mean X?)", or "".
func didYouMean(word string, candidates []string) string {
	if s := suggest(word, candidates); s != "" {
		return " (did you mean " + s + "?)"
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
