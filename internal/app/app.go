// Package app assembles a running ldapmux from a configuration: backend
// pools, health checks, routing, the proxy and the client listeners.
package app

import (
	"context"
	"fmt"
	"github.com/ldapmux/ldapmux/internal/evloop"
	"log/slog"
	"net"
	"sync"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/frontend"
	"github.com/ldapmux/ldapmux/internal/health"
	"github.com/ldapmux/ldapmux/internal/proxy"
	"github.com/ldapmux/ldapmux/internal/replpos"
	"github.com/ldapmux/ldapmux/internal/route"
)

// App is one running proxy.
type App struct {
	cfg      *config.Config
	log      *slog.Logger
	loops    *evloop.Group // where plain connections wait (restart only)
	servers  []*backend.Server
	registry *backend.Registry
	checker  *health.Checker
	proxy    *proxy.Proxy
	affinity *route.AffinityTable // outlives routers rebuilt on reload
	// positionTracker and positionBases serve affinity until replicated
	// (replicated.go); made once.
	positionTracker *replpos.Tracker
	positionBases   sync.Map // server name → base DN of its contextCSN
	frontend        *frontend.Server
	listeners       []net.Listener
	// listenerConfs secure each listener (security.go).
	listenerConfs []*frontend.Listener

	cancel context.CancelFunc
	wg     sync.WaitGroup

	obs *observability // metrics, access log, status, admin listener (observe.go)
	rl  reloadState    // live reload (reload.go)
}

