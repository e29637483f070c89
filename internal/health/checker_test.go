package health

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/backend"
)

func responseTimeCheck() *Search {
	return NewSearch("response-time", SearchConfig{ResponseTime: issueLevels, AllowNoEntries: true, AllowMultipleEntries: true})
}

// TestSearchStateTransitions drives a server's response time with the
// injected clock through the documented 1s / 500ms hysteresis.
func TestSearchStateTransitions(t *testing.T) {
	r := newRig(t, []Check{responseTimeCheck()})
	steps := []struct {
		rt    time.Duration
		state backend.State
	}{
		{50 * time.Millisecond, A},
		{1500 * time.Millisecond, D},
		{700 * time.Millisecond, D}, // stays degraded at 700ms
		{400 * time.Millisecond, A}, // available at 400ms
		{800 * time.Millisecond, A}, // under 1s: stays available
		{6 * time.Second, U},
		{300 * time.Millisecond, A},
	}
	var last backend.State
	for i, s := range steps {
		r.dirs[0].set(s.rt, nil)
		before := r.clock.Now()
		h := r.check(t, 0)
		if h.State != s.state {
			t.Fatalf("step %d (%s): state %s (%s), want %s", i, s.rt, h.State, h.Reason, s.state)
		}
		if h.Check != "response-time" {
			t.Errorf("step %d: decided by %q", i, h.Check)
		}
		if i > 0 && h.State != last && !h.Since.Equal(before.Add(s.rt)) {
			t.Errorf("step %d: since %v, want the injected clock's %v", i, h.Since, before.Add(s.rt))
		}
		last = h.State
	}
	if n := r.changes(); n != 4 {
		t.Errorf("logged %d state changes, want 4 (each once):\n%s", n, r.logs)
	}
	if want := `state=degraded score=5 check=response-time reason="search of the root DSE: response time 1.5s above 1s"`; !strings.Contains(r.logs.String(), want) {
		t.Errorf("log lacks %s:\n%s", want, r.logs)
	}
}

func TestFlappingServerStaysDegraded(t *testing.T) {
	r := newRig(t, []Check{responseTimeCheck()})
	for i := range 40 {
		rt := 900 * time.Millisecond
		if i%2 == 0 {
			rt = 1100 * time.Millisecond
		}
		r.dirs[0].set(rt, nil)
		r.check(t, 0)
	}
	if h := r.reg.Snapshot().Servers[0].Health; h.State != D || r.changes() != 1 {
		t.Errorf("flapping around 1s: state %s after %d changes, want degraded after 1", h.State, r.changes())
	}
}

func TestUnreachableServerIsUnavailable(t *testing.T) {
	alerts := NewAdminAlert("alerts", AlertConfig{})
	r := newRig(t, []Check{responseTimeCheck(), alerts})
	r.dirs[0].setDown(true)
	h := r.check(t, 0)
	if h.State != U || !strings.Contains(h.Reason, "connection refused") {
		t.Fatalf("got %s (%s), want unavailable: connection refused", h.State, h.Reason)
	}
	if n := r.dirs[0].dialCount(); n != 1 {
		t.Errorf("%d dials in one run of two checks, want 1 (the failure is remembered for the run)", n)
	}
	r.dirs[0].setDown(false)
	r.dirs[0].set(100*time.Millisecond, nil)
	if h := r.check(t, 0); h.State != A {
		t.Errorf("back up at 100ms: %s (%s)", h.State, h.Reason)
	}
	r.dirs[0].set(700*time.Millisecond, nil)
	r.dirs[0].setDown(true)
	r.check(t, 0)
	r.dirs[0].setDown(false)
	if h := r.check(t, 0); h.State != D {
		t.Errorf("back up from unavailable at 700ms: %s (%s), want degraded until under 500ms", h.State, h.Reason)
	}
}

