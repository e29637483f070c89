package backend

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestPlaceKeepsIndexes(t *testing.T) {
	ds1, ds2 := &Server{Name: "ds1"}, &Server{Name: "ds2"}
	reg := NewRegistry([]*Server{ds1, ds2}, nil)
	reg.SetHealth(1, Health{State: Degraded, Score: 4, Reason: "slow"})
	ds3 := &Server{Name: "ds3", Index: 2}
	reg.Place(ds3, &Health{State: Unavailable, Score: 1, Reason: "not checked yet"})
	again := &Server{Name: "ds2", Index: 1, Address: "elsewhere:389"}
	reg.Place(again, nil)
	snap := reg.Snapshot()
	if len(snap.Servers) != 3 || snap.Servers[0].Server != ds1 || snap.Servers[1].Server != again || snap.Servers[2].Server != ds3 {
		t.Fatalf("slots %+v", snap.Servers)
	}
	if h := snap.Servers[1].Health; h.State != Degraded || h.Reason != "slow" {
		t.Errorf("replaced server's health %+v, want the slot's", h)
	}
	if h := snap.Servers[2].Health; h.State != Unavailable || h.Since.IsZero() {
		t.Errorf("placed health %+v", h)
	}
	if snap.Version != 3 {
		t.Errorf("version %d", snap.Version)
	}
}

func TestCollector(t *testing.T) {
	s := &Server{Name: "ds1", Address: "a:389", Location: "paris"}
	p := NewPool(s, PoolConfig{Conns: 1, BindConns: 1, ConnectTimeout: time.Second})
	defer p.Close()
	view := ServerView{Server: s, Health: Health{State: Degraded, Score: 5}}
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collector{Servers: func() []ServerView { return []ServerView{view} }})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			lines = append(lines, f.GetName()+"{"+strings.Join(labels, ",")+"} "+strconv.FormatFloat(v, 'f', -1, 64))
		}
	}
	text := strings.Join(lines, "\n")
	for _, want := range []string{
		"ldapmux_server_state{server=ds1,state=degraded} 1", "ldapmux_server_state{server=ds1,state=available} 0",
		"ldapmux_server_score{server=ds1} 5", "ldapmux_server_info{address=a:389,location=paris,server=ds1} 1",
		"ldapmux_pool_open_connections{kind=bind,server=ds1} 0", "ldapmux_pool_connections_opened_total{kind=operation,server=ds1} 0",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %s in\n%s", want, text)
		}
	}
}
