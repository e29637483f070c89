package app

import (
	"context"
	"errors"
	"github.com/ldapmux/ldapmux/internal/evloop"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/health"
	"github.com/ldapmux/ldapmux/internal/route"
)

// drainSettle is how long a server that left the configuration keeps its
// pool after the new routes are in place: a forward that read the previous
// routes a moment earlier may still pick it.
const drainSettle = time.Second

// reloadState is what live reloads need besides the configuration itself.
type reloadState struct {
	reloadMu sync.Mutex   // serialises reloads; Shutdown waits for one in progress
	mu       sync.RWMutex // mu guards App.cfg, App.servers and App.checker, which Reload replaces

	ctx         context.Context // Start's context, parent of each checker's
	stopChecker func()          // stops the running checker and waits for it
	relay       healthRelay     // the proxy's HealthReporter
}

// healthRelay hands passive failures to the current checker, ignoring
// servers that left the configuration or were replaced (their pools are
// draining; a failure there says nothing about the server in their slot).
type healthRelay struct {
	a       *App
	checker atomic.Pointer[health.Checker]
}

// OperationFailed implements proxy.HealthReporter.
func (r *healthRelay) OperationFailed(s *backend.Server, err error) {
	if slices.Contains(r.a.Servers(), s) {
		r.checker.Load().OperationFailed(s, err)
	}
}

// OperationDeclined implements proxy.HealthReporter.
func (r *healthRelay) OperationDeclined(s *backend.Server, reason string) {
	if slices.Contains(r.a.Servers(), s) {
		r.checker.Load().OperationDeclined(s, reason)
	}
}

// startChecker runs c until the next reload or shutdown.
func (a *App) startChecker(c *health.Checker) {
	ctx, cancel := context.WithCancel(a.rl.ctx)
	done := make(chan struct{})
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer close(done)
		c.Run(ctx)
	}()
	a.rl.stopChecker = func() { cancel(); <-done }
}

// SetConfigFile names the file that ReloadFile (on SIGHUP) and POST
// /api/reload read; applied, if not nil, runs after each successful reload
// (serve uses it for the log level).
func (a *App) SetConfigFile(path string, applied func(*config.Config)) {
	a.obs.mu.Lock()
	defer a.obs.mu.Unlock()
	a.obs.configFile, a.obs.applied = path, applied
}

// ReloadFile reads the configuration file and applies it. A file with
// problems is refused, each problem logged, and the running configuration
// stays.
func (a *App) ReloadFile(path string) error {
	a.log.Debug("reloading the configuration", "file", path)
	cfg, err := config.Load(path)
	if err != nil {
		a.refused(err)
		return err
	}
	if err := a.Reload(cfg); err != nil {
		return err
	}
	a.obs.mu.Lock()
	applied := a.obs.applied
	a.obs.mu.Unlock()
	if applied != nil {
		applied(cfg)
	}
	return nil
}

// refused logs and records a configuration that was not applied.
func (a *App) refused(err error) {
	var problems config.Problems
	if errors.As(err, &problems) {
		for _, p := range problems {
			a.log.Error("reload: configuration problem", "problem", p.String())
		}
	}
	a.log.Error("reload refused; the running configuration stays", "err", err)
	a.recordReload(err)
}

// Reload applies a new configuration without dropping clients or failing
// operations in flight: servers are added and removed (a removed or
// reconfigured server's pool closes once its operations end), algorithms,
// routes and affinity settings are rebuilt (the affinity table stays),
// health checks restart, access log and cn=monitor settings change, and
// client limits, bind policy and operation timeouts apply to operations
// that start afterwards. Listen
// and admin addresses and the log format need a restart. On error nothing
// changed.
func (a *App) Reload(cfg *config.Config) error {
	a.rl.reloadMu.Lock()
	defer a.rl.reloadMu.Unlock()
	err := a.reload(cfg)
	if err != nil {
		a.refused(err)
		return err
	}
	a.recordReload(nil)
	return nil
}

func (a *App) reload(cfg *config.Config) error {
	switch {
	case a.rl.ctx == nil:
		return errors.New("app: reload before Start")
	case a.obs.draining.Load():
		return errors.New("app: reload refused: ldapmux is shutting down")
	}
	a.warnRestartOnly(cfg)
	tlsSet, err := loadTLS(cfg)
	if err != nil {
		return err
	}
	p := a.plan(cfg, tlsSet)
	router, err := buildRouter(cfg, p.slots, a.affinity)
	if err != nil {
		p.abort()
		return err
	}
	if err := a.applyObservability(cfg); err != nil {
		p.abort()
		return err
	}
	old, algorithms := a.config(), a.algorithms()
	a.commit(cfg, p, router)
	a.forgetRemovedChecks(old, cfg)
	a.reloadTLS(tlsSet, p)
	a.drainAll(append(p.removed, p.replaced...), cfg.Pool.OperationTimeout.D())
	a.initSeries()
	a.forgetAlgorithmsLater(algorithms, cfg.Pool.OperationTimeout.D())
	changes := configChanges(old, cfg)
	if len(changes) == 0 {
		changes = []string{"none"}
	}
	a.log.Info("configuration reloaded", "changes", changes, "servers", names(p.active), "added", names(p.added()),
		"removed", names(p.removed), "reconfigured", names(p.replaced))
	return nil
}

