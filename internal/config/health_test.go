package config

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

// issueHealth is the health configuration from the health-check issue.
const issueHealth = `health-check-frequency: 1s          # default for every server; a server may override it
health-checks:
  response-time:
    type: search
    base-dn: ""                     # root DSE
    use-for-all-servers: true       # or list checks per server: servers[].health-checks: [name, ...]
    degraded-above: 1s
    available-below: 500ms
    unavailable-above: 5s
  backlog:
    type: replication-backlog
    use-for-all-servers: true
    degraded-age: 2s
    unavailable-age: 30s
    degraded-count: 100             # where the server publishes a count
    unavailable-count: 10000
`

func TestIssueHealthExample(t *testing.T) {
	cfg := mustParse(t, minimal+issueHealth)
	yes := true
	want := map[string]HealthCheck{
		"response-time": {Type: "search", UseForAllServers: true, Settings: &SearchCheck{
			Scope: "base", Filter: "(objectClass=*)",
			DegradedAbove: Duration(time.Second), AvailableBelow: Duration(500 * time.Millisecond),
			UnavailableAbove: Duration(5 * time.Second), DegradedBelow: Duration(5 * time.Second),
			AllowNoEntriesReturned: &yes, AllowMultipleEntriesReturned: &yes, MismatchState: "unavailable",
		}},
		"backlog": {Type: "replication-backlog", UseForAllServers: true, Settings: &BacklogCheck{
			Source:      "csn",
			DegradedAge: Duration(2 * time.Second), AvailableAge: Duration(2 * time.Second), UnavailableAge: Duration(30 * time.Second),
			DegradedCount: 100, AvailableCount: 100, UnavailableCount: 10000,
		}},
	}
	if !reflect.DeepEqual(cfg.HealthChecks, want) {
		t.Errorf("health-checks:\n got %+v\nwant %+v", cfg.HealthChecks, want)
	}
	if cfg.HealthCheckFrequency.D() != time.Second || cfg.HealthCheckTimeout.D() != 5*time.Second {
		t.Errorf("frequency %v, timeout %v", cfg.HealthCheckFrequency, cfg.HealthCheckTimeout)
	}
	if got := cfg.ChecksOf(0); !slices.Equal(got, []string{"backlog", "response-time"}) {
		t.Errorf("checks of ds1 = %v", got)
	}
}

func TestServerHealthChecks(t *testing.T) {
	src := `listen: [{address: ':1389'}]
servers:
  - name: ds1
    address: a:389
    health-checks: [alerts, busy]
    health-check-frequency: 250ms
  - name: ds2
    address: b:389
service-account: {bind-dn: 'cn=x', password: p}
health-check-frequency: 2s
health-check-timeout: 300ms
health-checks:
  alerts:
    type: admin-alert
    poll-only: true
  busy:
    type: busyness
    degraded-outstanding: 10
    server-monitor: openldap
    unavailable-queue: 100
  all:
    type: search
    use-for-all-servers: true
    base-dn: ou=people,dc=example,dc=com
    scope: one
    filter: (uid=user.1)
    allow-multiple-entries-returned: false
    expected-values: {uid: [user.1]}
    mismatch-state: degraded
`
	cfg := mustParse(t, src)
	if got := cfg.ChecksOf(0); !slices.Equal(got, []string{"all", "alerts", "busy"}) {
		t.Errorf("checks of ds1 = %v", got)
	}
	if got := cfg.ChecksOf(1); !slices.Equal(got, []string{"all"}) {
		t.Errorf("checks of ds2 = %v", got)
	}
	if f := cfg.Servers[0].HealthCheckFrequency.D(); f != 250*time.Millisecond {
		t.Errorf("ds1 frequency = %v", f)
	}
	if f := cfg.Servers[1].HealthCheckFrequency.D(); f != 2*time.Second {
		t.Errorf("ds2 frequency = %v (want the top-level one)", f)
	}
	alerts := *cfg.HealthChecks["alerts"].Settings.(*AlertCheck)
	if alerts != (AlertCheck{"cn=monitor", "cn=alerts", "degraded-alert-type", "unavailable-alert-type", true}) {
		t.Errorf("alerts = %+v", alerts)
	}
	busy := cfg.HealthChecks["busy"].Settings.(*BusynessCheck)
	if busy.AvailableOutstanding != 10 || busy.ServerMonitor != "openldap" || busy.UnavailableQueue != 100 {
		t.Errorf("busy = %+v", busy)
	}
	s := cfg.HealthChecks["all"].Settings.(*SearchCheck)
	if s.Scope != "one" || *s.AllowMultipleEntriesReturned || !*s.AllowNoEntriesReturned || s.MismatchState != "degraded" {
		t.Errorf("search = %+v", s)
	}
}

