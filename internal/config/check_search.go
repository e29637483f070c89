package config

// CheckSearch is the type of checks that run a search.
const CheckSearch = "search"

var (
	searchScopes   = []string{"base", "one", "sub"}
	mismatchStates = []string{"degraded", "unavailable"}
)

// SearchCheck holds the keys of search checks.
type SearchCheck struct {
	// BaseDN is the search base; "" (default) is the root DSE with scope
	// base.
	BaseDN string `yaml:"base-dn"`
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

// Validate implements CheckSettings.
func (s *SearchCheck) Validate(c CheckValidator) {
	v, path := c.v, c.path
	v.optionalDN(path+".base-dn", s.BaseDN)
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

// SetDefaults implements CheckSettings.
func (s *SearchCheck) SetDefaults() {
	setDefault(&s.Scope, "base")
	setDefault(&s.Filter, "(objectClass=*)")
	setDefault(&s.AvailableBelow, s.DegradedAbove)
	setDefault(&s.DegradedBelow, s.UnavailableAbove)
	yes := true
	setDefault(&s.AllowNoEntriesReturned, &yes)
	setDefault(&s.AllowMultipleEntriesReturned, &yes)
	setDefault(&s.MismatchState, "unavailable")
}
