package health

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/backend"
)

// Server monitors the busyness check can read.
const (
	MonitorNone          = "none"
	MonitorOpenLDAP      = "openldap"      // cn=Operations,cn=Monitor and cn=Threads,cn=Monitor
	MonitorPingDirectory = "pingdirectory" // cn=Work Queue,cn=monitor
	Monitor389DS         = "389ds"         // cn=monitor of 389 Directory Server
	MonitorAuto          = "auto"          // by the server type found at connect
)

// BusynessConfig configures a busyness check. Unset levels are not judged.
type BusynessConfig struct {
	// Outstanding: operations the proxy has in flight to the server.
	Outstanding Levels
	// ResponseTime: mean time, in seconds, of the proxy's operations on
	// the server that ended since the previous run. With none, it is 0.
	ResponseTime Levels
	// ServerMonitor is MonitorNone (default), MonitorOpenLDAP or
	// MonitorPingDirectory.
	ServerMonitor string
	// Queue: operations the server has accepted and not finished, from
	// all its clients (queued or running), from its monitor.
	Queue Levels
	// PercentBusy: share of the server's worker threads at work, 0-100,
	// from its monitor.
	PercentBusy Levels
}

// Busyness makes a server degraded or unavailable when it is too busy, as
// the proxy sees it and as the server's monitor data says.
type Busyness struct {
	name string
	cfg  BusynessConfig

	outstanding, responseTime, queue, busy meter
	lastOps, lastNanos                     int64 // Server.Completed at the previous run
}

// NewBusyness builds the busyness check of one server.
func NewBusyness(name string, cfg BusynessConfig) *Busyness {
	if cfg.ServerMonitor == "" {
		cfg.ServerMonitor = MonitorNone
	}
	return &Busyness{
		name: name, cfg: cfg,
		outstanding:  meter{name: "outstanding operations", levels: cfg.Outstanding, format: count},
		responseTime: meter{name: "mean response time", levels: cfg.ResponseTime, format: seconds},
		queue:        meter{name: "server operations in progress", levels: cfg.Queue, format: count},
		busy:         meter{name: "worker threads busy", levels: cfg.PercentBusy, format: percent},
	}
}

// Name implements Check.
func (b *Busyness) Name() string { return b.name }

func (b *Busyness) demote() {
	for _, m := range []*meter{&b.outstanding, &b.responseTime, &b.queue, &b.busy} {
		m.demote()
	}
}

// Run implements Check.
func (b *Busyness) Run(ctx context.Context, t *Target) Result {
	rs := b.proxyView(t.Server)
	if b.cfg.ServerMonitor == MonitorNone {
		return notBusy(rs)
	}
	load, err := b.readMonitor(ctx, t)
	if err != nil && !isResultError(err) && !errors.Is(err, errNoState) {
		return Result{State: backend.Unavailable, Score: 1, Reason: err.Error()}
	}
	if err != nil { // the server answers but its load cannot be known: never silently available
		return worst(append(rs, Result{State: backend.Degraded, Score: 2, Reason: "busyness unknown: " + err.Error()})...)
	}
	rs = judge(rs, &b.queue, load.queue)
	rs = judge(rs, &b.busy, load.percentBusy)
	return notBusy(rs)
}

// notBusy combines the verdicts; with none to give, the server is not busy.
func notBusy(rs []Result) Result {
	if len(rs) == 0 {
		return Result{State: backend.Available, Score: 10, Reason: "not busy"}
	}
	return worst(rs...)
}

// proxyView judges the proxy's own view of the server.
func (b *Busyness) proxyView(s *backend.Server) []Result {
	ops, total := s.Completed()
	n, nanos := ops-b.lastOps, int64(total)-b.lastNanos
	b.lastOps, b.lastNanos = ops, int64(total)
	mean := 0.0
	if n > 0 {
		mean = float64(nanos) / float64(n) / 1e9
	}
	rs := judge(nil, &b.outstanding, float64(s.Outstanding()))
	return judge(rs, &b.responseTime, mean)
}

// judge appends m's verdict on v when m has thresholds.
func judge(rs []Result, m *meter, v float64) []Result {
	if !m.levels.Set() {
		return rs
	}
	return append(rs, m.observe(v))
}

// serverLoad is what a server's monitor says of its load.
type serverLoad struct {
	queue, percentBusy float64
}