func TestSearchEntriesJudged(t *testing.T) {
	many := func(*ldap.SearchRequest) (*ldap.SearchResult, error) {
		return &ldap.SearchResult{Entries: []*ldap.Entry{ldap.NewEntry("cn=a", nil), ldap.NewEntry("cn=b", nil)}}, nil
	}
	none := func(*ldap.SearchRequest) (*ldap.SearchResult, error) {
		return nil, ldap.NewError(ldap.LDAPResultNoSuchObject, errors.New("no such object"))
	}
	tests := []struct {
		name   string
		cfg    SearchConfig
		answer func(*ldap.SearchRequest) (*ldap.SearchResult, error)
		state  backend.State
		reason string
	}{
		{"no entry refused", SearchConfig{AllowMultipleEntries: true}, none, U, "no entry returned"},
		{"no entry allowed", SearchConfig{AllowNoEntries: true}, none, A, "response time"},
		{"many refused", SearchConfig{AllowNoEntries: true, MismatchState: D}, many, D, "more than one entry"},
		{"expected value", SearchConfig{ExpectedValues: map[string][]string{"status": {"OK", "fine"}}},
			entries("cn=s", map[string][]string{"status": {"ok"}}), A, "response time"},
		{"unexpected value", SearchConfig{ExpectedValues: map[string][]string{"status": {"ok"}}},
			entries("cn=s", map[string][]string{"status": {"broken"}}), U, `has status ["broken"], expected one of ["ok"]`},
		{"server error", SearchConfig{}, func(*ldap.SearchRequest) (*ldap.SearchResult, error) {
			return nil, ldap.NewError(ldap.LDAPResultBusy, errors.New("busy"))
		}, U, "Busy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, []Check{NewSearch("s", tt.cfg)})
			r.dirs[0].set(time.Millisecond, tt.answer)
			h := r.check(t, 0)
			if h.State != tt.state || !strings.Contains(h.Reason, tt.reason) {
				t.Errorf("got %s (%s), want %s with %q", h.State, h.Reason, tt.state, tt.reason)
			}
		})
	}
}

func TestChecksCombine(t *testing.T) {
	a := &scripted{name: "a", next: Result{State: A, Score: 6, Reason: "fine"}}
	b := &scripted{name: "b", next: Result{State: D, Score: 5, Reason: "slow-ish"}}
	c := &scripted{name: "c", next: Result{State: D, Score: 3, Reason: "behind"}}
	r := newRig(t, []Check{a, b, c})
	h := r.check(t, 0)
	if h.State != D || h.Check != "c" || h.Reason != "behind" || h.Score != 3 {
		t.Errorf("got %+v; want degraded, decided by c, score 3", h)
	}
	a.set(Result{State: A, Score: 2, Reason: "fine"})
	if h := r.check(t, 0); h.Score != 2 || h.Check != "c" {
		t.Errorf("score is the lowest of all checks: got %+v", h)
	}
	a.set(Result{State: U, Score: 1, Reason: "down"})
	if h := r.check(t, 0); h.State != U || h.Check != "a" {
		t.Errorf("worst state wins: got %+v", h)
	}
}

// TestPassiveFailureAndHysteresis: after a failed operation the server is
// unavailable at once and must meet the thresholds for leaving that state.
func TestPassiveFailureAndHysteresis(t *testing.T) {
	r := newRig(t, []Check{responseTimeCheck()})
	srv := r.reg.Snapshot().Servers[0].Server
	r.dirs[0].set(700*time.Millisecond, nil)
	if h := r.check(t, 0); h.State != A {
		t.Fatalf("700ms from available: %s", h.State)
	}
	r.checker.OperationFailed(srv, errors.New("connection reset"))
	if h := r.reg.Snapshot().Servers[0].Health; h.State != U || h.Check != "operation" {
		t.Fatalf("after a failed operation: %+v", h)
	}
	select {
	case <-r.checker.targets[0].trigger:
	default:
		t.Fatal("a failed operation did not ask for a run")
	}
	if h := r.check(t, 0); h.State != D {
		t.Errorf("700ms after a failure: %s (%s), want degraded (not yet below 500ms)", h.State, h.Reason)
	}
	r.dirs[0].set(400*time.Millisecond, nil)
	if h := r.check(t, 0); h.State != A {
		t.Errorf("400ms: %s, want available", h.State)
	}
}

