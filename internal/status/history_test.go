package status

import (
	"testing"
	"time"
)

func TestTransitionsRing(t *testing.T) {
	tr := NewTransitions(3)
	if len(tr.List()) != 0 {
		t.Fatal("not empty")
	}
	for i := range 5 {
		tr.Add(Transition{Score: i})
	}
	got := tr.List()
	if len(got) != 3 || got[0].Score != 4 || got[2].Score != 2 {
		t.Fatalf("kept %+v, want scores 4, 3, 2", got)
	}
}

func TestHistoryRates(t *testing.T) {
	h := NewHistory(2)
	t0 := time.Unix(1000, 0)
	h.Record(t0, map[string]Load{"ds1": {Completed: 10, Busy: 10 * time.Millisecond}})
	if _, ok := h.Latest(); ok {
		t.Fatal("the first record only sets the baseline")
	}
	h.Record(t0.Add(2*time.Second), map[string]Load{"ds1": {Completed: 210, Busy: 410 * time.Millisecond}, "ds2": {Completed: 4, Busy: 8 * time.Millisecond}})
	s, _ := h.Latest()
	if r := s.Servers["ds1"]; r.OpsPerSec != 100 || r.LatencyMs != 2 {
		t.Errorf("ds1 %+v, want 100 ops/s at 2ms", r)
	}
	if r := s.Servers["ds2"]; r.OpsPerSec != 2 || r.LatencyMs != 2 {
		t.Errorf("ds2 (new) %+v, want 2 ops/s at 2ms", r)
	}
	h.Record(t0.Add(3*time.Second), map[string]Load{"ds1": {Completed: 5, Busy: 5 * time.Millisecond}})
	h.Record(t0.Add(4*time.Second), map[string]Load{"ds1": {Completed: 5, Busy: 5 * time.Millisecond}})
	samples := h.Samples()
	if len(samples) != 2 || samples[0].Servers["ds1"].OpsPerSec != 5 || samples[1].Servers["ds1"].OpsPerSec != 0 {
		t.Errorf("samples %+v: want the last two, a restarted counter counted from zero", samples)
	}
}
