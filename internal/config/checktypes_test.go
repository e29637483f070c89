package config

import (
	"bytes"
	"testing"
)

// probeCheck is a check type that only this test knows.
type probeCheck struct {
	Target string `yaml:"target"`
	Tries  int    `yaml:"tries"`
}

func (p *probeCheck) Validate(c CheckValidator) {
	if p.Tries < 0 {
		c.Problem("tries", "must not be negative (got %d)", p.Tries)
	}
}

func (p *probeCheck) SetDefaults() { setDefault(&p.Target, "cn=probe") }

// withProbe registers the probe type for the duration of the test.
func withProbe(t *testing.T) {
	n := len(checkTypes)
	RegisterCheckType("probe", func() CheckSettings { return &probeCheck{} })
	t.Cleanup(func() { checkTypes = checkTypes[:n] })
}

// TestRegisterCheckType: a type registered in one place is decoded,
// validated, completed and known to the messages of the other types.
func TestRegisterCheckType(t *testing.T) {
	withProbe(t)
	cfg := mustParse(t, minimal+"health-checks:\n  p:\n    type: probe\n    tries: 3\n")
	if got := *cfg.HealthChecks["p"].Settings.(*probeCheck); got != (probeCheck{"cn=probe", 3}) {
		t.Errorf("probe settings = %+v", got)
	}
	checkProblems(t, minimal+"health-checks:\n  p:\n    type: probe\n    tries: -1\n    scope: one\n", []Problem{
		{"health-checks.p.tries", 12, "must not be negative (got -1)"},
		{"health-checks.p.scope", 13, "does not apply to probe checks (it is a key of search checks)"},
	})
	checkProblems(t, minimal+"health-checks:\n  s:\n    type: search\n    target: x\n", []Problem{
		{"health-checks.s.target", 12, "does not apply to search checks (it is a key of probe checks)"},
	})
	checkProblems(t, minimal+"health-checks:\n  p:\n    type: prob\n", []Problem{
		{"health-checks.p.type", 11, `unknown health check type "prob" (did you mean probe?)`},
	})
}

// TestRegisterCheckTypeClash: a taken name and keys that would decode
// differently are refused.
func TestRegisterCheckTypeClash(t *testing.T) {
	withProbe(t)
	n := len(checkTypes)
	for _, tc := range []struct {
		name     string
		settings func() CheckSettings
	}{
		{"probe", func() CheckSettings { return &probeCheck{} }},
		{"scoped", func() CheckSettings { return &scopeClash{} }}, // scope is a string in search checks
		{"typed", func() CheckSettings { return &typeClash{} }},   // type is a key of every check
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("registering %s did not panic", tc.name)
				}
			}()
			RegisterCheckType(tc.name, tc.settings)
		}()
	}
	if len(checkTypes) != n {
		t.Errorf("%d types registered, want %d", len(checkTypes), n)
	}
}

type scopeClash struct {
	Scope int `yaml:"scope"`
}

func (*scopeClash) Validate(CheckValidator) {}
func (*scopeClash) SetDefaults()            {}

type typeClash struct {
	Type string `yaml:"type"`
}

func (*typeClash) Validate(CheckValidator) {}
func (*typeClash) SetDefaults()            {}

// TestExampleDocumentsCheckKeys: example.yaml shows every key of every
// check type.
func TestExampleDocumentsCheckKeys(t *testing.T) {
	for _, ct := range checkTypes {
		for _, key := range ct.keys.names {
			if !bytes.Contains(Example, []byte(key+":")) {
				t.Errorf("example.yaml does not document key %q of %s checks", key, ct.name)
			}
		}
	}
}
