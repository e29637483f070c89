package app

import (
	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/health"
)

var searchCheck = checkType{build: func(c checkSpec) health.Check {
	return health.NewSearch(c.name, searchConfig(c.config.Settings.(*config.SearchCheck)))
}}

var scopes = map[string]int{"base": ldap.ScopeBaseObject, "one": ldap.ScopeSingleLevel, "sub": ldap.ScopeWholeSubtree}

func searchConfig(s *config.SearchCheck) health.SearchConfig {
	mismatch := backend.Unavailable
	if s.MismatchState == "degraded" {
		mismatch = backend.Degraded
	}
	return health.SearchConfig{
		BaseDN: s.BaseDN, Scope: scopes[s.Scope], Filter: s.Filter,
		ResponseTime:   health.DurationLevels(s.DegradedAbove.D(), s.AvailableBelow.D(), s.UnavailableAbove.D(), s.DegradedBelow.D()),
		AllowNoEntries: *s.AllowNoEntriesReturned, AllowMultipleEntries: *s.AllowMultipleEntriesReturned,
		ExpectedValues: s.ExpectedValues, MismatchState: mismatch,
	}
}