// commit puts a planned configuration in service: new servers are
// published and checked, then the router changes, then removed servers are
// retired.
func (a *App) commit(cfg *config.Config, p *plan, router *route.Router) {
	a.rl.stopChecker()
	a.install(p)
	checker := (&App{cfg: cfg, log: a.log, registry: a.registry, obs: a.obs}).newChecker()
	a.rl.relay.checker.Store(checker)
	a.checkOnce(checker, p.active)
	a.proxy.SetConfig(proxyConfig(cfg))
	a.frontend.SetConfig(frontendConfig(cfg))
	a.proxy.SetRouter(router)
	a.rl.mu.Lock()
	a.cfg, a.servers, a.checker = cfg, p.active, checker
	a.rl.mu.Unlock()
	a.retire(p.removed)
	a.startChecker(checker)
}

// plan lays out the servers of cfg in registry slots. Indexes never change:
// a kept server keeps its slot and its pool, a reconfigured one gets a new
// Server (and pool) in the same slot, one added back under a former name
// takes that name's slot, a new one gets a new slot.
type plan struct {
	slots    []*backend.Server       // every slot after the reload, by index
	active   []*backend.Server       // configured servers, configuration order
	placed   []placement             // new Server values to publish
	removed  []*backend.Server       // servers that left the configuration
	replaced []*backend.Server       // old values of reconfigured servers
	kept     map[*backend.Server]int // kept server → index in cfg.Servers
	loops    *evloop.Group           // the loops new servers' connections wait in
}

type placement struct {
	s     *backend.Server
	fresh bool // not in service before: unavailable until checked
}

func (a *App) plan(cfg *config.Config, tlsSet *tlsSet) *plan {
	p := &plan{slots: slotServers(a.registry), kept: map[*backend.Server]int{}, loops: a.loops}
	current := a.Servers()
	slotOf := map[string]int{}
	for k, s := range p.slots {
		slotOf[s.Name] = k
	}
	pc := (&App{cfg: cfg}).poolConfig()
	samePool := reflect.DeepEqual(a.poolConfig(), pc)
	for i, sc := range cfg.Servers {
		k, known := slotOf[sc.Name]
		inService := known && slices.Contains(current, p.slots[k])
		switch {
		case inService && samePool && sameServer(a.cfg, sc):
			p.kept[p.slots[k]] = i
		case inService:
			p.replaced = append(p.replaced, p.slots[k])
			p.place(k, sc, serverIdentity(cfg, sc), tlsSet.servers[i], pc, false)
		case known:
			p.place(k, sc, serverIdentity(cfg, sc), tlsSet.servers[i], pc, true)
		default:
			k = len(p.slots)
			p.place(k, sc, serverIdentity(cfg, sc), tlsSet.servers[i], pc, true)
		}
		p.active = append(p.active, p.slots[k])
	}
	for _, s := range current {
		if _, ok := cfg.ServerByName(s.Name); !ok {
			p.removed = append(p.removed, s)
		}
	}
	return p
}

// place makes a new Server with its pool for slot k.
func (p *plan) place(k int, sc config.Server, id backend.IdentitySettings, t *backend.TLS, pc backend.PoolConfig, fresh bool) {
	s := &backend.Server{Index: k, Name: sc.Name, Address: sc.Address, Location: sc.Location, Weight: sc.Weight, Identity: id,
		Loops: p.loops}
	s.SetTLS(t)
	backend.NewPool(s, pc)
	if k == len(p.slots) {
		p.slots = append(p.slots, s)
	} else {
		p.slots[k] = s
	}
	p.placed = append(p.placed, placement{s: s, fresh: fresh})
}

// added are the servers that were not in service before.
func (p *plan) added() []*backend.Server {
	var out []*backend.Server
	for _, pl := range p.placed {
		if pl.fresh {
			out = append(out, pl.s)
		}
	}
	return out
}

// abort closes the pools of servers that will not be used.
func (p *plan) abort() {
	for _, pl := range p.placed {
		pl.s.Pool().Close()
	}
}

// sameServer reports whether sc is configured as before, health-check
// settings aside (those do not touch the pool).
func sameServer(old *config.Config, sc config.Server) bool {
	i, ok := old.ServerByName(sc.Name)
	if !ok {
		return false
	}
	was := old.Servers[i]
	was.ServerHealth, sc.ServerHealth = config.ServerHealth{}, config.ServerHealth{}
	return reflect.DeepEqual(was, sc)
}

// slotServers are the servers of every registry slot, by index.
func slotServers(reg *backend.Registry) []*backend.Server {
	snap := reg.Snapshot()
	out := make([]*backend.Server, len(snap.Servers))
	for i, v := range snap.Servers {
		out[i] = v.Server
	}
	return out
}

