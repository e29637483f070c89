package health

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

func TestParseCSN(t *testing.T) {
	c, err := ParseCSN("20261120223050.372164Z#00000a#002#000001")
	want := time.Date(2026, 11, 20, 22, 30, 50, 372164000, time.UTC)
	if err != nil || !c.Time.Equal(want) || c.Count != 10 || c.SID != 2 || c.Mod != 1 {
		t.Fatalf("got %+v, %v", c, err)
	}
	if c, err := ParseCSN("20261120223050Z#000000#001#000000"); err != nil || c.SID != 1 {
		t.Errorf("CSN without fraction: %+v, %v", c, err)
	}
	for _, bad := range []string{"", "20261120223050.372164Z#000000#001", "yesterday#0#1#0", "20261120223050Z#xyz#1#0"} {
		if _, err := ParseCSN(bad); err == nil {
			t.Errorf("ParseCSN(%q) accepted", bad)
		}
	}
	a, _ := ParseCSN("20261120223050.000001Z#000002#001#000000")
	b, _ := ParseCSN("20261120223050.000001Z#000001#001#000005")
	if !a.After(b) || b.After(a) || a.After(a) {
		t.Error("After orders by time, then count, then mod")
	}
}

// csnAt builds the CSN of serverID sid at offset d from base.
func csnAt(base time.Time, d time.Duration, sid int) CSN {
	return CSN{Time: base.Add(d), SID: sid}
}

// TestViewLaggingReplica: replica 2 stops receiving while replica 0 takes
// writes every 100ms; its age follows the oldest change it misses.
func TestViewLaggingReplica(t *testing.T) {
	clock := newFakeClock()
	base := clock.Now()
	v := NewReplicationView(3)
	var last time.Duration
	for step := range 50 { // 5s of writes, all replicas polled every 100ms
		last = time.Duration(step) * 100 * time.Millisecond
		clock.Advance(100 * time.Millisecond)
		now := clock.Now()
		v.Report(0, []CSN{csnAt(base, last, 1)}, now)
		v.Report(1, []CSN{csnAt(base, last, 1)}, now)
		stale := min(last, time.Second) // replica 2 stopped after 1s
		v.Report(2, []CSN{csnAt(base, stale, 1)}, now)
	}
	if lag := v.Backlog(0, clock.Now()); lag.Behind {
		t.Errorf("replica 0 is up to date, got %+v", lag)
	}
	lag := v.Backlog(2, clock.Now())
	if !lag.Behind || lag.SID != 1 || lag.Age < 3800*time.Millisecond || lag.Age > 4*time.Second {
		t.Errorf("replica 2 stopped 4s of changes ago: %+v", lag)
	}
	// It catches up: no backlog.
	v.Report(2, []CSN{csnAt(base, last, 1)}, clock.Now())
	if lag := v.Backlog(2, clock.Now()); lag.Behind || lag.Age != 0 {
		t.Errorf("caught up: %+v", lag)
	}
	if n := len(v.seen[1]); n != 1 {
		t.Errorf("%d CSNs remembered once everybody has them, want 1", n)
	}
}

// TestViewQuietDirectory: a change made after a long quiet period is not an
// old backlog for a replica that has not got it yet, but it ages if the
// replica never gets it.
func TestViewQuietDirectory(t *testing.T) {
	clock := newFakeClock()
	base := clock.Now().Add(-24 * time.Hour)
	v := NewReplicationView(2)
	old := csnAt(base, 0, 1)
	v.Report(0, []CSN{old}, clock.Now())
	v.Report(1, []CSN{old}, clock.Now())
	clock.Advance(time.Minute)
	fresh := CSN{Time: clock.Now(), SID: 1}
	v.Report(0, []CSN{fresh}, clock.Now())
	clock.Advance(100 * time.Millisecond)
	if lag := v.Backlog(1, clock.Now()); !lag.Behind || lag.Age > time.Second {
		t.Errorf("one change behind by 100ms after a quiet day: %+v, want a small age", lag)
	}
	clock.Advance(10 * time.Second)
	v.Report(1, []CSN{old}, clock.Now())
	if lag := v.Backlog(1, clock.Now()); lag.Age < 10*time.Second {
		t.Errorf("still missing that change 10s later: %+v, want it to age", lag)
	}
}

// TestViewMissingServerID: a replica that has no change of a serverID at all
// misses all of them.
func TestViewMissingServerID(t *testing.T) {
	clock := newFakeClock()
	base := clock.Now()
	v := NewReplicationView(2)
	v.Report(0, []CSN{csnAt(base, 0, 1), csnAt(base, 0, 2)}, clock.Now())
	v.Report(1, []CSN{csnAt(base, 0, 1)}, clock.Now())
	clock.Advance(3 * time.Second)
	v.Report(0, []CSN{csnAt(base, 0, 1), csnAt(base, 3*time.Second, 2)}, clock.Now())
	lag := v.Backlog(1, clock.Now())
	if !lag.Behind || lag.SID != 2 || lag.Age != 3*time.Second {
		t.Errorf("got %+v, want 3s behind on serverID 2", lag)
	}
}

