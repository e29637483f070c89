package app

import (
	"reflect"
	"slices"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/buildinfo"
	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/status"
)

// Status reports the proxy's state: for the admin endpoints, `ldapmux
// status` and cn=monitor.
func (a *App) Status() *status.Status {
	cfg := a.config()
	b := buildinfo.Get()
	st := &status.Status{Time: time.Now(), Build: status.Build{Version: b.Version, Revision: b.Revision, GoVersion: b.GoVersion}, Started: a.obs.started, Draining: a.obs.draining.Load(),
		Location: cfg.Location, Listeners: a.Addrs(), Transitions: a.obs.transitions.List(), History: a.obs.history.Samples()}
	st.Ready, st.NotReady = a.Ready()
	f := a.frontend.Stats()
	st.Clients = status.Clients{Current: f.Current, Accepted: f.Accepted, Rejected: f.Rejected, Inflight: f.Inflight,
		Received: f.Received, Sent: f.Sent}
	latest, _ := a.obs.history.Latest()
	views := a.serverViews()
	for _, v := range views {
		st.Servers = append(st.Servers, a.serverStatus(v, latest))
	}
	for _, alg := range a.algorithms() {
		st.Algorithms = append(st.Algorithms, a.algorithmStatus(alg, views))
	}
	a.obs.mu.Lock()
	st.Reload = a.obs.lastReload
	a.obs.mu.Unlock()
	return st
}

func (a *App) serverStatus(v backend.ServerView, latest status.Sample) status.Server {
	t := a.obs.ops.Server(v.Name)
	rate := latest.Servers[v.Name]
	s := status.Server{
		Name: v.Name, Address: v.Address, Location: v.Location, State: v.Health.State.String(), Score: v.Health.Score,
		Reason: v.Health.Reason, Check: v.Health.Check, Since: v.Health.Since, Outstanding: v.Outstanding(),
		Forwarded: t.Forwarded.Load(), Completed: t.Completed.Load(), Failed: t.Failed.Load(),
		OpsPerSec: rate.OpsPerSec, LatencyMs: rate.LatencyMs,
	}
	if caps := v.Capabilities(); caps != nil {
		s.ServerType, s.IdentityMode, s.Vendor = caps.Type, caps.Mode.String(), caps.Vendor
		s.PasswordPolicy = caps.PasswordPolicy
	}
	if p := v.Pool(); p != nil {
		ps := p.Stats()
		s.Pool = status.Pool{OpenOps: ps.OpenOps, OpenAnon: ps.OpenAnon, OpenBound: ps.OpenBound, OpenBinds: ps.OpenBinds, IdleBinds: ps.IdleBinds,
			Leased: ps.Leased, LeasesRefused: ps.LeasesRefused,
			Opened: sum(ps.Opened[:]), Recycled: sum(ps.Recycled[:]), Failed: sum(ps.Failed[:]),
			MaxOps: ps.MaxOps, MaxBinds: ps.MaxBinds, Grown: sum(ps.Grown[:]), Shrunk: sum(ps.Shrunk[:])}
	}
	return s
}

func (a *App) algorithmStatus(alg algorithmInfo, views []backend.ServerView) status.Algorithm {
	t := a.obs.ops.Algorithm(alg.name)
	out := status.Algorithm{Name: alg.name, Type: alg.kind, Servers: alg.servers,
		Selections: t.Selections.Load(), Failovers: t.Failovers.Load(), Affinity: t.Affinity.Load()}
	for _, v := range views {
		if v.Usable() && slices.Contains(alg.servers, v.Name) {
			out.Usable++
		}
	}
	return out
}

// algorithmInfo is an algorithm some route (or the default) may use.
type algorithmInfo struct {
	name, kind string
	servers    []string
}

// algorithms lists the algorithms in use, in route order, the default
// last unless a route without criteria makes it unreachable.
func (a *App) algorithms() []algorithmInfo {
	cfg := a.config()
	var out []algorithmInfo
	seen := map[string]bool{}
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			out = append(out, describeAlgorithm(cfg, name))
		}
	}
	catchAll := false
	for _, r := range cfg.Routes {
		add(r.Algorithm)
		catchAll = catchAll || reflect.DeepEqual(r.Match, config.Match{})
	}
	if !catchAll {
		add(cfg.LoadBalancing.Algorithm)
	}
	return out
}

// describeAlgorithm resolves a route's algorithm name: a named algorithm
// with its servers, or an algorithm type over every server.
func describeAlgorithm(cfg *config.Config, name string) algorithmInfo {
	info := algorithmInfo{name: name, kind: name}
	if named, ok := cfg.Algorithms[name]; ok {
		info.kind, info.servers = named.Type, named.Servers
	}
	if len(info.servers) == 0 {
		for _, s := range cfg.Servers {
			info.servers = append(info.servers, s.Name)
		}
	}
	return info
}

func sum(xs []int64) int64 {
	var t int64
	for _, x := range xs {
		t += x
	}
	return t
}
