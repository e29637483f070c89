package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/route"
)

func searchReq(id int32) *Request {
	msg, _ := ldapwire.Parse(ldapwire.AppendRootDSEProbe(nil, id))
	return &Request{Msg: msg, Identity: NewIdentity("uid=a,dc=x"), ConnID: 9,
		Route: route.Operation{Tag: msg.OpTag, TargetDN: []byte("dc=x"), ClientIP: netip.MustParseAddr("127.0.0.1")}}
}

// gathered returns the value of the series of name with exactly labels, or -1.
func gathered(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			var got []string
			for _, l := range m.GetLabel() {
				got = append(got, l.GetName(), l.GetValue())
			}
			if strings.Join(got, ",") != strings.Join(labels, ",") {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

func TestMetricsCountByServerAndResult(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	req := searchReq(1)
	for range 3 {
		m.Forwarded(req, Outcome{Server: "ds1", Algorithm: "reads", Code: 0, Attempts: 1, Elapsed: time.Millisecond})
	}
	m.Forwarded(req, Outcome{Server: "ds2", Algorithm: "reads/affinity", Code: 32, Attempts: 2, Failover: true, Failed: []string{"ds1"}})
	m.Forwarded(req, Outcome{Server: "ds2", Algorithm: "reads", Code: 52, Attempts: 2, Failed: []string{"ds1", "ds2"}})
	m.Forwarded(req, Outcome{Code: 0}) // answered by ldapmux itself
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"ldapmux_server_operations_completed_total", []string{"operation", "search", "result", "success", "server", "ds1"}, 3},
		{"ldapmux_server_operations_completed_total", []string{"operation", "search", "result", "noSuchObject", "server", "ds2"}, 1},
		{"ldapmux_server_operations_forwarded_total", []string{"operation", "search", "server", "ds1"}, 5},
		{"ldapmux_server_operations_failed_total", []string{"operation", "search", "server", "ds1"}, 2},
		{"ldapmux_server_operations_failed_total", []string{"operation", "search", "server", "ds2"}, 1},
		{"ldapmux_server_response_time_seconds", []string{"operation", "search", "server", "ds1"}, 3},
		{"ldapmux_operations_total", []string{"operation", "search", "result", "success"}, 4},
		{"ldapmux_operations_total", []string{"operation", "search", "result", "unavailable"}, 1},
		{"ldapmux_algorithm_selections_total", []string{"algorithm", "reads", "server", "ds2"}, 1},
		{"ldapmux_algorithm_failovers_total", []string{"algorithm", "reads"}, 1},
		{"ldapmux_algorithm_affinity_total", []string{"algorithm", "reads"}, 1},
	}
	for _, c := range checks {
		if got := gathered(t, reg, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if s := m.Server("ds2"); s.Completed.Load() != 1 || s.Failed.Load() != 1 || s.Forwarded.Load() != 2 {
		t.Errorf("ds2 tally %d/%d/%d", s.Forwarded.Load(), s.Completed.Load(), s.Failed.Load())
	}
	m.Forget("ds1")
	if got := gathered(t, reg, "ldapmux_server_operations_completed_total", "operation", "search", "result", "success", "server", "ds1"); got != -1 {
		t.Errorf("ds1 series still there after Forget: %v", got)
	}
}

func TestAccessLogLine(t *testing.T) {
	var buf bytes.Buffer
	l := NewAccessLog()
	l.Forwarded(searchReq(1), Outcome{}) // off: nothing
	l.SetHandler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError}))
	l.Forwarded(searchReq(5), Outcome{Server: "ds2", Algorithm: "reads", Code: 0, Attempts: 2, Failover: true,
		Failed: []string{"ds1"}, Elapsed: 1500 * time.Microsecond})
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	want := map[string]any{"msg": "access", "conn": 9.0, "msgid": 5.0, "client": "127.0.0.1", "bind-dn": "uid=a,dc=x",
		"op": "search", "dn": "dc=x", "result": 0.0, "result-name": "success", "elapsed-ms": 1.5, "server": "ds2",
		"algorithm": "reads", "attempts": 2.0, "failover": true, "failed": "ds1"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s = %v, want %v", k, line[k], v)
		}
	}
	l.SetHandler(nil)
	l.Forwarded(searchReq(6), Outcome{})
	if strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("lines after turning off:\n%s", buf.String())
	}
}

// BenchmarkObservers measures what metrics and a disabled access log add
// to every operation.
func BenchmarkObservers(b *testing.B) {
	obs := Observers{NewMetrics(prometheus.NewRegistry()), NewAccessLog()}
	req := searchReq(1)
	out := Outcome{Server: "ds1", Algorithm: "reads", Code: 0, Attempts: 1, Elapsed: time.Millisecond}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			obs.Forwarded(req, out)
		}
	})
}

// BenchmarkAccessLogJSON measures one access line in JSON.
func BenchmarkAccessLogJSON(b *testing.B) {
	l := NewAccessLog()
	l.SetHandler(slog.NewJSONHandler(io.Discard, nil))
	req := searchReq(1)
	out := Outcome{Server: "ds1", Algorithm: "reads", Code: 0, Attempts: 1, Elapsed: time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		l.Forwarded(req, out)
	}
}