// install publishes the new Server values in their slots. Fresh ones are
// unavailable until their first check; reconfigured ones keep the health
// of the server they replace.
func (a *App) install(p *plan) {
	for _, pl := range p.placed {
		var h *backend.Health
		if pl.fresh {
			h = &backend.Health{State: backend.Unavailable, Score: 1, Reason: "added by a reload; not checked yet", Check: reloadCheckName}
		}
		a.registry.Place(pl.s, h)
	}
}

// checkOnce runs every check of the servers once, all at once, so that
// added servers are judged before routes may use them (and the
// replication-backlog checks see every server in their first round).
func (a *App) checkOnce(c *health.Checker, servers []*backend.Server) {
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(func() { c.CheckNow(a.rl.ctx, s.Index) })
	}
	wg.Wait()
}

// retire marks servers that left the configuration unavailable, so that
// routes built before the reload stop choosing them.
func (a *App) retire(servers []*backend.Server) {
	for _, s := range servers {
		a.registry.SetHealth(s.Index, retiredHealth)
	}
}

// reloadTLS gives listeners and kept servers the TLS files just read.
func (a *App) reloadTLS(set *tlsSet, p *plan) {
	for i, lc := range a.listenerConfs {
		if i < len(set.listeners) && lc.TLS != nil && set.listeners[i] != nil {
			lc.TLS.Set(set.listeners[i])
		}
	}
	for s, i := range p.kept {
		s.SetTLS(set.servers[i])
	}
	if a.obs.adminTLS != nil && set.admin != nil {
		a.obs.adminTLS.Set(set.admin)
	}
}

// drainAll closes the pools of servers out of service once their
// operations ended (at most the operation timeout after a short settling
// time), in the background.
func (a *App) drainAll(servers []*backend.Server, timeout time.Duration) {
	for _, s := range servers {
		a.wg.Add(1)
		go a.drain(s, timeout)
	}
}

func (a *App) drain(s *backend.Server, timeout time.Duration) {
	defer a.wg.Done()
	ctx := a.rl.ctx
	settle := time.NewTimer(drainSettle)
	defer settle.Stop()
	select {
	case <-ctx.Done():
	case <-settle.C:
	}
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for s.Outstanding() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		<-tick.C
	}
	s.Pool().Close()
	if _, ok := a.config().ServerByName(s.Name); !ok {
		a.obs.ops.Forget(s.Name)
		a.obs.checks.Forget(s.Name)
	}
	a.log.Info("closed the pool of a server out of service", "server", s.Name, "address", s.Address)
}

// warnRestartOnly logs changes that a reload does not apply.
func (a *App) warnRestartOnly(cfg *config.Config) {
	old := a.config()
	if !reflect.DeepEqual(old.Listen, cfg.Listen) {
		a.log.Warn("reload: listen changed; restart ldapmux to apply (certificate files are reread)")
	}
	if old.Admin.Address != cfg.Admin.Address {
		a.log.Warn("reload: admin.address changed; restart ldapmux to apply")
	}
	if old.Admin.TLS.Enabled() != cfg.Admin.TLS.Enabled() {
		a.log.Warn("reload: admin.tls turned on or off; restart ldapmux to apply (certificate files are reread)")
	}
	if old.Log.Format != cfg.Log.Format {
		a.log.Warn("reload: log.format changed; restart ldapmux to apply")
	}
	if old.EventLoopCount() != cfg.EventLoopCount() {
		a.log.Warn("reload: event-loops changed; restart ldapmux to apply")
	}
	if !reflect.DeepEqual(a.poolConfig(), (&App{cfg: cfg}).poolConfig()) {
		a.log.Info("reload: pool settings changed; every server gets a new pool, the old ones close once their operations end")
	}
}

// recordReload remembers a reload's outcome for the status report and
// metrics.
func (a *App) recordReload(err error) {
	o := a.obs
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lastReload.Time, o.lastReload.OK, o.lastReload.Error = time.Now(), err == nil, ""
	if err != nil {
		o.lastReload.Error = err.Error()
		o.lastReload.Failed++
		o.reloads.WithLabelValues("failure").Inc()
		return
	}
	o.lastReload.Count++
	o.reloads.WithLabelValues("success").Inc()
	o.reloadTime.SetToCurrentTime()
}

// config is the configuration in force.
func (a *App) config() *config.Config {
	a.rl.mu.RLock()
	defer a.rl.mu.RUnlock()
	return a.cfg
}

// reloadCheckName names the health decided by configuration changes.
const reloadCheckName = "reload"

var retiredHealth = backend.Health{State: backend.Unavailable, Score: 1, Reason: "removed from the configuration", Check: reloadCheckName}

// retiredCheck keeps a slot whose server left the configuration unavailable.
type retiredCheck struct{}

func (retiredCheck) Name() string { return reloadCheckName }

func (retiredCheck) Run(context.Context, *health.Target) health.Result {
	return health.Result{State: retiredHealth.State, Score: retiredHealth.Score, Reason: retiredHealth.Reason}
}

func names(servers []*backend.Server) []string {
	out := make([]string, len(servers))
	for i, s := range servers {
		out[i] = s.Name
	}
	return out
}
