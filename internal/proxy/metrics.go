package proxy

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// Metrics counts operations by server, operation type and result, and
// placements by algorithm. It is an Observer. Labels are server and
// algorithm names from the configuration, fixed operation names and result
// code names: never a DN.
type Metrics struct {
	operations *prometheus.CounterVec   // operation, result
	forwarded  *prometheus.CounterVec   // server, operation
	completed  *prometheus.CounterVec   // server, operation, result
	failed     *prometheus.CounterVec   // server, operation
	latency    *prometheus.HistogramVec // server, operation
	selections *prometheus.CounterVec   // algorithm, server
	failovers  *prometheus.CounterVec   // algorithm
	affinity   *prometheus.CounterVec   // algorithm

	servers    sync.Map // name → *ServerTally
	algorithms sync.Map // name → *AlgorithmTally
}

// ServerTally counts one server's operations since the process started.
type ServerTally struct {
	Forwarded, Completed, Failed atomic.Int64
}

// AlgorithmTally counts one algorithm's placements.
type AlgorithmTally struct {
	Selections, Failovers, Affinity atomic.Int64
}

// LatencyBuckets are response-time histogram bounds in seconds.
var LatencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// NewMetrics creates the operation metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		operations: counter("ldapmux_operations_total", "Client operations by type and the result code the client got (including those ldapmux answered itself).", "operation", "result"),
		forwarded:  counter("ldapmux_server_operations_forwarded_total", "Operations sent to a server (every attempt), by type.", "server", "operation"),
		completed:  counter("ldapmux_server_operations_completed_total", "Operations a server answered, by type and result code.", "server", "operation", "result"),
		failed:     counter("ldapmux_server_operations_failed_total", "Attempts that failed on a server (not sent, connection lost, timed out, taken off a server that stopped answering), by type.", "server", "operation"),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ldapmux_server_response_time_seconds", Buckets: LatencyBuckets,
			Help: "Time from the client's request to the final response of the server that answered, retries included.",
		}, []string{"server", "operation"}),
		selections: counter("ldapmux_algorithm_selections_total", "Operations placed by an algorithm (named after its route), by the server that answered.", "algorithm", "server"),
		failovers:  counter("ldapmux_algorithm_failovers_total", "Operations answered by another server than the algorithm's first choice.", "algorithm"),
		affinity:   counter("ldapmux_algorithm_affinity_total", "Operations whose server was chosen by affinity.", "algorithm"),
	}
	reg.MustRegister(m.operations, m.forwarded, m.completed, m.failed, m.latency, m.selections, m.failovers, m.affinity)
	return m
}

func counter(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

// Forwarded implements Observer.
func (m *Metrics) Forwarded(req *Request, out Outcome) {
	op := ldapwire.OperationName(req.Msg.OpTag)
	m.operations.WithLabelValues(op, ldapwire.ResultName(out.Code)).Inc()
	for _, s := range out.Failed {
		m.forwarded.WithLabelValues(s, op).Inc()
		m.failed.WithLabelValues(s, op).Inc()
		t := m.Server(s)
		t.Forwarded.Add(1)
		t.Failed.Add(1)
	}
	if s := out.answeredBy(); s != "" {
		m.answered(s, op, out)
	}
}

// answered counts an operation server s answered.
func (m *Metrics) answered(s, op string, out Outcome) {
	m.forwarded.WithLabelValues(s, op).Inc()
	m.completed.WithLabelValues(s, op, ldapwire.ResultName(out.Code)).Inc()
	m.latency.WithLabelValues(s, op).Observe(out.Elapsed.Seconds())
	t := m.Server(s)
	t.Forwarded.Add(1)
	t.Completed.Add(1)
	alg, byAffinity := strings.CutSuffix(out.Algorithm, "/affinity")
	if alg == "" {
		return
	}
	m.selections.WithLabelValues(alg, s).Inc()
	a := m.Algorithm(alg)
	a.Selections.Add(1)
	if out.Failover {
		m.failovers.WithLabelValues(alg).Inc()
		a.Failovers.Add(1)
	}
	if byAffinity {
		m.affinity.WithLabelValues(alg).Inc()
		a.Affinity.Add(1)
	}
}

// Server returns the tally of the named server.
func (m *Metrics) Server(name string) *ServerTally {
	if t, ok := m.servers.Load(name); ok {
		return t.(*ServerTally)
	}
	t, _ := m.servers.LoadOrStore(name, new(ServerTally))
	return t.(*ServerTally)
}

// Algorithm returns the tally of the named algorithm.
func (m *Metrics) Algorithm(name string) *AlgorithmTally {
	if t, ok := m.algorithms.Load(name); ok {
		return t.(*AlgorithmTally)
	}
	t, _ := m.algorithms.LoadOrStore(name, new(AlgorithmTally))
	return t.(*AlgorithmTally)
}

// Forget drops the series of a server that left the configuration.
func (m *Metrics) Forget(server string) {
	l := prometheus.Labels{"server": server}
	for _, v := range []*prometheus.MetricVec{m.forwarded.MetricVec, m.completed.MetricVec, m.failed.MetricVec, m.latency.MetricVec, m.selections.MetricVec} {
		v.DeletePartialMatch(l)
	}
	m.servers.Delete(server)
}

// forwardedOperations are the operation names a server can be sent.
var forwardedOperations = func() []string {
	var names []string
	for _, tag := range []byte{ldapwire.OpBindRequest, ldapwire.OpSearchRequest, ldapwire.OpModifyRequest, ldapwire.OpAddRequest,
		ldapwire.OpDelRequest, ldapwire.OpModifyDNRequest, ldapwire.OpCompareRequest, ldapwire.OpExtendedRequest} {
		names = append(names, ldapwire.OperationName(tag))
	}
	return names
}()

// InitServer creates at 0 the forwarded and failed series of a server for
// every operation type, so that rates and alerts over them exist before the
// first failure.
func (m *Metrics) InitServer(server string) {
	for _, op := range forwardedOperations {
		m.forwarded.WithLabelValues(server, op)
		m.failed.WithLabelValues(server, op)
	}
}

// InitAlgorithm creates at 0 the series of an algorithm: its failovers,
// affinity placements and selections of each of its servers.
func (m *Metrics) InitAlgorithm(name string, servers []string) {
	m.failovers.WithLabelValues(name)
	m.affinity.WithLabelValues(name)
	for _, s := range servers {
		m.selections.WithLabelValues(name, s)
	}
}

// ForgetAlgorithm drops the series of an algorithm no route uses any more.
func (m *Metrics) ForgetAlgorithm(name string) {
	l := prometheus.Labels{"algorithm": name}
	for _, v := range []*prometheus.MetricVec{m.selections.MetricVec, m.failovers.MetricVec, m.affinity.MetricVec} {
		v.DeletePartialMatch(l)
	}
	m.algorithms.Delete(name)
}

// ForgetSelections drops the selections of server by an algorithm that no
// longer places operations on it.
func (m *Metrics) ForgetSelections(algorithm, server string) {
	m.selections.DeleteLabelValues(algorithm, server)
}