// New builds the proxy described by cfg without opening anything yet.
func New(cfg *config.Config, log *slog.Logger) (*App, error) {
	a := &App{cfg: cfg, log: log, loops: evloop.Shared(cfg.EventLoopCount())}
	a.initObservability()
	a.servers = make([]*backend.Server, len(cfg.Servers))
	for i, s := range cfg.Servers {
		a.servers[i] = &backend.Server{Name: s.Name, Address: s.Address, Location: s.Location, Weight: s.Weight,
			Identity: serverIdentity(cfg, s), Loops: a.loops}
	}
	a.registry = backend.NewRegistry(a.servers, nil)
	a.registry.OnChange = a.stateChanged
	if err := a.setupSecurity(); err != nil {
		return nil, err
	}
	for _, s := range a.servers {
		backend.NewPool(s, a.poolConfig())
	}
	a.checker = a.newChecker()
	router, err := a.newRouter()
	if err != nil {
		return nil, err
	}
	a.proxy = proxy.New(proxyConfig(cfg), a.registry, router, a.relay(), a.observer(), log)
	a.frontend = frontend.NewServer(frontendConfig(cfg), a.loops, a.proxy, log)
	if err := a.finishObservability(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *App) poolConfig() backend.PoolConfig {
	p := a.cfg.Pool
	return backend.PoolConfig{
		Conns: p.ConnectionsPerServer, MaxConns: p.MaxConnectionsPerServer, GrowAt: p.GrowAtOperationsPerConnection,
		BindConns: p.BindConnectionsPerServer, MaxBindConns: p.MaxBindConnectionsPerServer,
		MaxAge: p.MaxConnectionAge.D(), IdleCheck: p.IdleCheckInterval.D(),
		ConnectTimeout: p.ConnectTimeout.D(), OperationTimeout: p.OperationTimeout.D(),
		BindDN: a.cfg.ServiceAccount.BindDN, Password: a.cfg.ServiceAccount.Password.Reveal(),
		MaxPDU: int(a.cfg.Limits.MaxPDUSize), MaxPerConn: a.cfg.Limits.MaxOperationsPerServerConnection,
		Leases: p.LeasedConnectionsPerServer, MaxBound: boundConnections(p),
	}
}

// boundConnections is pool.bound-connections-per-server, 0 when unset
// (only configurations that skipped the defaults).
func boundConnections(p config.Pool) int {
	if p.BoundConnectionsPerServer == nil {
		return 0
	}
	return *p.BoundConnectionsPerServer
}

// Start opens the listeners and starts health checks and serving.
func (a *App) Start(ctx context.Context) error {
	for _, l := range a.cfg.Listen {
		ln, err := net.Listen("tcp", l.Address)
		if err != nil {
			a.closeListeners()
			return fmt.Errorf("listen on %s: %w", l.Address, err)
		}
		a.listeners = append(a.listeners, ln)
	}
	if err := a.listenAdmin(); err != nil {
		a.closeListeners()
		return err
	}
	ctx, a.cancel = context.WithCancel(ctx)
	a.rl.ctx = ctx
	a.startChecker(a.checker)
	a.startObservability(ctx)
	for i, ln := range a.listeners {
		a.log.Info("listening", "address", ln.Addr().String(), "ldaps", a.listenerConfs[i].LDAPS, "starttls", a.listenerConfs[i].StartTLS)
		go a.frontend.ServeListener(ln, a.listenerConfs[i])
	}
	return nil
}

func (a *App) closeListeners() {
	for _, ln := range a.listeners {
		ln.Close()
	}
}

// Addrs are the listeners' actual addresses (useful with port 0).
func (a *App) Addrs() []string {
	out := make([]string, len(a.listeners))
	for i, ln := range a.listeners {
		out[i] = ln.Addr().String()
	}
	return out
}

// Registry exposes server health, for status displays and tests.
func (a *App) Registry() *backend.Registry { return a.registry }

// Servers are the backend servers in configured order.
func (a *App) Servers() []*backend.Server {
	a.rl.mu.RLock()
	defer a.rl.mu.RUnlock()
	return a.servers
}

// Checker is the health checker.
func (a *App) Checker() *health.Checker {
	a.rl.mu.RLock()
	defer a.rl.mu.RUnlock()
	return a.checker
}

// Shutdown drains: in-flight operations get until ctx ends, then clients
// receive a Notice of Disconnection and every connection is closed.
func (a *App) Shutdown(ctx context.Context) {
	a.beginShutdown()
	a.frontend.Shutdown(ctx)
	if a.cancel != nil {
		a.cancel()
	}
	a.wg.Wait()
	for _, s := range a.servers {
		s.Pool().Close()
	}
	a.endShutdown()
}

// proxyConfig is the forwarding part of cfg.
func proxyConfig(cfg *config.Config) proxy.Config {
	return proxy.Config{OperationTimeout: cfg.Pool.OperationTimeout.D(), ConnectTimeout: cfg.Pool.ConnectTimeout.D(),
		MaxPerServer: int64(cfg.Limits.MaxOperationsPerServer), BindTimeout: cfg.Limits.BindTimeout.D(),
		SearchTimeLimit: cfg.Pool.SearchTimeLimit.D(), LeaseIdle: cfg.Pool.LeaseIdleTimeout.D()}
}

// frontendConfig is the client-side part of cfg.
func frontendConfig(cfg *config.Config) frontend.Config {
	return frontend.Config{MaxPDU: int(cfg.Limits.MaxPDUSize), MaxClients: cfg.Limits.MaxClientConnections,
		MaxClientBuffer: int(cfg.Limits.MaxClientBuffer), WriteTimeout: cfg.Limits.WriteTimeout.D(), Limits: frontendLimits(cfg)}
}

// serverIdentity is how clients' identities reach server sc.
func serverIdentity(cfg *config.Config, sc config.Server) backend.IdentitySettings {
	set := backend.IdentitySettings{ProxyCheckDN: cfg.ServiceAccount.ProxyCheckDN}
	switch sc.IdentityMode {
	case config.IdentityProxied:
		set.Mode = backend.ModeProxied
	case config.IdentityClientBind:
		set.Mode = backend.ModeClientBind
	}
	if sc.ServerType != config.ServerTypeAuto {
		set.Type = sc.ServerType
	}
	return set
}
