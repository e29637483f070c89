package frontend

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/proxy"
)

// Monitor answers requests for a subtree ldapmux serves itself (cn=monitor).
type Monitor interface {
	// Answer replies to msg from a client bound as bindDN through send and
	// returns the result code sent; answered false lets msg be forwarded.
	Answer(msg ldapwire.Message, bindDN string, send func(frame []byte)) (code int, answered bool)
}

// observed holds the frontend's counters and its cn=monitor handler.
type observed struct {
	rejected, received, sent atomic.Int64
	monitor                  atomic.Pointer[Monitor]
}

// Stats are the frontend's client counters.
type Stats struct {
	Current, Accepted, Rejected int64 // client connections
	Inflight                    int64 // operations being forwarded
	Received, Sent              int64 // LDAP message bytes
}

// Stats returns the client counters.
func (s *Server) Stats() Stats {
	return Stats{
		Current: s.clients.Load(), Accepted: int64(s.nextID.Load()), Rejected: s.obs.rejected.Load(),
		Inflight: s.inflight.Load(), Received: s.obs.received.Load(), Sent: s.obs.sent.Load(),
	}
}

// SetMonitor makes m answer the requests it claims; nil forwards them all.
func (s *Server) SetMonitor(m Monitor) {
	if m == nil {
		s.obs.monitor.Store(nil)
		return
	}
	s.obs.monitor.Store(&m)
}

// RegisterMetrics registers the client metrics with reg.
func (s *Server) RegisterMetrics(reg prometheus.Registerer) {
	gauge := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	count := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	reg.MustRegister(
		gauge("ldapmux_client_connections", "Open client connections.", s.clients.Load),
		count("ldapmux_client_connections_accepted_total", "Client connections accepted.", func() int64 { return int64(s.nextID.Load()) }),
		count("ldapmux_client_connections_rejected_total", "Client connections turned away by a connection limit.", s.obs.rejected.Load),
		gauge("ldapmux_client_operations_in_flight", "Client operations being forwarded.", s.inflight.Load),
		count("ldapmux_client_received_bytes_total", "LDAP message bytes received from clients.", s.obs.received.Load),
		count("ldapmux_client_sent_bytes_total", "LDAP message bytes sent to clients.", s.obs.sent.Load),
	)
}

// monitor lets the cn=monitor handler answer msg; it reports whether it did.
func (s *Session) monitor(msg ldapwire.Message) bool {
	m := s.srv.obs.monitor.Load()
	if m == nil {
		return false
	}
	code, ok := (*m).Answer(msg, s.ident.Load().DN, s.Send)
	if ok {
		s.observeLocal(msg, code)
	}
	return ok
}

// observeLocal reports an operation the frontend answered itself to the
// proxy's observers (access log, metrics).
func (s *Session) observeLocal(msg ldapwire.Message, code int) {
	req := &proxy.Request{Msg: msg}
	s.describe(req)
	s.srv.proxy.Observe(req, proxy.Outcome{Code: code})
}