// readMonitor reads the server's load from its monitor entries.
func (b *Busyness) readMonitor(ctx context.Context, t *Target) (serverLoad, error) {
	monitor := b.cfg.ServerMonitor
	if monitor == MonitorAuto {
		switch typ := serverType(t); typ {
		case backend.TypeOpenLDAP:
			monitor = MonitorOpenLDAP
		case backend.Type389DS:
			monitor = Monitor389DS
		default:
			return serverLoad{}, fmt.Errorf("%w: no monitor known for server type %q (set server-monitor)", errNoState, typ)
		}
	}
	switch monitor {
	case MonitorPingDirectory:
		return readWorkQueue(ctx, t)
	case Monitor389DS:
		return read389Load(ctx, t)
	}
	return readOpenLDAPLoad(ctx, t)
}

// read389Load reads 389 Directory Server's cn=monitor: operations in
// progress (initiated minus completed, less this search) and, as the share
// of busy threads, those operations over the worker threads (at most 100).
func read389Load(ctx context.Context, t *Target) (serverLoad, error) {
	res, err := t.search(ctx, baseSearch("cn=monitor", "threads", "opsinitiated", "opscompleted"))
	if err != nil {
		return serverLoad{}, fmt.Errorf("read cn=monitor: %w", err)
	}
	e := firstEntry(res)
	if e.GetAttributeValue("opsinitiated") == "" {
		return serverLoad{}, fmt.Errorf("%w: cn=monitor has no opsinitiated the service account can read", errNoState)
	}
	inProgress := max(number(e, "opsinitiated")-number(e, "opscompleted")-1, 0)
	load := serverLoad{queue: inProgress}
	if threads := number(e, "threads"); threads > 0 {
		load.percentBusy = min(inProgress*100/threads, 100)
	}
	return load, nil
}

// readOpenLDAPLoad reads operations in progress (initiated minus completed,
// less this search) and the share of busy threads (active over maximum,
// less this search's thread).
func readOpenLDAPLoad(ctx context.Context, t *Target) (serverLoad, error) {
	ops, err := t.search(ctx, baseSearch("cn=Operations,cn=Monitor", "monitorOpInitiated", "monitorOpCompleted"))
	if err != nil {
		return serverLoad{}, fmt.Errorf("read cn=Operations,cn=Monitor: %w", err)
	}
	threads, err := t.search(ctx, ldap.NewSearchRequest("cn=Threads,cn=Monitor", ldap.ScopeSingleLevel, ldap.NeverDerefAliases,
		0, 0, false, "(objectClass=*)", []string{"cn", "monitoredInfo"}, nil))
	if err != nil {
		return serverLoad{}, fmt.Errorf("read cn=Threads,cn=Monitor: %w", err)
	}
	e := firstEntry(ops)
	inProgress := number(e, "monitorOpInitiated") - number(e, "monitorOpCompleted") - 1
	info := map[string]float64{}
	for _, e := range threads.Entries {
		info[strings.ToLower(e.GetAttributeValue("cn"))] = number(e, "monitoredInfo")
	}
	load := serverLoad{queue: max(inProgress, 0)}
	if info["max"] > 0 {
		load.percentBusy = max(info["active"]-1, 0) * 100 / info["max"]
	}
	return load, nil
}

// readWorkQueue reads PingDirectory's work queue monitor entry: queued plus
// busy worker threads (less this search's), and the recent share of busy
// threads.
func readWorkQueue(ctx context.Context, t *Target) (serverLoad, error) {
	res, err := t.search(ctx, baseSearch("cn=Work Queue,cn=monitor",
		"current-queue-size", "num-busy-worker-threads", "recent-worker-thread-percent-busy"))
	if err != nil {
		return serverLoad{}, fmt.Errorf("read cn=Work Queue,cn=monitor: %w", err)
	}
	e := firstEntry(res)
	queued := number(e, "current-queue-size") + max(number(e, "num-busy-worker-threads")-1, 0)
	return serverLoad{queue: queued, percentBusy: number(e, "recent-worker-thread-percent-busy")}, nil
}

// number reads a numeric attribute; missing or malformed values are 0.
func number(e *ldap.Entry, attr string) float64 {
	v, err := strconv.ParseFloat(e.GetAttributeValue(attr), 64)
	if err != nil {
		return 0
	}
	return v
}
