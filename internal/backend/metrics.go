package backend

import "github.com/prometheus/client_golang/prometheus"

// Collector exports the health, load and connection pool of the servers
// that Servers returns at each scrape (the configured ones, which a reload
// may change). Labels: server name, connection kind, state.
type Collector struct {
	Servers func() []ServerView
}

var (
	descInfo          = desc("ldapmux_server_info", "A configured server (always 1), with its address and location.", "server", "address", "location")
	descState         = desc("ldapmux_server_state", "1 for the state a server is in, 0 for the others.", "server", "state")
	descScore         = desc("ldapmux_server_score", "Health score of a server, 1 (worst) to 10, ranking servers of the same state.", "server")
	descOutstanding   = desc("ldapmux_server_outstanding_operations", "Operations in flight to a server.", "server")
	descReadsHeld     = desc("ldapmux_server_reads_held_total", "Times a connection leased to one client (sync and paged searches, large requests) stopped reading from a server until that client had read what it was sent: the server then waits for a slow client, as on the client's own connection.", "server")
	descOpen          = desc("ldapmux_pool_open_connections", "Open pooled connections to a server, by kind (operation; anonymous: operation connections never bound, for anonymous clients; bind; leased: lent to one client for paging, VLV or a long-lived search).", "server", "kind")
	descIdle          = desc("ldapmux_pool_idle_connections", "Pooled bind connections waiting for a bind.", "server", "kind")
	descOpened        = desc("ldapmux_pool_connections_opened_total", "Connections opened to a server, by kind (bound: bind connections kept bound as a client).", "server", "kind")
	descRecycled      = desc("ldapmux_pool_connections_recycled_total", "Connections closed because of their age (leased ones: when their lease ended), by kind.", "server", "kind")
	descLeasesRefused = desc("ldapmux_pool_leases_refused_total", "Operations refused busy (51) because every leasable connection to a server was leased (pool.leased-connections-per-server).", "server")
	descTarget        = desc("ldapmux_pool_target_connections", "Pooled connections to a server open or being opened: what the pool is growing to under load, by kind (operation, anonymous, bind).", "server", "kind")
	descMax           = desc("ldapmux_pool_max_connections", "How far a server's pool may grow under load (pool.max-connections-per-server, pool.max-bind-connections-per-server, pool.bound-connections-per-server), by kind.", "server", "kind")
	descMin           = desc("ldapmux_pool_min_connections", "What a server's pool shrinks back to when idle (pool.connections-per-server, pool.bind-connections-per-server), by kind.", "server", "kind")
	descGrown         = desc("ldapmux_pool_connections_grown_total", "Connections opened because the load needed more than the minimum, by kind.", "server", "kind")
	descShrunk        = desc("ldapmux_pool_connections_shrunk_total", "Connections above the minimum closed because they were idle for pool.idle-check-interval, by kind.", "server", "kind")
	descFailed        = desc("ldapmux_pool_connections_failed_total", "Connections that could not be opened or failed an idle probe, by kind.", "server", "kind")
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// Describe implements prometheus.Collector.
func (c Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInfo, descState, descScore, descOutstanding, descReadsHeld, descOpen, descIdle, descOpened, descRecycled, descFailed, descLeasesRefused, descTarget, descMax, descMin, descGrown, descShrunk} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c Collector) Collect(ch chan<- prometheus.Metric) {
	for _, v := range c.Servers() {
		collectServer(ch, v)
		if v.Pool() != nil {
			collectPool(ch, v.Name, v.Pool().Stats())
		}
	}
}

func collectServer(ch chan<- prometheus.Metric, v ServerView) {
	gauge := func(d *prometheus.Desc, x float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, x, labels...)
	}
	gauge(descInfo, 1, v.Name, v.Address, v.Location)
	for _, st := range []State{Available, Degraded, Unavailable} {
		x := 0.0
		if v.Health.State == st {
			x = 1
		}
		gauge(descState, x, v.Name, st.String())
	}
	gauge(descScore, float64(v.Health.Score), v.Name)
	gauge(descOutstanding, float64(v.Outstanding()), v.Name)
	ch <- prometheus.MustNewConstMetric(descReadsHeld, prometheus.CounterValue, float64(v.ReadsHeld()), v.Name)
}

func collectPool(ch chan<- prometheus.Metric, server string, st PoolStats) {
	op, anon, bind := OpConn.String(), AnonConn.String(), BindConn.String()
	ch <- prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(st.OpenOps), server, op)
	ch <- prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(st.OpenAnon), server, anon)
	ch <- prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(st.OpenBinds), server, bind)
	ch <- prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(st.OpenBound), server, BoundConn.String())
	ch <- prometheus.MustNewConstMetric(descIdle, prometheus.GaugeValue, float64(st.IdleBinds), server, bind)
	ch <- prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(st.Leased), server, LeasedConn.String())
	ch <- prometheus.MustNewConstMetric(descLeasesRefused, prometheus.CounterValue, float64(st.LeasesRefused), server)
	gauge := func(d *prometheus.Desc, x int, kind string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(x), server, kind)
	}
	gauge(descTarget, st.OpenOps+st.DialingOps, op)
	gauge(descTarget, st.OpenAnon+st.DialingAnon, anon)
	gauge(descTarget, st.OpenBinds, bind)
	gauge(descMax, st.MaxOps, op)
	gauge(descMax, st.MaxOps, anon)
	gauge(descMax, st.MaxBinds, bind)
	gauge(descMax, st.MaxBound, BoundConn.String())
	gauge(descMin, st.MinOps, op)
	gauge(descMin, st.MinOps, anon)
	gauge(descMin, st.MinBinds, bind)
	for _, k := range []Kind{OpConn, AnonConn, BindConn} {
		ch <- prometheus.MustNewConstMetric(descGrown, prometheus.CounterValue, float64(st.Grown[k]), server, k.String())
		ch <- prometheus.MustNewConstMetric(descShrunk, prometheus.CounterValue, float64(st.Shrunk[k]), server, k.String())
	}
	for _, k := range []Kind{OpConn, AnonConn, BindConn, LeasedConn, BoundConn} {
		ch <- prometheus.MustNewConstMetric(descOpened, prometheus.CounterValue, float64(st.Opened[k]), server, k.String())
		ch <- prometheus.MustNewConstMetric(descRecycled, prometheus.CounterValue, float64(st.Recycled[k]), server, k.String())
		ch <- prometheus.MustNewConstMetric(descFailed, prometheus.CounterValue, float64(st.Failed[k]), server, k.String())
	}
}
