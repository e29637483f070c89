package app

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/health"
	"github.com/ldapmux/ldapmux/internal/replpos"
	"github.com/ldapmux/ldapmux/internal/route"
)

// positionReadTimeout bounds one read of a server's position made for
// affinity until replicated (a read waits at most max-wait anyway).
const positionReadTimeout = 2 * time.Second

// positions returns the tracker of the servers' replication positions,
// made once: the replication-backlog checks report to it and affinity
// until replicated reads it.
func (a *App) positions() *replpos.Tracker {
	if a.positionTracker == nil {
		a.positionTracker = replpos.NewTracker(a.readPosition, positionReadTimeout)
	}
	return a.positionTracker
}

// readPosition reads the replication position of the server in snapshot
// slot server (contextCSN, or the replica update vector of a 389
// Directory Server), of the suffix its replication-backlog check reads
// (base-dn), or its first naming context.
func (a *App) readPosition(ctx context.Context, server int) (replpos.Vector, error) {
	snap := a.registry.Snapshot()
	if server >= len(snap.Servers) {
		return nil, context.Canceled
	}
	srv := snap.Servers[server].Server
	base, _ := a.positionBases.Load(srv.Name)
	b, _ := base.(string)
	return replpos.ReadPosition(ctx, srv, b)
}

// notePositionBases remembers, per server, the base DN its replication
// backlog check reads its position from.
func (a *App) notePositionBases(cfg *config.Config) {
	for i, s := range cfg.Servers {
		for _, name := range cfg.ChecksOf(i) {
			hc := cfg.HealthChecks[name]
			if b, ok := hc.Settings.(*config.BacklogCheck); ok && b.BaseDN != "" && b.Source != health.SourceMonitor {
				a.positionBases.Store(s.Name, b.BaseDN)
			}
		}
	}
}

// observePositions makes the replication views of the checks report to
// the position tracker.
func (a *App) observePositions(shared map[string]any) {
	for _, s := range shared {
		if v, ok := s.(*health.ReplicationView); ok {
			v.Observe(a.positions().Report)
		}
	}
}

// newAffinityTable makes the affinity table kept across reloads, with the
// positions and the metrics of affinity until replicated.
func (a *App) newAffinityTable() *route.AffinityTable {
	t := route.NewAffinityTable(a.cfg.Affinity.MaxEntries)
	t.Positions = a.positions()
	a.obs.reg.MustRegister(&replicatedCollector{table: t, tracker: a.positions(), names: a.slotName})
	return t
}

// slotName is the name of the server in a snapshot slot.
func (a *App) slotName(slot int) string {
	snap := a.registry.Snapshot()
	if slot < len(snap.Servers) {
		return snap.Servers[slot].Name
	}
	return ""
}

// replicatedCollector exposes what affinity until replicated did and how
// old the known replication positions are.
type replicatedCollector struct {
	table   *route.AffinityTable
	tracker *replpos.Tracker
	names   func(int) string
}

var (
	rywReads = prometheus.NewDesc("ldapmux_read_your_writes_reads_total",
		"Reads of clients with writes not yet on every server (affinity until replicated), by what happened: waited (for fresher replication positions), writer (sent to the server that took the write: no other had it), elsewhere (sent to another server that had it), refused (the writer is unusable and nobody else had it), lost (the writer was unusable past lost-write-timeout: the write was given up and the read placed as anyone's).",
		[]string{"placement"}, nil)
	rywFreed = prometheus.NewDesc("ldapmux_read_your_writes_clients_freed_total",
		"Clients whose writes every candidate server had applied, freed to use any server.", nil, nil)
	rywPositionAge = prometheus.NewDesc("ldapmux_replication_position_age_seconds",
		"Age of the newest replication position (contextCSN, or replica update vector on 389 Directory Server) known of each server.", []string{"server"}, nil)
	rywPositionReads = prometheus.NewDesc("ldapmux_replication_position_reads_total",
		"Reads of a server's replication position made to place reads after writes, by result.", []string{"result"}, nil)
)

// Describe implements prometheus.Collector.
func (c *replicatedCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{rywReads, rywFreed, rywPositionAge, rywPositionReads} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *replicatedCollector) Collect(ch chan<- prometheus.Metric) {
	s := &c.table.Stats
	for _, r := range []struct {
		name string
		n    int64
	}{{"waited", s.Waited.Load()}, {"writer", s.ToWriter.Load()}, {"elsewhere", s.Elsewhere.Load()}, {"refused", s.Refused.Load()}, {"lost", s.Lost.Load()}} {
		ch <- prometheus.MustNewConstMetric(rywReads, prometheus.CounterValue, float64(r.n), r.name)
	}
	ch <- prometheus.MustNewConstMetric(rywFreed, prometheus.CounterValue, float64(s.Replicated.Load()))
	for server, age := range c.tracker.Ages(time.Now()) {
		if name := c.names(server); name != "" {
			ch <- prometheus.MustNewConstMetric(rywPositionAge, prometheus.GaugeValue, age.Seconds(), name)
		}
	}
	started, failed := c.tracker.Reads()
	ch <- prometheus.MustNewConstMetric(rywPositionReads, prometheus.CounterValue, float64(started-failed), "success")
	ch <- prometheus.MustNewConstMetric(rywPositionReads, prometheus.CounterValue, float64(failed), "failure")
}
