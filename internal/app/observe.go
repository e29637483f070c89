package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ldapmux/ldapmux/internal/admin"
	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/buildinfo"
	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/frontend"
	"github.com/ldapmux/ldapmux/internal/health"
	"github.com/ldapmux/ldapmux/internal/monitor"
	"github.com/ldapmux/ldapmux/internal/proxy"
	"github.com/ldapmux/ldapmux/internal/status"
)

// Sizes of the history kept for the status page.
const (
	historySamples     = 180 // one per sampleInterval: three minutes
	sampleInterval     = time.Second
	transitionsKept    = 50
	adminShutdownGrace = 2 * time.Second
)

// observability is everything that reports on the proxy: metrics, access
// log, status history, cn=monitor and the admin HTTP listener.
type observability struct {
	started      time.Time
	reg          *prometheus.Registry
	ops          *proxy.Metrics
	checks       *health.Metrics
	access       *proxy.AccessLog
	accessFile   *lockedFile // nil unless log.access-log-file is set
	transitions  *status.Transitions
	history      *status.History
	draining     atomic.Bool
	ready        prometheus.GaugeFunc
	reloads      *prometheus.CounterVec
	adminRefused *prometheus.CounterVec
	reloadTime   prometheus.Gauge

	adminSrv   *http.Server
	adminLn    net.Listener
	adminTLS   *frontend.TLSSource // nil without admin.tls
	adminToken atomic.Pointer[string]

	mu         sync.Mutex // mu guards the fields below
	lastReload status.Reload
	configFile string
	applied    func(*config.Config) // called after a successful file reload
}

// initObservability creates the metrics and observers; New calls it before
// building the proxy.
func (a *App) initObservability() {
	o := &observability{started: time.Now(), reg: prometheus.NewRegistry(), access: proxy.NewAccessLog(),
		transitions: status.NewTransitions(transitionsKept), history: status.NewHistory(historySamples)}
	o.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	o.ops = proxy.NewMetrics(o.reg)
	o.checks = health.NewMetrics(o.reg)
	o.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ldapmux_config_reloads_total",
		Help: "Configuration reloads, by result (success, failure)."}, []string{"result"})
	o.reloadTime = prometheus.NewGauge(prometheus.GaugeOpts{Name: "ldapmux_config_last_reload_success_timestamp_seconds",
		Help: "When the configuration was last loaded successfully (start or reload)."})
	o.reloadTime.SetToCurrentTime()
	o.ready = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ldapmux_ready",
		Help: "1 when every route has a usable server and ldapmux is not shutting down."}, func() float64 {
		if ok, _ := a.Ready(); ok {
			return 1
		}
		return 0
	})
	o.adminRefused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ldapmux_admin_requests_refused_total",
		Help: "Admin listener requests refused, by reason (token: missing or wrong token; cross-origin: a POST from another site's page)."}, []string{"reason"})
	b := buildinfo.Get()
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "ldapmux_build_info",
		Help:        "Always 1; its labels say which ldapmux is running (version, source revision, Go version).",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Revision, "goversion": b.GoVersion}})
	build.Set(1)
	o.reg.MustRegister(o.reloads, o.reloadTime, o.ready, o.adminRefused, build)
	a.obs = o
}

// relay is the proxy's health reporter: the current checker.
func (a *App) relay() proxy.HealthReporter {
	a.rl.relay.a = a
	a.rl.relay.checker.Store(a.checker)
	return &a.rl.relay
}

// observer is what the proxy reports every operation to.
func (a *App) observer() proxy.Observer { return proxy.Observers{a.obs.ops, a.obs.access} }

// stateChanged hears every server state change (Registry.OnChange).
func (a *App) stateChanged(s *backend.Server, old, new backend.Health) {
	a.obs.checks.Transition(s, old, new)
	a.obs.transitions.Add(status.Transition{Time: time.Now(), Server: s.Name, From: old.State.String(),
		To: new.State.String(), Score: new.Score, Check: new.Check, Reason: new.Reason})
}

// finishObservability registers what exists once the frontend does and
// applies the configuration's observability settings.
func (a *App) finishObservability() error {
	a.obs.reg.MustRegister(backend.Collector{Servers: a.serverViews})
	a.frontend.RegisterMetrics(a.obs.reg)
	a.initSeries()
	return a.applyObservability(a.cfg)
}

// applyObservability sets the access log, cn=monitor and the admin token
// from cfg. What may fail comes first, so that a refused reload changes
// as little as possible.
func (a *App) applyObservability(cfg *config.Config) error {
	var m frontend.Monitor // nil: cn=monitor searches are forwarded
	if len(cfg.Monitor.AdminDNs) > 0 {
		mon, err := monitor.New(cfg.Monitor.AdminDNs, a.Status)
		if err != nil {
			return err
		}
		m = mon
	}
	if err := a.applyAccessLog(cfg); err != nil {
		return err
	}
	a.frontend.SetMonitor(m)
	token := cfg.Admin.Token.Reveal()
	a.obs.adminToken.Store(&token)
	return nil
}

// applyAccessLog turns the access log on or off and (re)opens its file, so
// that a reload after log rotation writes to a new file.
func (a *App) applyAccessLog(cfg *config.Config) error {
	o := a.obs
	if !cfg.Log.AccessLog {
		o.access.SetHandler(nil)
		return o.closeAccessFile()
	}
	if cfg.Log.AccessLogFile == "" {
		o.access.SetHandler(a.log.Handler())
		return o.closeAccessFile()
	}
	f, err := os.OpenFile(cfg.Log.AccessLogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("log.access-log-file: %w", err)
	}
	lf := &lockedFile{f: f}
	o.access.SetHandler(newHandler(cfg.Log.Format, lf))
	old := o.accessFile
	o.accessFile = lf
	if old != nil {
		return old.Close()
	}
	return nil
}

