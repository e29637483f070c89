package health

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/backend"
)

// Sources of replication state.
const (
	SourceCSN     = "csn"     // compare contextCSN values across servers (OpenLDAP syncrepl)
	SourceMonitor = "monitor" // read a backlog published in monitor entries (PingDirectory)
)

// BacklogConfig configures a replication-backlog check.
type BacklogConfig struct {
	Source string // SourceCSN (default) or SourceMonitor
	// BaseDN: with SourceCSN, the entry holding contextCSN (default: the
	// server's first naming context); with SourceMonitor, only monitor
	// entries whose base-dn attribute names it count (default: all).
	BaseDN string
	// Age thresholds are in seconds, Count thresholds in changes. Counts
	// apply only where the server publishes one (SourceMonitor).
	Age, Count Levels
	// Monitor entries (SourceMonitor): found with a subtree search of
	// MonitorBaseDN for MonitorFilter; CountAttribute holds the number of
	// missing changes and AgeAttribute the time of the oldest one
	// (generalized time) or its age in seconds. The largest over all
	// entries counts.
	MonitorBaseDN, MonitorFilter, CountAttribute, AgeAttribute string
}

// PingDirectory's replica monitor entries.
const (
	DefaultBacklogMonitorBaseDN  = "cn=monitor"
	DefaultBacklogMonitorFilter  = "(objectClass=ds-replica-monitor-entry)"
	DefaultBacklogCountAttribute = "replication-backlog"
	DefaultBacklogAgeAttribute   = "age-of-oldest-backlog-change"
)

// ReplicationBacklog makes a server degraded or unavailable when it lags
// behind in replication: by the age of the oldest change it is missing and,
// where the server publishes it, by the number of missing changes.
type ReplicationBacklog struct {
	name   string
	cfg    BacklogConfig
	view   *ReplicationView // SourceCSN: shared by the servers of this check
	server int
	base   string // discovered naming context (SourceCSN, no BaseDN)
	age    meter
	count  meter
}

// NewReplicationBacklog builds the check of one server (its index in
// view). Every server with this configured check shares view.
func NewReplicationBacklog(name string, cfg BacklogConfig, view *ReplicationView, server int) *ReplicationBacklog {
	if cfg.Source == "" {
		cfg.Source = SourceCSN
	}
	setDefault(&cfg.MonitorBaseDN, DefaultBacklogMonitorBaseDN)
	setDefault(&cfg.MonitorFilter, DefaultBacklogMonitorFilter)
	setDefault(&cfg.CountAttribute, DefaultBacklogCountAttribute)
	setDefault(&cfg.AgeAttribute, DefaultBacklogAgeAttribute)
	return &ReplicationBacklog{
		name: name, cfg: cfg, view: view, server: server,
		age:   meter{name: "replication backlog age", levels: cfg.Age, format: seconds},
		count: meter{name: "replication backlog", levels: cfg.Count, format: count},
	}
}

func setDefault(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

// Name implements Check.
func (b *ReplicationBacklog) Name() string { return b.name }

func (b *ReplicationBacklog) demote() {
	b.age.demote()
	b.count.demote()
}

// Run implements Check.
func (b *ReplicationBacklog) Run(ctx context.Context, t *Target) Result {
	if b.cfg.Source == SourceMonitor {
		return b.runMonitor(ctx, t)
	}
	return b.runCSN(ctx, t)
}

// runCSN compares the server's contextCSN with the other servers'.
func (b *ReplicationBacklog) runCSN(ctx context.Context, t *Target) Result {
	began := t.Now() // the position is at least as new as this
	csns, err := b.readCSNs(ctx, t)
	if err != nil {
		b.view.Lost(b.server)
		return b.failed(err)
	}
	b.view.Report(b.server, csns, began)
	b.view.WaitFirstRound(ctx)
	lag := b.view.Backlog(b.server, t.Now())
	r := b.age.observe(lag.Age.Seconds())
	if lag.Behind {
		r.Reason += fmt.Sprintf(" (changes of serverID %d missing)", lag.SID)
	}
	return r
}

// failed is the result when the replication state cannot be read: the
// server is unavailable if it cannot be reached, degraded otherwise (its
// data may be stale, nobody can tell).
func (b *ReplicationBacklog) failed(err error) Result {
	b.demote()
	if isResultError(err) || errors.Is(err, errNoState) {
		return Result{State: backend.Degraded, Score: 2, Reason: fmt.Sprintf("replication state unknown: %v", err)}
	}
	return Result{State: backend.Unavailable, Score: 1, Reason: err.Error()}
}

// errNoState marks a server that answers but publishes no replication state.
var errNoState = errors.New("no replication state published")

// readCSNs reads the contextCSN values of the replicated suffix.
func (b *ReplicationBacklog) readCSNs(ctx context.Context, t *Target) ([]CSN, error) {
	base, err := b.baseDN(ctx, t)
	if err != nil {
		return nil, err
	}
	if serverType(t) == backend.Type389DS {
		return readRUV(ctx, t, base)
	}
	res, err := t.search(ctx, baseSearch(base, "contextCSN"))
	if err != nil {
		return nil, fmt.Errorf("read contextCSN of %q: %w", base, err)
	}
	var csns []CSN
	for _, v := range firstEntry(res).GetAttributeValues("contextCSN") {
		c, err := ParseCSN(v)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %v", errNoState, base, err)
		}
		csns = append(csns, c)
	}
	if len(csns) == 0 {
		return nil, fmt.Errorf("%w: %q has no contextCSN the service account can read (is the suffix replicated, with syncprov?)", errNoState, base)
	}
	return csns, nil
}

