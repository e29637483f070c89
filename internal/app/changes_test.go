package app

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/config"
)

func parseConfig(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const changesBase = `listen: [{address: '127.0.0.1:0'}]
service-account: {bind-dn: 'cn=x', password: old-secret}
health-check-timeout: 200ms
pool: {connect-timeout: 200ms, operation-timeout: 100ms}
servers:
  - {name: ds1, address: '127.0.0.1:1'}
  - {name: ds2, address: '127.0.0.1:2'}
`

func TestConfigChanges(t *testing.T) {
	old := parseConfig(t, changesBase+`load-balancing: {algorithm: failover}
algorithms:
  reads: {type: round-robin, servers: [ds1, ds2]}
  gone: {type: failover, servers: [ds1]}
routes:
  - {match: {operations: [search]}, algorithm: reads}
`)
	new := parseConfig(t, strings.NewReplacer("old-secret", "new-secret", "address: '127.0.0.1:2'", "address: '127.0.0.1:2', weight: 3").Replace(changesBase)+
		`load-balancing: {algorithm: round-robin}
algorithms:
  reads: {type: fewest-operations, servers: [ds1, ds2]}
  added: {type: failover, servers: [ds2]}
routes:
  - {match: {operations: [search, compare]}, algorithm: reads}
`)
	got := configChanges(old, new)
	for _, want := range []string{
		"service-account.password changed",
		"servers.ds2.weight: 1 -> 3",
		"load-balancing.algorithm: failover -> round-robin",
		"algorithms.gone removed",
		"algorithms.reads.type: round-robin -> fewest-operations",
		"algorithms.added added",
		"routes[0].match.operations: [search] -> [search compare]",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("changes lack %q: %q", want, got)
		}
	}
	if s := fmt.Sprint(got); strings.Contains(s, "secret") && !strings.Contains(s, "password changed") || strings.Contains(s, "old-secret") || strings.Contains(s, "new-secret") {
		t.Errorf("a secret leaked: %q", got)
	}
	if got := configChanges(old, old); len(got) != 0 {
		t.Errorf("no change reported as %q", got)
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// series lists the ldapmux series the registry exports, as
// name{label="value",...} with labels sorted.
func series(t *testing.T, a *App) []string {
	t.Helper()
	families, err := a.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "ldapmux_") {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(labels)
			out = append(out, f.GetName()+"{"+strings.Join(labels, ",")+"}")
		}
	}
	return out
}

// TestReloadLogAndSeries: counters exist at 0 from the start for every
// server and algorithm; a reload that changes the algorithm says so in its
// log line, and the old algorithm's series go once its operations had time
// to end.
// startLogged starts an app from yaml whose log the test reads; the
// test's cleanup shuts it down.
func startLogged(t *testing.T, yaml string) (*App, *syncBuffer) {
	t.Helper()
	logs := new(syncBuffer)
	a, err := New(parseConfig(t, yaml), slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	return a, logs
}

func TestReloadLogAndSeries(t *testing.T) {
	a, logs := startLogged(t, changesBase+"load-balancing: {algorithm: failover}\n")
	atStart := series(t, a)
	for _, want := range []string{
		`ldapmux_server_operations_failed_total{operation="search",server="ds2"}`,
		`ldapmux_server_operations_forwarded_total{operation="bind",server="ds1"}`,
		`ldapmux_algorithm_failovers_total{algorithm="failover"}`,
		`ldapmux_algorithm_affinity_total{algorithm="failover"}`,
		`ldapmux_algorithm_selections_total{algorithm="failover",server="ds2"}`,
		`ldapmux_health_state_transitions_total{check="operation",server="ds1",to="unavailable"}`,
		`ldapmux_health_state_transitions_total{check="root-dse",server="ds2",to="degraded"}`,
		`ldapmux_health_check_runs_total{check="root-dse",result="degraded",server="ds1"}`,
		`ldapmux_config_reloads_total{result="failure"}`,
		`ldapmux_admin_requests_refused_total{reason="token"}`,
	} {
		if !slices.Contains(atStart, want) {
			t.Errorf("at start, no series %s", want)
		}
	}

	if err := a.Reload(parseConfig(t, changesBase+"load-balancing: {algorithm: round-robin}\n")); err != nil {
		t.Fatal(err)
	}
	if log := logs.String(); !strings.Contains(log, "load-balancing.algorithm: failover -> round-robin") {
		t.Errorf("the reload's log line does not say what changed:\n%s", log)
	}
	if !slices.Contains(series(t, a), `ldapmux_algorithm_failovers_total{algorithm="round-robin"}`) {
		t.Errorf("no series for the new algorithm after the reload")
	}
	waitGone(t, a, `algorithm="failover"`)

	if err := a.Reload(parseConfig(t, strings.Replace(changesBase, "  - {name: ds2, address: '127.0.0.1:2'}\n", "", 1)+
		"load-balancing: {algorithm: round-robin}\n")); err != nil {
		t.Fatal(err)
	}
	if log := logs.String(); !strings.Contains(log, "servers.ds2 removed") {
		t.Errorf("the reload's log line does not say ds2 was removed:\n%s", log)
	}
	waitGone(t, a, `server="ds2"`)
}

// waitGone waits until no exported series has the label.
func waitGone(t *testing.T, a *App, label string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for slices.ContainsFunc(series(t, a), func(s string) bool { return strings.Contains(s, label) }) {
		if time.Now().After(deadline) {
			t.Fatalf("series with %s are still exported: %q", label, series(t, a))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReloadSaysEventLoopsNeedARestart: the loops are started once; a
// reload that changes event-loops keeps them and says so.
func TestReloadSaysEventLoopsNeedARestart(t *testing.T) {
	a, logs := startLogged(t, changesBase+"event-loops: 1\n")
	if err := a.Reload(parseConfig(t, changesBase+"event-loops: off\n")); err != nil {
		t.Fatal(err)
	}
	if log := logs.String(); !strings.Contains(log, "event-loops changed; restart ldapmux to apply") {
		t.Errorf("no restart warning for event-loops:\n%s", log)
	}
}