func (o *observability) closeAccessFile() error {
	f := o.accessFile
	o.accessFile = nil
	if f == nil {
		return nil
	}
	return f.Close()
}

// newHandler makes a log handler in the configured format.
func newHandler(format string, w io.Writer) slog.Handler {
	if format == "json" {
		return slog.NewJSONHandler(w, nil)
	}
	return slog.NewTextHandler(w, nil)
}

// lockedFile is a file that may be closed while lines are being written:
// writes after Close are dropped.
type lockedFile struct {
	mu sync.Mutex // mu guards f
	f  *os.File
}

func (l *lockedFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, os.ErrClosed
	}
	return l.f.Write(p)
}

func (l *lockedFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.f
	l.f = nil
	if f == nil {
		return nil
	}
	return f.Close()
}

// listenAdmin opens the admin listener when one is configured.
func (a *App) listenAdmin() error {
	addr := a.cfg.Admin.Address
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin listener on %s: %w", addr, err)
	}
	if a.obs.adminTLS != nil {
		ln = tls.NewListener(ln, a.obs.adminTLS.ServerConfig())
	}
	a.obs.adminLn = ln
	return nil
}

// startObservability starts the sampler and the admin endpoints.
func (a *App) startObservability(ctx context.Context) {
	a.wg.Add(1)
	go a.sample(ctx)
	if a.obs.adminLn == nil {
		return
	}
	token := func() string { return *a.obs.adminToken.Load() }
	opt := admin.Options{Metrics: a.obs.reg, Token: token, Refused: a.obs.adminRefused}
	a.obs.adminSrv = &http.Server{Handler: admin.Handler(adminSource{a}, opt), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	adm := a.cfg.Admin
	a.log.Info("admin listener", "address", a.obs.adminLn.Addr().String(), "https", adm.TLS.Enabled(), "token", adm.TokenFile != "",
		"client-certificates", adm.TLS.ClientAuthType() == tls.RequireAndVerifyClientCert)
	if !adm.Protected() {
		a.log.Info("the admin listener asks for no token or client certificate: keep it on loopback or a management network (admin.token-file, admin.tls)")
	}
	go a.obs.adminSrv.Serve(a.obs.adminLn)
}

// AdminAddr is the admin listener's address, "" when there is none.
func (a *App) AdminAddr() string {
	if a.obs.adminLn == nil {
		return ""
	}
	return a.obs.adminLn.Addr().String()
}

// sample records each server's throughput and latency every second.
func (a *App) sample(ctx context.Context) {
	defer a.wg.Done()
	tick := time.NewTicker(sampleInterval)
	defer tick.Stop()
	a.recordSample(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			a.recordSample(now)
		}
	}
}

func (a *App) recordSample(now time.Time) {
	loads := map[string]status.Load{}
	for _, s := range a.Servers() {
		n, busy := s.Completed()
		loads[s.Name] = status.Load{Completed: n, Busy: busy}
	}
	a.obs.history.Record(now, loads)
}

// beginShutdown marks the proxy draining: /readyz answers 503 while
// operations finish, and reloads are refused (one in progress ends first).
// Shutdown calls it first.
func (a *App) beginShutdown() {
	a.obs.draining.Store(true)
	a.rl.reloadMu.Lock()
	a.rl.reloadMu.Unlock()
}

// endShutdown stops the admin listener and closes the access log file.
// Shutdown calls it last.
func (a *App) endShutdown() {
	if a.obs.adminSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), adminShutdownGrace)
		defer cancel()
		a.obs.adminSrv.Shutdown(ctx)
	}
	a.obs.closeAccessFile()
}

// Metrics is the registry /metrics serves.
func (a *App) Metrics() *prometheus.Registry { return a.obs.reg }

// serverViews are the configured servers with their current health.
func (a *App) serverViews() []backend.ServerView {
	snap := a.registry.Snapshot()
	servers := a.Servers()
	views := make([]backend.ServerView, 0, len(servers))
	for _, s := range servers {
		if s.Index < len(snap.Servers) {
			views = append(views, backend.ServerView{Server: s, Health: snap.Servers[s.Index].Health})
		}
	}
	return views
}

// Ready reports whether every route has at least one usable server and
// the proxy is not shutting down; when not, it says why.
func (a *App) Ready() (bool, []string) {
	if a.obs.draining.Load() {
		return false, []string{"shutting down"}
	}
	usable := map[string]bool{}
	for _, v := range a.serverViews() {
		usable[v.Name] = v.Usable()
	}
	var why []string
	for _, alg := range a.algorithms() {
		if !slices.ContainsFunc(alg.servers, func(s string) bool { return usable[s] }) {
			why = append(why, fmt.Sprintf("route %s: no usable server among %v", alg.name, alg.servers))
		}
	}
	return len(why) == 0, why
}

// adminSource adapts App to admin.Source.
type adminSource struct{ a *App }

func (s adminSource) Status() *status.Status  { return s.a.Status() }
func (s adminSource) Ready() (bool, []string) { return s.a.Ready() }
func (s adminSource) Reload() error {
	s.a.obs.mu.Lock()
	file := s.a.obs.configFile
	s.a.obs.mu.Unlock()
	if file == "" {
		return admin.ErrNoConfigFile
	}
	return s.a.ReloadFile(file)
}
