package health

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// series renders the gathered series of name as "label=value,...=N" lines.
func series(t *testing.T, reg *prometheus.Registry, name string) string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				b.WriteString(l.GetName() + "=" + l.GetValue() + ",")
			}
			switch {
			case m.GetCounter() != nil:
				b.WriteString(strconv.FormatFloat(m.GetCounter().GetValue(), 'f', -1, 64))
			case m.GetHistogram() != nil:
				b.WriteString("count " + strconv.FormatUint(m.GetHistogram().GetSampleCount(), 10))
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func TestMetricsCountRunsAndTransitions(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	search := responseTimeCheck()
	r := newRig(t, []Check{m.Instrument("ds1", search)})
	r.reg.OnChange = m.Transition
	r.dirs[0].set(50*time.Millisecond, nil)
	r.check(t, 0)
	r.dirs[0].set(1500*time.Millisecond, nil)
	r.check(t, 0)
	r.check(t, 0)
	runs := series(t, reg, "ldapmux_health_check_runs_total")
	for _, want := range []string{"check=response-time,result=available,server=ds1,1\n", "check=response-time,result=degraded,server=ds1,2\n"} {
		if !strings.Contains(runs, want) {
			t.Errorf("runs lack %q:\n%s", want, runs)
		}
	}
	// Every state's series exists from the start, at 0 until it happens.
	if got := series(t, reg, "ldapmux_health_state_transitions_total"); got != "check=response-time,server=ds1,to=available,0\n"+
		"check=response-time,server=ds1,to=degraded,1\ncheck=response-time,server=ds1,to=unavailable,0\n" {
		t.Errorf("transitions:\n%s", got)
	}
	if got := series(t, reg, "ldapmux_health_check_duration_seconds"); got != "check=response-time,server=ds1,count 3\n" {
		t.Errorf("durations:\n%s", got)
	}
	// The wrapper keeps hysteresis: after a failed operation the search
	// treats the server as unavailable, so 700ms (under degraded-above but
	// not under available-below) does not make it available.
	r.dirs[0].set(400*time.Millisecond, nil)
	if h := r.check(t, 0); h.State != A {
		t.Fatalf("400ms: %s", h.State)
	}
	r.checker.OperationFailed(r.reg.Snapshot().Servers[0].Server, errors.New("connection reset"))
	r.dirs[0].set(700*time.Millisecond, nil)
	if h := r.check(t, 0); h.State != D {
		t.Errorf("700ms after a failed operation: %s, want degraded", h.State)
	}
	m.Forget("ds1")
	if got := series(t, reg, "ldapmux_health_check_runs_total"); got != "" {
		t.Errorf("series left after Forget:\n%s", got)
	}
}
