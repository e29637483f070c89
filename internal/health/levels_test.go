package health

import (
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
)

const (
	A = backend.Available
	D = backend.Degraded
	U = backend.Unavailable
)

// issueLevels is the documented example: degraded above 1s, available again
// only below 500ms, unavailable above 5s.
var issueLevels = DurationLevels(time.Second, 500*time.Millisecond, 5*time.Second, 0)

func TestClassifyHysteresis(t *testing.T) {
	steps := []struct {
		rt   time.Duration
		want backend.State
	}{
		{100 * time.Millisecond, A},
		{700 * time.Millisecond, A},  // below degraded-above: stays available
		{1200 * time.Millisecond, D}, // above 1s: degraded
		{700 * time.Millisecond, D},  // 700ms: stays degraded
		{500 * time.Millisecond, D},  // not below 500ms yet
		{400 * time.Millisecond, A},  // 400ms: available again
		{6 * time.Second, U},
		{2 * time.Second, D}, // below degraded-below (default unavailable-above)
		{300 * time.Millisecond, A},
	}
	st := A
	for i, s := range steps {
		st = issueLevels.Classify(st, s.rt.Seconds())
		if st != s.want {
			t.Fatalf("step %d (%s): got %s, want %s", i, s.rt, st, s.want)
		}
	}
}

func TestClassifyFlappingNearThreshold(t *testing.T) {
	st, flips := A, 0
	for i := range 100 {
		rt := 950 * time.Millisecond
		if i%2 == 1 {
			rt = 1050 * time.Millisecond // oscillates around degraded-above
		}
		next := issueLevels.Classify(st, rt.Seconds())
		if next != st {
			flips++
		}
		st = next
	}
	if flips != 1 || st != D {
		t.Errorf("a server flapping around 1s changed state %d times, ending %s; want once, to degraded", flips, st)
	}
}

func TestClassifyWithoutThresholds(t *testing.T) {
	var none Levels
	for _, prev := range []backend.State{A, D, U} {
		if got := none.Classify(prev, 1e9); got != A {
			t.Errorf("no thresholds, prev %s: got %s", prev, got)
		}
	}
	onlyUnavailable := Levels{UnavailableAbove: 10}
	if got := onlyUnavailable.Classify(U, 5); got != A {
		t.Errorf("unavailable-above only, back under it: got %s, want available", got)
	}
}

func TestScore(t *testing.T) {
	tests := []struct {
		st   backend.State
		v    float64
		want int
	}{
		{A, 0, 10}, {A, 0.5, 8}, {A, 1, 6}, {A, 0.7, 7},
		{D, 1, 5}, {D, 0.7, 5}, {D, 3, 3}, {D, 5, 2}, {D, 9, 2},
		{U, 6, 1},
	}
	for _, tt := range tests {
		if got := issueLevels.Score(tt.st, tt.v); got != tt.want {
			t.Errorf("Score(%s, %v) = %d, want %d", tt.st, tt.v, got, tt.want)
		}
	}
	if got := (Levels{}).Score(A, 123); got != 10 {
		t.Errorf("no thresholds: score %d, want 10", got)
	}
}

func TestWorst(t *testing.T) {
	r := worst(
		Result{State: A, Score: 7, Reason: "a"},
		Result{State: D, Score: 5, Reason: "d5"},
		Result{State: D, Score: 3, Reason: "d3"},
		Result{State: A, Score: 2, Reason: "a2"},
	)
	if r.State != D || r.Reason != "d3" || r.Score != 2 {
		t.Errorf("got %+v, want degraded by d3 with the lowest score 2", r)
	}
}

func TestMeterExplains(t *testing.T) {
	m := meter{name: "response time", levels: issueLevels, format: seconds}
	for _, s := range []struct {
		v    float64
		want string
	}{
		{1.2, "response time 1.2s above 1s"},
		{0.7, "response time 700ms not yet below 500ms"},
		{0.4, "response time 400ms"},
		{7, "response time 7s above 5s"},
	} {
		if got := m.observe(s.v).Reason; got != s.want {
			t.Errorf("observe(%v): %q, want %q", s.v, got, s.want)
		}
	}
	m.demote()
	if got := m.observe(5).Reason; got != "response time 5s not yet below 5s after being unavailable" {
		t.Errorf("after demote: %q", got)
	}
}