func TestBacklogMonitorDefaults(t *testing.T) {
	cfg := mustParse(t, minimal+`health-checks:
  pd:
    type: replication-backlog
    source: monitor
    degraded-count: 5
`)
	b := *cfg.HealthChecks["pd"].Settings.(*BacklogCheck)
	want := BacklogCheck{Source: "monitor", DegradedCount: 5, AvailableCount: 5,
		MonitorBaseDN: "cn=monitor", MonitorFilter: "(objectClass=ds-replica-monitor-entry)",
		CountAttribute: "replication-backlog", AgeAttribute: "age-of-oldest-backlog-change"}
	if b != want {
		t.Errorf("got  %+v\nwant %+v", b, want)
	}
}

func TestHealthProblems(t *testing.T) {
	tests := []struct {
		name string
		src  string // appended to minimal: line 9 onwards
		want []Problem
	}{
		{"frequency too short", "health-check-frequency: 1ms\nhealth-check-timeout: 5ms\n", []Problem{
			{"health-check-frequency", 9, "must be at least 10ms (got 1ms)"},
			{"health-check-timeout", 10, "must be at least 10ms (got 5ms)"},
		}},
		{"missing type", "health-checks:\n  x:\n    use-for-all-servers: true\n", []Problem{
			{"health-checks.x.type", 10, "required (one of search, replication-backlog, admin-alert, busyness)"},
		}},
		{"misspelt type", "health-checks:\n  x:\n    type: serach\n", []Problem{
			{"health-checks.x.type", 11, `unknown health check type "serach" (did you mean search?)`},
		}},
		{"unknown type", "health-checks:\n  x:\n    type: ping\n", []Problem{
			{"health-checks.x.type", 11, `unknown health check type "ping" (must be one of search, replication-backlog, admin-alert, busyness)`},
		}},
		{"misspelt key", "health-checks:\n  x:\n    type: search\n    degraded-abov: 1s\n", []Problem{
			{"health-checks.x.degraded-abov", 12, "unknown key (did you mean degraded-above?)"},
		}},
		{"key of another type", "health-checks:\n  x:\n    type: search\n    degraded-age: 1s\n    monitor-dn: cn=m\n", []Problem{
			{"health-checks.x.degraded-age", 12, "does not apply to search checks (it is a key of replication-backlog checks)"},
			{"health-checks.x.monitor-dn", 13, "does not apply to search checks (it is a key of admin-alert checks)"},
		}},
		{"base-dn of an alert check", "health-checks:\n  x:\n    type: admin-alert\n    base-dn: cn=x\n", []Problem{
			{"health-checks.x.base-dn", 12, "does not apply to admin-alert checks (it is a key of search and replication-backlog checks)"},
		}},
		{"bad name", "health-checks:\n  a b:\n    type: search\n", []Problem{
			{`health-checks["a b"]`, 10, `invalid health check name "a b" (use letters, digits, '.', '_' and '-')`},
		}},
		{"search syntax", "health-checks:\n  x:\n    type: search\n    base-dn: nodn\n    scope: subtree\n    filter: uid=1\n    mismatch-state: down\n    expected-values: {cn: []}\n", []Problem{
			{"health-checks.x.base-dn", 12, `invalid DN "nodn": DN ended with incomplete type, value pair`},
			{"health-checks.x.scope", 13, `unknown scope "subtree" (must be one of base, one, sub)`},
			{"health-checks.x.filter", 14, `invalid filter "uid=1": LDAP Result Code 201 "Filter Compile Error": ldap: filter does not start with an '('`},
			{"health-checks.x.mismatch-state", 15, `unknown state "down" (must be one of degraded, unavailable)`},
			{"health-checks.x.expected-values.cn", 16, "list at least one value"},
		}},
		{"hysteresis inverted", "health-checks:\n  x:\n    type: search\n    degraded-above: 1s\n    available-below: 2s\n    unavailable-above: 500ms\n    degraded-below: 1s\n", []Problem{
			{"health-checks.x.degraded-above", 12, "must be below unavailable-above (500ms)"},
			{"health-checks.x.available-below", 13, "must not be above degraded-above (1s)"},
			{"health-checks.x.degraded-below", 15, "must not be above unavailable-above (500ms)"},
		}},
		{"leaving without entering", "health-checks:\n  x:\n    type: search\n    available-below: 2s\n", []Problem{
			{"health-checks.x.available-below", 12, "needs degraded-above"},
		}},
		{"backlog without thresholds", "health-checks:\n  x:\n    type: replication-backlog\n", []Problem{
			{"health-checks.x", 10, "set at least one of degraded-age, unavailable-age, degraded-count or unavailable-count"},
		}},
		{"backlog counts", "health-checks:\n  x:\n    type: replication-backlog\n    degraded-count: -1\n    unavailable-count: 5\n    available-count: 9\n", []Problem{
			{"health-checks.x.degraded-count", 12, "must not be negative (got -1)"},
		}},
		{"monitor keys need source monitor", "health-checks:\n  x:\n    type: replication-backlog\n    degraded-age: 1s\n    count-attribute: n\n", []Problem{
			{"health-checks.x.count-attribute", 13, "applies only with source: monitor"},
		}},
		{"bad source", "health-checks:\n  x:\n    type: replication-backlog\n    source: syncrepl\n    degraded-age: 1s\n", []Problem{
			{"health-checks.x.source", 12, `unknown source "syncrepl" (must be one of csn, monitor)`},
		}},
		{"busyness", "health-checks:\n  x:\n    type: busyness\n    degraded-queue: 5\n    degraded-percent-busy: 150\n", []Problem{
			{"health-checks.x.degraded-queue", 12, "needs server-monitor (openldap, 389ds, pingdirectory or auto)"},
			{"health-checks.x.degraded-percent-busy", 13, "needs server-monitor (openldap, 389ds, pingdirectory or auto)"},
			{"health-checks.x.degraded-percent-busy", 13, "must be between 0 and 100 (got 150)"},
		}},
		{"bad server monitor", "health-checks:\n  x:\n    type: busyness\n    degraded-outstanding: 5\n    server-monitor: slapd\n", []Problem{
			{"health-checks.x.server-monitor", 13, `unknown server monitor "slapd" (must be one of none, openldap, pingdirectory, 389ds, auto)`},
		}},
		{"busyness without thresholds", "health-checks:\n  x:\n    type: busyness\n", []Problem{
			{"health-checks.x", 10, "set at least one threshold (e.g. degraded-outstanding or degraded-response-time)"},
		}},
		{"alert DNs", "health-checks:\n  x:\n    type: admin-alert\n    monitor-dn: monitor\n", []Problem{
			{"health-checks.x.monitor-dn", 12, `invalid DN "monitor": DN ended with incomplete type, value pair`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProblems(t, minimal+tt.src, tt.want)
		})
	}
}

func TestServerHealthProblems(t *testing.T) {
	src := `listen: [{address: ':1389'}]
servers:
  - name: ds1
    address: a:389
    health-checks: [respons-time, response-time, response-time, other]
    health-check-frequency: 1ms
service-account: {bind-dn: 'cn=x', password: p}
health-checks:
  response-time: {type: search}
`
	checkProblems(t, src, []Problem{
		{"servers[0].health-checks[0]", 5, `unknown health check "respons-time" (did you mean response-time?)`},
		{"servers[0].health-checks[2]", 5, `health check "response-time" listed twice`},
		{"servers[0].health-checks[3]", 5, `unknown health check "other" (defined: response-time)`},
		{"servers[0].health-check-frequency", 6, "must be at least 10ms (got 1ms)"},
	})
	none := `listen: [{address: ':1389'}]
servers: [{name: ds1, address: 'a:389', health-checks: [x]}]
service-account: {bind-dn: 'cn=x', password: p}
`
	checkProblems(t, none, []Problem{
		{"servers[0].health-checks[0]", 2, `unknown health check "x" (no health-checks are defined)`},
	})
}
