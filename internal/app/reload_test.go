package app

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/config"
)

// offline renders a configuration whose servers refuse connections
// (127.0.0.1 ports 1-3 have no listener): enough to lay out slots.
func offline(t *testing.T, servers string, extra string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte("listen: [{address: '127.0.0.1:0'}]\nservice-account: {bind-dn: 'cn=x', password: y}\n" +
		"health-check-timeout: 200ms\npool: {connect-timeout: 200ms}\nservers:\n" + servers + extra))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func startOffline(t *testing.T, cfg *config.Config) *App {
	t.Helper()
	return startApp(t, cfg)
}

// startApp starts ldapmux with cfg, logging nowhere, and shuts it down at
// the end of the test.
func startApp(tb testing.TB, cfg *config.Config) *App {
	tb.Helper()
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	return a
}

func slotNames(a *App) []string {
	var out []string
	for _, v := range a.Registry().Snapshot().Servers {
		out = append(out, v.Name)
	}
	return out
}

func TestPlanKeepsReplacesAddsRemoves(t *testing.T) {
	a := startOffline(t, offline(t, "  - {name: ds1, address: '127.0.0.1:1'}\n  - {name: ds2, address: '127.0.0.1:2'}\n  - {name: ds3, address: '127.0.0.1:3'}\n", ""))
	old := a.Servers()
	next := offline(t, "  - {name: ds3, address: '127.0.0.1:3', health-check-frequency: 5s}\n  - {name: ds2, address: '127.0.0.1:22'}\n  - {name: ds4, address: '127.0.0.1:4'}\n", "")
	set, err := loadTLS(next)
	if err != nil {
		t.Fatal(err)
	}
	p := a.plan(next, set)
	defer p.abort()
	if _, ok := p.kept[old[2]]; !ok || len(p.kept) != 1 {
		t.Errorf("kept %v, want ds3 only (health settings do not touch the pool)", p.kept)
	}
	if len(p.replaced) != 1 || p.replaced[0] != old[1] || p.slots[1] == old[1] || p.slots[1].Address != "127.0.0.1:22" {
		t.Errorf("ds2 not replaced in its slot: %v", p.replaced)
	}
	if names(p.removed)[0] != "ds1" || len(p.slots) != 4 || p.slots[3].Name != "ds4" || p.slots[3].Index != 3 {
		t.Errorf("removed %v, slots %v", names(p.removed), names(p.slots))
	}
	if got := names(p.active); !slices.Equal(got, []string{"ds3", "ds2", "ds4"}) {
		t.Errorf("active %v", got)
	}
	if got := names(p.added()); !slices.Equal(got, []string{"ds4"}) {
		t.Errorf("added %v", got)
	}
}

func TestReloadReusesSlotsAndRetires(t *testing.T) {
	a := startOffline(t, offline(t, "  - {name: ds1, address: '127.0.0.1:1'}\n  - {name: ds2, address: '127.0.0.1:2'}\n", ""))
	if err := a.Reload(offline(t, "  - {name: ds2, address: '127.0.0.1:2'}\n  - {name: ds3, address: '127.0.0.1:3'}\n", "")); err != nil {
		t.Fatal(err)
	}
	snap := a.Registry().Snapshot()
	if got := slotNames(a); !slices.Equal(got, []string{"ds1", "ds2", "ds3"}) {
		t.Fatalf("slots %v", got)
	}
	if h := snap.Servers[0].Health; h.State != backend.Unavailable || h.Reason != "removed from the configuration" {
		t.Errorf("ds1 health %+v", h)
	}
	if h := snap.Servers[2].Health; h.Check == reloadCheckName {
		t.Errorf("ds3 was not checked before the routes changed: %+v", h)
	}
	if err := a.Reload(offline(t, "  - {name: ds1, address: '127.0.0.1:1'}\n  - {name: ds3, address: '127.0.0.1:3'}\n", "")); err != nil {
		t.Fatal(err)
	}
	if got := slotNames(a); !slices.Equal(got, []string{"ds1", "ds2", "ds3"}) {
		t.Errorf("slots after adding ds1 back: %v (its slot should be reused)", got)
	}
	if got := names(a.Servers()); !slices.Equal(got, []string{"ds1", "ds3"}) {
		t.Errorf("servers %v", got)
	}
	st := a.Status()
	if st.Reload.Count != 2 || len(st.Servers) != 2 || st.Servers[0].Name != "ds1" {
		t.Errorf("status %+v", st)
	}
	ok, why := a.Ready()
	if ok || !strings.Contains(strings.Join(why, ";"), "no usable server among [ds1 ds3]") {
		t.Errorf("ready %v %v", ok, why)
	}
}

