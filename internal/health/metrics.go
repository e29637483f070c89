package health

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ldapmux/ldapmux/internal/backend"
)

// Metrics counts check runs, their durations and state transitions, by
// server and check name (both from the configuration).
type Metrics struct {
	runs        *prometheus.CounterVec   // server, check, result
	durations   *prometheus.HistogramVec // server, check
	transitions *prometheus.CounterVec   // server, check, to
}

// NewMetrics creates the health metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ldapmux_health_check_runs_total", Help: "Health check runs by server, check and the state they found.",
		}, []string{"server", "check", "result"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ldapmux_health_check_duration_seconds", Help: "Time health checks took, by server and check.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"server", "check"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ldapmux_health_state_transitions_total",
			Help: "Server state changes by server, the check that decided them (operation: a failed operation; declined: an operation answered busy or unavailable; reload: a configuration change) and the new state.",
		}, []string{"server", "check", "to"}),
	}
	reg.MustRegister(m.runs, m.durations, m.transitions)
	return m
}

// Transition counts a state change; it fits backend.Registry.OnChange.
func (m *Metrics) Transition(s *backend.Server, _, to backend.Health) {
	m.transitions.WithLabelValues(s.Name, to.Check, to.State.String()).Inc()
}

// Forget drops the series of a server that left the configuration.
func (m *Metrics) Forget(server string) { m.forget(prometheus.Labels{"server": server}) }

// ForgetCheck drops the series of one check of a server (a reload took it
// off that server).
func (m *Metrics) ForgetCheck(server, check string) {
	m.forget(prometheus.Labels{"server": server, "check": check})
}

// forget drops every run, duration and transition series matching l.
func (m *Metrics) forget(l prometheus.Labels) {
	m.runs.DeletePartialMatch(l)
	m.durations.DeletePartialMatch(l)
	m.transitions.DeletePartialMatch(l)
}

// InitTransitions creates at 0 the transition series of a server decided
// by the named check, to every state, so that alerts on them can be
// written before the first transition.
func (m *Metrics) InitTransitions(server, check string) {
	for _, st := range []backend.State{backend.Available, backend.Degraded, backend.Unavailable} {
		m.transitions.WithLabelValues(server, check, st.String())
	}
}

// Instrument wraps check c of the named server so that its runs are
// counted and timed. The wrapper keeps c's hysteresis (demote) and watching.
// The check's run and transition series start at 0.
func (m *Metrics) Instrument(server string, c Check) Check {
	m.InitTransitions(server, c.Name())
	for _, st := range []backend.State{backend.Available, backend.Degraded, backend.Unavailable} {
		m.runs.WithLabelValues(server, c.Name(), st.String())
	}
	return &measured{Check: c, runs: m.runs, dur: m.durations.WithLabelValues(server, c.Name()), server: server}
}

// measured is a Check whose runs are counted and timed.
type measured struct {
	Check
	runs   *prometheus.CounterVec
	dur    prometheus.Observer
	server string
}

// Run implements Check.
func (c *measured) Run(ctx context.Context, t *Target) Result {
	start := time.Now()
	r := c.Check.Run(ctx, t)
	c.dur.Observe(time.Since(start).Seconds())
	c.runs.WithLabelValues(c.server, c.Name(), r.State.String()).Inc()
	return r
}

func (c *measured) demote() {
	if d, ok := c.Check.(demoter); ok {
		d.demote()
	}
}

// Watch runs the wrapped check's watcher, if it has one.
func (c *measured) Watch(ctx context.Context, t *Target) {
	if w, ok := c.Check.(Watcher); ok {
		w.Watch(ctx, t)
	}
}
