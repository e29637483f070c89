package status

import (
	"sync"
	"time"
)

// Transitions keeps the latest state transitions in a ring.
type Transitions struct {
	mu   sync.Mutex // mu guards the fields below
	ring []Transition
	next int
	full bool
}

// NewTransitions keeps the latest n transitions.
func NewTransitions(n int) *Transitions { return &Transitions{ring: make([]Transition, n)} }

// Add records a transition.
func (t *Transitions) Add(tr Transition) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ring[t.next] = tr
	t.next = (t.next + 1) % len(t.ring)
	t.full = t.full || t.next == 0
}

// List returns the kept transitions, newest first.
func (t *Transitions) List() []Transition {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.next
	if t.full {
		n = len(t.ring)
	}
	out := make([]Transition, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, t.ring[(t.next-i+len(t.ring))%len(t.ring)])
	}
	return out
}

// Load is a server's cumulative counters: operations ended and their total
// time in flight.
type Load struct {
	Completed int64
	Busy      time.Duration
}

// History samples servers' throughput and latency at a fixed interval and
// keeps the latest samples.
type History struct {
	size int

	mu      sync.Mutex // mu guards the fields below
	samples []Sample
	last    map[string]Load
	lastAt  time.Time
}

// NewHistory keeps the latest size samples.
func NewHistory(size int) *History { return &History{size: size} }

// Record turns cumulative loads read at now into a sample of the rates
// since the previous call. The first call only sets the baseline.
func (h *History) Record(now time.Time, loads map[string]Load) {
	h.mu.Lock()
	defer h.mu.Unlock()
	prev, at := h.last, h.lastAt
	h.last, h.lastAt = loads, now
	if prev == nil || !now.After(at) {
		return
	}
	s := Sample{Time: now, Servers: make(map[string]ServerRate, len(loads))}
	secs := now.Sub(at).Seconds()
	for name, l := range loads {
		p, ok := prev[name]
		if !ok || l.Completed < p.Completed {
			p = Load{} // new or replaced server: counters restarted
		}
		s.Servers[name] = rate(l, p, secs)
	}
	h.samples = append(h.samples, s)
	if len(h.samples) > h.size {
		h.samples = append(h.samples[:0], h.samples[len(h.samples)-h.size:]...)
	}
}

func rate(now, prev Load, secs float64) ServerRate {
	n := now.Completed - prev.Completed
	r := ServerRate{OpsPerSec: round(float64(n)/secs, 1)}
	if n > 0 {
		r.LatencyMs = round(float64(now.Busy-prev.Busy)/float64(n)/1e6, 3)
	}
	return r
}

func round(x float64, decimals int) float64 {
	p := 1.0
	for range decimals {
		p *= 10
	}
	return float64(int64(x*p+0.5)) / p
}

// Samples returns the kept samples, oldest first.
func (h *History) Samples() []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Sample(nil), h.samples...)
}

// Latest returns the newest sample, if any.
func (h *History) Latest() (Sample, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.samples) == 0 {
		return Sample{}, false
	}
	return h.samples[len(h.samples)-1], true
}