// TestDeclinedOperationDegrades: a server that answers an operation busy or
// unavailable is degraded at once, stays so at its checks for DeclineHold
// after its last such answer, then comes back; one already unavailable
// stays unavailable.
func TestDeclinedOperationDegrades(t *testing.T) {
	r := newRig(t, []Check{DefaultCheck()})
	srv := r.reg.Snapshot().Servers[0].Server
	if h := r.check(t, 0); h.State != A {
		t.Fatalf("before: %+v", h)
	}
	r.checker.OperationDeclined(srv, "answered busy (51): too busy")
	if h := r.reg.Snapshot().Servers[0].Health; h.State != D || h.Check != "declined" || !strings.Contains(h.Reason, "too busy") {
		t.Fatalf("after a declined operation: %+v", h)
	}
	r.clock.Advance(DeclineHold - time.Second)
	if h := r.check(t, 0); h.State != D {
		t.Fatalf("a check within the hold: %+v, want degraded", h)
	}
	r.checker.OperationDeclined(srv, "answered unavailable (52): offline") // the hold starts again
	r.clock.Advance(DeclineHold - time.Second)
	if h := r.check(t, 0); h.State != D || !strings.Contains(h.Reason, "offline") {
		t.Fatalf("a check within the hold of the second decline: %+v, want degraded", h)
	}
	r.clock.Advance(time.Second)
	if h := r.check(t, 0); h.State != A {
		t.Fatalf("a check after the hold: %+v, want available", h)
	}
	r.dirs[0].setDown(true)
	if h := r.check(t, 0); h.State != U {
		t.Fatalf("down: %+v", h)
	}
	r.checker.OperationDeclined(srv, "answered busy (51)")
	if h := r.reg.Snapshot().Servers[0].Health; h.State != U {
		t.Fatalf("a decline made an unavailable server %s", h.State)
	}
}

// TestFailureDuringRunWins: a run that began before an operation failed
// does not overwrite the failure; the run the failure triggered decides.
func TestFailureDuringRunWins(t *testing.T) {
	chk := &scripted{name: "s", next: Result{State: A, Score: 10, Reason: "fine"}}
	r := newRig(t, []Check{chk})
	srv := r.reg.Snapshot().Servers[0].Server
	chk.run = func() { r.checker.OperationFailed(srv, errors.New("timeout")) }
	if h := r.check(t, 0); h.State != U || h.Check != "operation" {
		t.Errorf("got %+v, want the failure to stand", h)
	}
	chk.run = nil
	if h := r.check(t, 0); h.State != A {
		t.Errorf("next run: %+v", h)
	}
}

// TestChecksNeverOverlap runs the real loop fast while operations fail and
// alerts arrive concurrently.
func TestChecksNeverOverlap(t *testing.T) {
	var inside, maxInside atomic.Int32
	chk := &scripted{name: "s", next: Result{State: A, Score: 10, Reason: "fine"}}
	chk.run = func() {
		n := inside.Add(1)
		if n > maxInside.Load() {
			maxInside.Store(n)
		}
		time.Sleep(time.Millisecond)
		inside.Add(-1)
	}
	r := newRig(t, []Check{chk})
	tgt := r.checker.targets[0]
	tgt.Frequency = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.checker.Run(ctx); close(done) }()
	srv := r.reg.Snapshot().Servers[0].Server
	for tgt.Runs() < 50 {
		r.checker.OperationFailed(srv, errors.New("x"))
		tgt.Trigger()
		time.Sleep(100 * time.Microsecond)
	}
	cancel()
	<-done
	if tgt.Overlaps() != 0 || maxInside.Load() != 1 {
		t.Errorf("overlaps %d, max concurrent runs %d after %d runs", tgt.Overlaps(), maxInside.Load(), tgt.Runs())
	}
}

// TestRefusedBindIsUnavailable: a bind refused with a result code is still
// a server that cannot be used, for every check type.
func TestRefusedBindIsUnavailable(t *testing.T) {
	refused := func(context.Context) (Client, error) {
		return nil, ldap.NewError(ldap.LDAPResultInvalidCredentials, errors.New("invalid credentials"))
	}
	view := NewReplicationView(1)
	for _, chk := range []Check{
		DefaultCheck(),
		NewAdminAlert("a", AlertConfig{}),
		NewReplicationBacklog("b", BacklogConfig{Age: Levels{DegradedAbove: 1}}, view, 0),
		NewBusyness("c", BusynessConfig{ServerMonitor: MonitorOpenLDAP, Queue: Levels{DegradedAbove: 1}}),
	} {
		r := newRig(t, []Check{chk})
		r.checker.targets[0].Dial = refused
		if h := r.check(t, 0); h.State != U {
			t.Errorf("%s: %s (%s), want unavailable", chk.Name(), h.State, h.Reason)
		}
	}
}
