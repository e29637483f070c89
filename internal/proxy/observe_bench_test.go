package proxy

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// BenchmarkMetricsForwarded is the per-operation cost of the Prometheus
// observer (every forwarded operation goes through it).
func BenchmarkMetricsForwarded(b *testing.B) {
	m := NewMetrics(prometheus.NewRegistry())
	req := &Request{Msg: ldapwire.Message{ID: 7, OpTag: ldapwire.OpSearchRequest}}
	out := Outcome{Server: "ds1", Algorithm: "fewest-operations", Code: 0, Attempts: 1, Elapsed: 300 * time.Microsecond}
	b.ReportAllocs()
	for b.Loop() {
		m.Forwarded(req, out)
	}
}

// BenchmarkAccessLogOff is the access log observer while it is off (the
// default).
func BenchmarkAccessLogOff(b *testing.B) {
	l := NewAccessLog()
	req := &Request{Msg: ldapwire.Message{ID: 7, OpTag: ldapwire.OpSearchRequest}}
	out := Outcome{Server: "ds1", Algorithm: "fewest-operations", Elapsed: 300 * time.Microsecond}
	b.ReportAllocs()
	for b.Loop() {
		l.Forwarded(req, out)
	}
}
