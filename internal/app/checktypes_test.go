package app

import (
	"context"
	"slices"
	"testing"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/health"
)

// A check type that only this test binary knows, registered in one place.
func init() {
	config.RegisterCheckType("probe", func() config.CheckSettings { return &probeSettings{} })
	checkTypes["probe"] = checkType{build: func(c checkSpec) health.Check {
		return probe{c.name, c.config.Settings.(*probeSettings).State}
	}}
}

type probeSettings struct {
	State string `yaml:"probe-state"`
}

func (p *probeSettings) Validate(c config.CheckValidator) {
	if p.State != "" && p.State != "degraded" {
		c.Problem("probe-state", "only degraded is known")
	}
}

func (p *probeSettings) SetDefaults() {
	if p.State == "" {
		p.State = "available"
	}
}

type probe struct{ name, state string }

func (p probe) Name() string { return p.name }

func (p probe) Run(context.Context, *health.Target) health.Result {
	state := backend.Available
	if p.state == "degraded" {
		state = backend.Degraded
	}
	return health.Result{State: state, Score: 5, Reason: "probe"}
}

// TestCheckTypes builds a check of every type, the registered probe
// included, from a configuration.
func TestCheckTypes(t *testing.T) {
	cfg := offline(t, "  - {name: ds1, address: '127.0.0.1:1', health-checks: [s, b, a, u, p]}\n", `health-checks:
  s: {type: search}
  b: {type: replication-backlog, degraded-age: 1s}
  a: {type: admin-alert}
  u: {type: busyness, degraded-outstanding: 5}
  p: {type: probe, probe-state: degraded}
`)
	bad := "listen: [{address: ':1389'}]\nservice-account: {bind-dn: 'cn=x', password: y}\n" +
		"servers: [{name: ds1, address: 'a:389'}]\nhealth-checks: {p: {type: probe, probe-state: down}}\n"
	if _, err := config.Parse([]byte(bad)); err == nil || err.Error() != "health-checks.p.probe-state (line 4): only degraded is known" {
		t.Errorf("probe-state: down: %v", err)
	}
	shared := (&App{cfg: cfg}).sharedCheckState()
	for _, name := range cfg.ChecksOf(0) {
		c := newCheck(checkSpec{name: name, config: cfg.HealthChecks[name], shared: shared[name]})
		if c.Name() != name {
			t.Errorf("check %s is named %s", name, c.Name())
		}
	}
	p := newCheck(checkSpec{name: "p", config: cfg.HealthChecks["p"]})
	if r := p.Run(context.Background(), nil); r.State != backend.Degraded {
		t.Errorf("probe: %+v", r)
	}
	startOffline(t, cfg)
}

// TestEveryCheckTypeBuilds: every type the configuration accepts has a
// builder.
func TestEveryCheckTypeBuilds(t *testing.T) {
	names := config.CheckTypeNames()
	if !slices.Contains(names, config.CheckBusyness) {
		t.Fatalf("check types: %v", names)
	}
	for _, name := range names {
		if _, ok := checkTypes[name]; !ok {
			t.Errorf("no builder for %s checks", name)
		}
	}
}
