package health

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

func TestBusynessOutstanding(t *testing.T) {
	b := NewBusyness("busy", BusynessConfig{Outstanding: Levels{DegradedAbove: 2, AvailableBelow: 1, UnavailableAbove: 4}})
	r := newRig(t, []Check{b})
	srv := r.reg.Snapshot().Servers[0].Server
	var ends []func()
	steps := []struct {
		outstanding int
		want        backend.State
	}{{0, A}, {3, D}, {2, D}, {5, U}, {3, D}, {0, A}}
	for i, s := range steps {
		for len(ends) < s.outstanding {
			ends = append(ends, srv.Begin())
		}
		for len(ends) > s.outstanding {
			ends[len(ends)-1]()
			ends = ends[:len(ends)-1]
		}
		if h := r.check(t, 0); h.State != s.want {
			t.Errorf("step %d, %d outstanding: %s (%s), want %s", i, s.outstanding, h.State, h.Reason, s.want)
		}
	}
}

func TestBusynessResponseTime(t *testing.T) {
	b := NewBusyness("busy", BusynessConfig{ResponseTime: DurationLevels(5*time.Millisecond, 0, time.Hour, 0)})
	r := newRig(t, []Check{b})
	srv := r.reg.Snapshot().Servers[0].Server
	for range 3 { // operations that take 10ms each
		end := srv.Begin()
		time.Sleep(10 * time.Millisecond)
		end()
	}
	h := r.check(t, 0)
	// Each operation took at least 10ms (more on a loaded machine): past 5ms.
	if h.State != D || !strings.HasPrefix(h.Reason, "mean response time ") {
		t.Errorf("after 10ms operations: %s (%s), want degraded for the mean response time", h.State, h.Reason)
	}
	// Traffic moved away: with no operation since, the server is not held down.
	if h := r.check(t, 0); h.State != A {
		t.Errorf("no operation since: %s (%s), want available", h.State, h.Reason)
	}
}

func TestBusynessServerMonitor(t *testing.T) {
	monitors := map[string]func(*ldap.SearchRequest) (*ldap.SearchResult, error){
		MonitorOpenLDAP: func(req *ldap.SearchRequest) (*ldap.SearchResult, error) {
			if req.BaseDN == "cn=Operations,cn=Monitor" {
				return &ldap.SearchResult{Entries: []*ldap.Entry{ldap.NewEntry(req.BaseDN, map[string][]string{
					"monitorOpInitiated": {"1041"}, "monitorOpCompleted": {"1000"}})}}, nil
			}
			info := map[string]string{"Max": "16", "Active": "15", "Pending": "30"}
			var es []*ldap.Entry
			for cn, v := range info {
				es = append(es, ldap.NewEntry("cn="+cn+","+req.BaseDN, map[string][]string{"cn": {cn}, "monitoredInfo": {v}}))
			}
			return &ldap.SearchResult{Entries: es}, nil
		},
		MonitorPingDirectory: entries("cn=Work Queue,cn=monitor", map[string][]string{
			"current-queue-size": {"30"}, "num-busy-worker-threads": {"11"}, "recent-worker-thread-percent-busy": {"88"}}),
		Monitor389DS: entries("cn=monitor", map[string][]string{
			"threads": {"45"}, "opsinitiated": {"1041"}, "opscompleted": {"1000"}}),
	}
	for name, answer := range monitors {
		t.Run(name, func(t *testing.T) {
			queue := NewBusyness("q", BusynessConfig{ServerMonitor: name, Queue: Levels{DegradedAbove: 10, UnavailableAbove: 40}})
			busy := NewBusyness("b", BusynessConfig{ServerMonitor: name, PercentBusy: Levels{DegradedAbove: 80, UnavailableAbove: 95}})
			r := newRig(t, []Check{queue}, []Check{busy})
			for _, d := range r.dirs {
				d.set(0, answer)
			}
			if h := r.check(t, 0); h.State != D || h.Reason != "server operations in progress 40 above 10" {
				t.Errorf("queue: %s (%s)", h.State, h.Reason)
			}
			want := map[string]string{MonitorOpenLDAP: "worker threads busy 88% above 80%", MonitorPingDirectory: "worker threads busy 88% above 80%",
				Monitor389DS: "worker threads busy 89% above 80%"}[name]
			if h := r.check(t, 1); h.State != D || h.Reason != want {
				t.Errorf("busy: %s (%s), want %q", h.State, h.Reason, want)
			}
		})
	}
}

// TestBusynessSlapdMonitor reads a real slapd's cn=Monitor.
func TestBusynessSlapdMonitor(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 1})
	b := NewBusyness("busy", BusynessConfig{ServerMonitor: MonitorOpenLDAP,
		Queue: Levels{DegradedAbove: 100}, PercentBusy: Levels{DegradedAbove: 99}})
	_, reg := startChecker(t, cluster.Replicas[0].Addr, slapdtest.ServiceDN, slapdtest.ServicePassword, time.Hour, b)
	waitFor(t, 10*time.Second, "a first check", func() bool { return stateOf(reg).Check == "busy" })
	h := stateOf(reg)
	if h.State != A || !strings.HasPrefix(h.Reason, "server operations in progress ") && !strings.HasPrefix(h.Reason, "worker threads busy ") {
		t.Errorf("idle slapd: %+v", h)
	}
	t.Logf("idle slapd: %s", h.Reason)
}

// TestBusynessMonitorUnreadable: a server that answers but whose monitor
// cannot be read (another directory's, or no rights) is degraded with the
// reason, never silently available.
func TestBusynessMonitorUnreadable(t *testing.T) {
	for _, monitor := range []string{MonitorOpenLDAP, Monitor389DS, MonitorAuto} {
		t.Run(monitor, func(t *testing.T) {
			b := NewBusyness("b", BusynessConfig{ServerMonitor: monitor, Queue: Levels{DegradedAbove: 10}})
			r := newRig(t, []Check{b})
			r.dirs[0].set(0, func(req *ldap.SearchRequest) (*ldap.SearchResult, error) {
				return nil, ldap.NewError(ldap.LDAPResultNoSuchObject, errors.New("no such object"))
			})
			if h := r.check(t, 0); h.State != D || h.Score != 2 || !strings.HasPrefix(h.Reason, "busyness unknown: ") {
				t.Errorf("unreadable monitor: %+v, want degraded, score 2, busyness unknown", h)
			}
		})
	}
}