func TestReloadRefusedKeepsEverything(t *testing.T) {
	a := startOffline(t, offline(t, "  - {name: ds1, address: '127.0.0.1:1'}\n", ""))
	bad := offline(t, "  - {name: ds1, address: '127.0.0.1:1'}\n", "log:\n  access-log: true\n  access-log-file: /nonexistent-dir/access.log\n")
	err := a.Reload(bad)
	if err == nil || !strings.Contains(err.Error(), "access-log-file") {
		t.Fatalf("reload with an unwritable access log: %v", err)
	}
	if a.config() == bad || a.Status().Reload.OK || a.Status().Reload.Failed != 1 {
		t.Errorf("the refused configuration took effect: %+v", a.Status().Reload)
	}
}

// TestPlanReplacesEveryPoolWhenPoolSettingsChange: pool sizes, ages,
// timeouts and per-connection limits apply on reload, to every server.
func TestPlanReplacesEveryPoolWhenPoolSettingsChange(t *testing.T) {
	servers := "  - {name: ds1, address: '127.0.0.1:1'}\n  - {name: ds2, address: '127.0.0.1:2'}\n"
	a := startOffline(t, offline(t, servers, ""))
	old := a.Servers()
	for name, change := range map[string]func(*config.Config){
		"connections-per-server":                func(c *config.Config) { c.Pool.ConnectionsPerServer = 9 },
		"max-connection-age":                    func(c *config.Config) { c.Pool.MaxConnectionAge = config.Duration(time.Minute) },
		"limits.max-operations-per-server-conn": func(c *config.Config) { c.Limits.MaxOperationsPerServerConnection = 7 },
	} {
		next := offline(t, servers, "")
		change(next)
		set, err := loadTLS(next)
		if err != nil {
			t.Fatal(err)
		}
		p := a.plan(next, set)
		if len(p.kept) != 0 || len(p.replaced) != 2 || p.slots[0] == old[0] || p.slots[1] == old[1] {
			t.Errorf("%s: kept %d, replaced %v; want both pools replaced", name, len(p.kept), names(p.replaced))
		}
		p.abort()
	}
	unchanged := offline(t, servers, "")
	set, err := loadTLS(unchanged)
	if err != nil {
		t.Fatal(err)
	}
	same := a.plan(unchanged, set)
	defer same.abort()
	if len(same.kept) != 2 {
		t.Errorf("an unchanged file replaced pools: kept %d", len(same.kept))
	}
}

// A reload that takes a check off a server drops that check's run,
// duration and transition series; the checks it keeps keep theirs.
func TestReloadDropsTheSeriesOfRemovedChecks(t *testing.T) {
	checks := "health-checks:\n  slow: {type: search, degraded-above: 1s}\n  alerts: {type: admin-alert}\n"
	a := startOffline(t, offline(t, "  - {name: ds1, address: '127.0.0.1:1', health-checks: [slow, alerts]}\n", checks))
	before := checkSeries(t, a)
	for _, want := range []string{"runs/slow", "runs/alerts", "durations/slow", "transitions/alerts"} {
		if !before[want] {
			t.Fatalf("series %s missing before the reload: %v", want, before)
		}
	}
	if err := a.Reload(offline(t, "  - {name: ds1, address: '127.0.0.1:1', health-checks: [slow]}\n", checks)); err != nil {
		t.Fatal(err)
	}
	after := checkSeries(t, a)
	for series := range after {
		if strings.HasSuffix(series, "/alerts") {
			t.Errorf("series %s of the removed check is still exported", series)
		}
	}
	if !after["runs/slow"] || !after["transitions/slow"] {
		t.Errorf("series of the kept check lost: %v", after)
	}
}

// checkSeries lists the health check series of ds1 as "kind/check".
func checkSeries(t *testing.T, a *App) map[string]bool {
	t.Helper()
	families, err := a.obs.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{"ldapmux_health_check_runs_total": "runs", "ldapmux_health_check_duration_seconds": "durations",
		"ldapmux_health_state_transitions_total": "transitions"}
	out := map[string]bool{}
	for _, f := range families {
		kind, ok := kinds[f.GetName()]
		if !ok {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["server"] == "ds1" {
				out[kind+"/"+labels["check"]] = true
			}
		}
	}
	return out
}
