package health

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/backend"
)

// SearchConfig configures a search check.
type SearchConfig struct {
	BaseDN string // "" is the root DSE
	Scope  int    // ldap.ScopeBaseObject (the zero value), ScopeSingleLevel or ScopeWholeSubtree
	Filter string // default (objectClass=*)
	// ResponseTime holds the response-time thresholds, in seconds.
	ResponseTime Levels
	// AllowNoEntries and AllowMultipleEntries accept searches that return
	// no entry or more than one.
	AllowNoEntries, AllowMultipleEntries bool
	// ExpectedValues: every entry returned must have, for each attribute,
	// one of the values (compared without regard to case).
	ExpectedValues map[string][]string
	// MismatchState is the state when the entries returned are not as
	// expected: Degraded or Unavailable (the default).
	MismatchState backend.State
}

// Search checks a server with a search: unavailable on error or timeout,
// then by its response time (with hysteresis) and by the entries returned.
type Search struct {
	name  string
	cfg   SearchConfig
	attrs []string // sorted attributes of ExpectedValues
	rt    meter
}

// NewSearch builds a search check for one server.
func NewSearch(name string, cfg SearchConfig) *Search {
	if cfg.Filter == "" {
		cfg.Filter = "(objectClass=*)"
	}
	if cfg.MismatchState == backend.Available {
		cfg.MismatchState = backend.Unavailable
	}
	s := &Search{name: name, cfg: cfg}
	for attr := range cfg.ExpectedValues {
		s.attrs = append(s.attrs, attr)
	}
	slices.Sort(s.attrs)
	s.rt = meter{name: "response time", levels: cfg.ResponseTime, format: seconds}
	return s
}

// DefaultCheck is the check of servers that have none configured: a search
// of the root DSE that must answer within the check timeout.
func DefaultCheck() Check {
	return NewSearch("root-dse", SearchConfig{AllowNoEntries: true, AllowMultipleEntries: true})
}

// Name implements Check.
func (s *Search) Name() string { return s.name }

func (s *Search) demote() { s.rt.demote() }

// Run implements Check.
func (s *Search) Run(ctx context.Context, t *Target) Result {
	conn, err := t.Conn(ctx)
	if err != nil {
		s.rt.demote()
		return Result{State: backend.Unavailable, Score: 1, Reason: err.Error()}
	}
	start := t.Now()
	res, err := conn.Search(s.request())
	elapsed := t.Now().Sub(start)
	entries, truncated, err := searchOutcome(res, err)
	if err != nil {
		t.requestFailed(ctx, err)
		s.rt.demote()
		return Result{State: backend.Unavailable, Score: 1, Reason: fmt.Sprintf("search %s: %v", s.describe(), err)}
	}
	r := s.rt.observe(elapsed.Seconds())
	r.Reason = fmt.Sprintf("search %s: %s", s.describe(), r.Reason)
	if msg := s.judge(entries, truncated); msg != "" {
		return worst(r, Result{State: s.cfg.MismatchState, Score: fixedScore(s.cfg.MismatchState), Reason: fmt.Sprintf("search %s: %s", s.describe(), msg)})
	}
	return r
}

// searchOutcome treats a missing base entry as no entries and a size limit
// as more entries than returned.
func searchOutcome(res *ldap.SearchResult, err error) (entries []*ldap.Entry, truncated bool, _ error) {
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		return nil, false, nil
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded):
		truncated, err = true, nil
	}
	if err != nil {
		return nil, false, err
	}
	if res != nil {
		entries = res.Entries
	}
	return entries, truncated, nil
}

// request is the configured search. Without expected values, two entries
// are enough to judge.
func (s *Search) request() *ldap.SearchRequest {
	attrs, limit := s.attrs, 0
	if len(attrs) == 0 {
		attrs, limit = []string{"1.1"}, 2
	}
	return ldap.NewSearchRequest(s.cfg.BaseDN, s.cfg.Scope, ldap.NeverDerefAliases, limit, 0, false, s.cfg.Filter, attrs, nil)
}

// describe names the search in reasons.
func (s *Search) describe() string {
	if s.cfg.BaseDN == "" && s.cfg.Scope == ldap.ScopeBaseObject {
		return "of the root DSE"
	}
	return fmt.Sprintf("%s %q %s", scopeNames[s.cfg.Scope], s.cfg.BaseDN, s.cfg.Filter)
}

// scopeNames are the configuration names of the search scopes.
var scopeNames = map[int]string{ldap.ScopeBaseObject: "base", ldap.ScopeSingleLevel: "one", ldap.ScopeWholeSubtree: "sub"}

// judge returns what is wrong with the entries returned, or "".
func (s *Search) judge(entries []*ldap.Entry, truncated bool) string {
	n := len(entries)
	switch {
	case n == 0 && !truncated && !s.cfg.AllowNoEntries:
		return "no entry returned"
	case (n > 1 || truncated) && !s.cfg.AllowMultipleEntries:
		return "more than one entry returned"
	}
	for _, e := range entries {
		if msg := s.mismatch(e); msg != "" {
			return msg
		}
	}
	return ""
}

// mismatch returns how entry e differs from the expected values, or "".
func (s *Search) mismatch(e *ldap.Entry) string {
	for _, attr := range s.attrs {
		want := s.cfg.ExpectedValues[attr]
		got := e.GetAttributeValues(attr)
		if !slices.ContainsFunc(got, func(v string) bool { return containsFold(want, v) }) {
			return fmt.Sprintf("entry %q has %s %q, expected one of %q", e.DN, attr, got, want)
		}
	}
	return ""
}

// containsFold reports whether list holds v, ignoring case.
func containsFold(list []string, v string) bool {
	return slices.ContainsFunc(list, func(w string) bool { return strings.EqualFold(w, v) })
}