// serverType is the type of t's server found at connect, "" before.
func serverType(t *Target) string {
	if t.Server == nil {
		return ""
	}
	if caps := t.Server.Capabilities(); caps != nil {
		return caps.Type
	}
	return ""
}

// baseDN is the configured base DN or the server's first naming context.
func (b *ReplicationBacklog) baseDN(ctx context.Context, t *Target) (string, error) {
	if b.cfg.BaseDN != "" {
		return b.cfg.BaseDN, nil
	}
	if b.base != "" {
		return b.base, nil
	}
	res, err := t.search(ctx, baseSearch("", "namingContexts"))
	if err != nil {
		return "", fmt.Errorf("read naming contexts: %w", err)
	}
	ncs := firstEntry(res).GetAttributeValues("namingContexts")
	if len(ncs) == 0 {
		return "", fmt.Errorf("%w: the root DSE lists no naming context (set base-dn)", errNoState)
	}
	b.base = ncs[0]
	return b.base, nil
}

// runMonitor judges the backlog the server publishes in monitor entries.
func (b *ReplicationBacklog) runMonitor(ctx context.Context, t *Target) Result {
	n, age, err := b.readMonitor(ctx, t)
	if err != nil {
		return b.failed(err)
	}
	var rs []Result
	if b.cfg.Count.Set() {
		rs = append(rs, b.count.observe(float64(n)))
	}
	return worst(append(rs, b.age.observe(age.Seconds()))...)
}

// readMonitor returns the largest backlog count and age of the monitor
// entries of the configured base DN.
func (b *ReplicationBacklog) readMonitor(ctx context.Context, t *Target) (n int64, age time.Duration, err error) {
	req := ldap.NewSearchRequest(b.cfg.MonitorBaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		b.cfg.MonitorFilter, []string{b.cfg.CountAttribute, b.cfg.AgeAttribute, "base-dn"}, nil)
	res, err := t.search(ctx, req)
	if err != nil {
		return 0, 0, fmt.Errorf("read replication monitor: %w", err)
	}
	found := false
	for _, e := range res.Entries {
		if b.cfg.BaseDN != "" && !sameDN(e.GetAttributeValue("base-dn"), b.cfg.BaseDN) {
			continue
		}
		found = true
		c, a, err := b.monitorValues(e, t.Now())
		if err != nil {
			return 0, 0, err
		}
		n, age = max(n, c), max(age, a)
	}
	if !found {
		return 0, 0, fmt.Errorf("%w: no entry matches %s under %q", errNoState, b.cfg.MonitorFilter, b.cfg.MonitorBaseDN)
	}
	return n, age, nil
}

// monitorValues reads the count and age of one monitor entry; missing
// attributes count as no backlog.
func (b *ReplicationBacklog) monitorValues(e *ldap.Entry, now time.Time) (int64, time.Duration, error) {
	var n int64
	if v := e.GetAttributeValue(b.cfg.CountAttribute); v != "" {
		var err error
		if n, err = strconv.ParseInt(v, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("%w: %s of %q is %q, not a number", errNoState, b.cfg.CountAttribute, e.DN, v)
		}
	}
	v := e.GetAttributeValue(b.cfg.AgeAttribute)
	if v == "" {
		return n, 0, nil
	}
	age, err := parseAge(v, now)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %s of %q: %v", errNoState, b.cfg.AgeAttribute, e.DN, err)
	}
	return n, age, nil
}

// parseAge reads an age given as a number of seconds or as the generalized
// time of the oldest change.
func parseAge(v string, now time.Time) (time.Duration, error) {
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Duration(secs * float64(time.Second)), nil
	}
	t, err := parseGeneralizedTime(v)
	if err != nil {
		return 0, err
	}
	return max(now.Sub(t), 0), nil
}

// sameDN compares two DNs, ignoring case and spacing.
func sameDN(a, b string) bool {
	da, err1 := ldap.ParseDN(a)
	db, err2 := ldap.ParseDN(b)
	if err1 != nil || err2 != nil {
		return strings.EqualFold(a, b)
	}
	return da.EqualFold(db)
}

// baseSearch is a base-scope search for attrs of dn.
func baseSearch(dn string, attrs ...string) *ldap.SearchRequest {
	return ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false, "(objectClass=*)", attrs, nil)
}

// firstEntry is the first entry of res, or an empty one.
func firstEntry(res *ldap.SearchResult) *ldap.Entry {
	if res == nil || len(res.Entries) == 0 {
		return &ldap.Entry{}
	}
	return res.Entries[0]
}