// TestViewIgnoresDeadServers: changes only a dead server has do not make
// the live ones lag (that would take every server out).
func TestViewIgnoresDeadServers(t *testing.T) {
	clock := newFakeClock()
	base := clock.Now()
	v := NewReplicationView(2)
	v.Report(0, []CSN{csnAt(base, 5*time.Second, 1)}, clock.Now())
	v.Report(1, []CSN{csnAt(base, 0, 1)}, clock.Now())
	clock.Advance(time.Minute)
	if lag := v.Backlog(1, clock.Now()); !lag.Behind {
		t.Fatal("replica 1 should lag while replica 0 is live")
	}
	v.Lost(0)
	if lag := v.Backlog(1, clock.Now()); lag.Behind {
		t.Errorf("replica 0 is unreachable, replica 1 should not lag behind it: %+v", lag)
	}
}

func TestViewFirstRound(t *testing.T) {
	v := NewReplicationView(2)
	v.Report(0, nil, time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	v.WaitFirstRound(ctx) // returns at the deadline
	if ctx.Err() == nil {
		t.Fatal("WaitFirstRound returned before server 1 reported")
	}
	v.Lost(1)
	v.WaitFirstRound(context.Background()) // returns at once
}

// csnDirectory answers contextCSN searches with the values it is given.
type csnDirectory struct {
	mu   sync.Mutex
	csns []string
}

func (d *csnDirectory) set(csns ...string) {
	d.mu.Lock()
	d.csns = csns
	d.mu.Unlock()
}

func (d *csnDirectory) answer(req *ldap.SearchRequest) (*ldap.SearchResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if req.BaseDN == "" {
		return &ldap.SearchResult{Entries: []*ldap.Entry{ldap.NewEntry("", map[string][]string{"namingContexts": {"dc=example,dc=com"}})}}, nil
	}
	if req.BaseDN != "dc=example,dc=com" {
		return nil, ldap.NewError(ldap.LDAPResultNoSuchObject, errors.New("no such object"))
	}
	return &ldap.SearchResult{Entries: []*ldap.Entry{ldap.NewEntry(req.BaseDN, map[string][]string{"contextCSN": d.csns})}}, nil
}

func formatCSN(t time.Time, sid int) string {
	return fmt.Sprintf("%s#000000#%03x#000000", t.UTC().Format("20060102150405.000000Z"), sid)
}

// TestBacklogCheckFailback: a replica falls behind, becomes degraded then
// unavailable; when it comes back it is available only once its backlog is
// under available-age.
func TestBacklogCheckFailback(t *testing.T) {
	view := NewReplicationView(2)
	cfg := BacklogConfig{Age: DurationLevels(2*time.Second, time.Second, 10*time.Second, 0)}
	r := newRig(t, []Check{NewReplicationBacklog("backlog", cfg, view, 0)}, []Check{NewReplicationBacklog("backlog", cfg, view, 1)})
	dirs := []*csnDirectory{{}, {}}
	for i, d := range dirs {
		r.dirs[i].set(0, d.answer)
	}
	start := r.clock.Now()
	set := func(primary, replica time.Duration) {
		dirs[0].set(formatCSN(start.Add(primary), 1))
		dirs[1].set(formatCSN(start.Add(replica), 1))
	}
	set(0, 0)
	var wg sync.WaitGroup // the first round: each waits for the other
	for i := range 2 {
		wg.Go(func() { r.checker.CheckNow(context.Background(), i) })
	}
	wg.Wait()
	var states []string
	for i := range 40 { // the replica takes writes every 500ms
		r.clock.Advance(500 * time.Millisecond)
		now := time.Duration(i) * 500 * time.Millisecond
		switch {
		case i < 30: // the primary stops replicating at 2s
			set(min(now, 2*time.Second), now)
		case i < 34: // it comes back, catching up: 1.5s behind
			set(now-1500*time.Millisecond, now)
		default: // 500ms behind
			set(now-500*time.Millisecond, now)
		}
		r.check(t, 1)
		if p := r.check(t, 0).State.String(); len(states) == 0 || states[len(states)-1] != p {
			states = append(states, p)
		}
	}
	want := "available degraded unavailable degraded available"
	if got := strings.Join(states, " "); got != want {
		t.Errorf("primary went %s, want %s", got, want)
	}
	h := r.reg.Snapshot().Servers[0].Health
	if h.Check != "backlog" || h.State != A {
		t.Errorf("final: %+v", h)
	}
}

func TestBacklogCheckUnreadable(t *testing.T) {
	view := NewReplicationView(1)
	r := newRig(t, []Check{NewReplicationBacklog("b", BacklogConfig{BaseDN: "dc=other", Age: Levels{DegradedAbove: 1}}, view, 0)})
	r.dirs[0].set(0, (&csnDirectory{}).answer)
	if h := r.check(t, 0); h.State != D || !strings.Contains(h.Reason, "replication state unknown") {
		t.Errorf("unreadable contextCSN: %+v, want degraded", h)
	}
	r.dirs[0].setDown(true)
	if h := r.check(t, 0); h.State != U {
		t.Errorf("unreachable: %+v, want unavailable", h)
	}
}

// TestBacklogMonitorSource reads a PingDirectory-style replica monitor entry.
func TestBacklogMonitorSource(t *testing.T) {
	cfg := BacklogConfig{Source: SourceMonitor, BaseDN: "dc=example,dc=com",
		Count: Levels{DegradedAbove: 100, UnavailableAbove: 10000}, Age: DurationLevels(2*time.Second, 0, 30*time.Second, 0)}
	r := newRig(t, []Check{NewReplicationBacklog("pd", cfg, nil, 0)})
	var mu sync.Mutex
	attrs := map[string][]string{}
	r.dirs[0].set(0, func(req *ldap.SearchRequest) (*ldap.SearchResult, error) {
		if req.BaseDN != "cn=monitor" || req.Filter != DefaultBacklogMonitorFilter {
			return nil, fmt.Errorf("unexpected search %q %q", req.BaseDN, req.Filter)
		}
		mu.Lock()
		defer mu.Unlock()
		return &ldap.SearchResult{Entries: []*ldap.Entry{
			ldap.NewEntry("cn=Replica dc_other,cn=monitor", map[string][]string{"base-dn": {"dc=other"}, "replication-backlog": {"99999"}}),
			ldap.NewEntry("cn=Replica dc_example_dc_com,cn=monitor", attrs),
		}}, nil
	})
	set := func(count string, age time.Duration) backendStateReason {
		mu.Lock()
		attrs = map[string][]string{"base-dn": {"DC=Example, DC=Com"}, "replication-backlog": {count},
			"age-of-oldest-backlog-change": {r.clock.Now().Add(-age).UTC().Format("20060102150405.000Z")}}
		mu.Unlock()
		h := r.check(t, 0)
		return backendStateReason{h.State.String(), h.Reason}
	}
	for _, s := range []struct {
		count string
		age   time.Duration
		want  string
	}{
		{"0", 0, "available"},
		{"150", time.Second, "degraded"},
		{"20000", time.Second, "unavailable"},
		{"5", 3 * time.Second, "degraded"},
		{"5", 40 * time.Second, "unavailable"},
		{"0", 0, "available"},
	} {
		if got := set(s.count, s.age); got.state != s.want {
			t.Errorf("count %s age %s: %s (%s), want %s", s.count, s.age, got.state, got.reason, s.want)
		}
	}
}

type backendStateReason struct{ state, reason string }

// TestBacklogCheckNoContextCSN: an entry without contextCSN (a suffix that
// is not replicated, or not readable by the service account) is degraded
// with score 2, never "0s behind".
func TestBacklogCheckNoContextCSN(t *testing.T) {
	view := NewReplicationView(1)
	r := newRig(t, []Check{NewReplicationBacklog("b", BacklogConfig{Age: Levels{DegradedAbove: 1}}, view, 0)})
	r.dirs[0].set(0, (&csnDirectory{}).answer) // the entry exists, with no value
	if h := r.check(t, 0); h.State != D || h.Score != 2 || !strings.Contains(h.Reason, "no contextCSN") {
		t.Errorf("no contextCSN: %+v, want degraded, score 2, saying so", h)
	}
}

// TestBacklogReportsPositionAsOfReadStart: the position a check reads is
// reported as of when the read began; reported as of when it ended, it
// would pass for a position read after a write the server took while the
// read was under way (read-your-writes would take it for one that has it).
func TestBacklogReportsPositionAsOfReadStart(t *testing.T) {
	view := NewReplicationView(1)
	var at []time.Time
	view.Observe(func(_ int, _ []CSN, when time.Time) { at = append(at, when) })
	r := newRig(t, []Check{NewReplicationBacklog("b", BacklogConfig{BaseDN: "dc=example,dc=com", Age: Levels{DegradedAbove: 60}}, view, 0)})
	dir := &csnDirectory{}
	dir.set(formatCSN(r.clock.Now(), 1))
	r.dirs[0].set(time.Second, dir.answer) // each search takes a second
	began := r.clock.Now()
	r.check(t, 0)
	if len(at) != 1 || !at[0].Equal(began) {
		t.Errorf("reported as of %v, want %v (when the read began; it ended at %v)", at, began, r.clock.Now())
	}
}
