// Package app assembles a running ldapmux from a configuration: backend
// pools, health checks, routing, the proxy and the client listeners.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/frontend"
	"github.com/ldapmux/ldapmux/internal/health"
	"github.com/ldapmux/ldapmux/internal/proxy"
	"github.com/ldapmux/ldapmux/internal/route"
)

// App is one running proxy.
type App struct {
	cfg       *config.Config
	log       *slog.Logger
	servers   []*backend.Server
	registry  *backend.Registry
	checker   *health.Checker
	proxy     *proxy.Proxy
	affinity  *route.AffinityTable // outlives routers rebuilt on reload
	frontend  *frontend.Server
	listeners []net.Listener

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds the proxy described by cfg without opening anything yet.
func New(cfg *config.Config, log *slog.Logger) (*App, error) {
	a := &App{cfg: cfg, log: log}
	a.servers = make([]*backend.Server, len(cfg.Servers))
	for i, s := range cfg.Servers {
		a.servers[i] = &backend.Server{Name: s.Name, Address: s.Address, Location: s.Location, Weight: s.Weight}
	}
	a.registry = backend.NewRegistry(a.servers, nil)
	for _, s := range a.servers {
		backend.NewPool(s, a.poolConfig())
	}
	a.checker = a.newChecker()
	router, err := a.newRouter()
	if err != nil {
		return nil, err
	}
	pc := proxy.Config{OperationTimeout: cfg.Pool.OperationTimeout.D(), ConnectTimeout: cfg.Pool.ConnectTimeout.D()}
	a.proxy = proxy.New(pc, a.registry, router, a.checker, nil, log)
	fc := frontend.Config{MaxPDU: int(cfg.Limits.MaxPDUSize), MaxClients: cfg.Limits.MaxClientConnections}
	a.frontend = frontend.NewServer(fc, a.proxy, log)
	return a, nil
}

func (a *App) poolConfig() backend.PoolConfig {
	p := a.cfg.Pool
	return backend.PoolConfig{
		Conns: p.ConnectionsPerServer, BindConns: p.BindConnectionsPerServer,
		MaxAge: p.MaxConnectionAge.D(), IdleCheck: p.IdleCheckInterval.D(),
		ConnectTimeout: p.ConnectTimeout.D(), OperationTimeout: p.OperationTimeout.D(),
		BindDN: a.cfg.ServiceAccount.BindDN, Password: a.cfg.ServiceAccount.Password.Reveal(),
		MaxPDU: int(a.cfg.Limits.MaxPDUSize),
	}
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
	ctx, a.cancel = context.WithCancel(ctx)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.checker.Run(ctx)
	}()
	for _, ln := range a.listeners {
		a.log.Info("listening", "address", ln.Addr().String())
		go a.frontend.Serve(ln)
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
func (a *App) Servers() []*backend.Server { return a.servers }

// Checker is the health checker.
func (a *App) Checker() *health.Checker { return a.checker }

// Shutdown drains: in-flight operations get until ctx ends, then clients
// receive a Notice of Disconnection and every connection is closed.
func (a *App) Shutdown(ctx context.Context) {
	a.frontend.Shutdown(ctx)
	if a.cancel != nil {
		a.cancel()
	}
	a.wg.Wait()
	for _, s := range a.servers {
		s.Pool().Close()
	}
}
