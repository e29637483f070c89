package app

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/balancer"
	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/route"
)

const header = `listen: [{address: ':1389'}]
service-account: {bind-dn: 'cn=x', password: y}
servers:
  - {name: ds1, address: 'a:1', location: east}
  - {name: ds2, address: 'b:1', location: central}
  - {name: ds3, address: 'c:1', location: west}
`

// build parses header+src and builds its router over fresh servers.
func build(t *testing.T, src string) (*route.Router, *backend.Registry) {
	t.Helper()
	cfg, err := config.Parse([]byte(header + src))
	if err != nil {
		t.Fatal(err)
	}
	servers := make([]*backend.Server, len(cfg.Servers))
	for i, s := range cfg.Servers {
		servers[i] = &backend.Server{Name: s.Name, Address: s.Address, Location: s.Location, Weight: s.Weight}
	}
	reg := backend.NewRegistry(servers, nil)
	r, err := buildRouter(cfg, servers, route.NewAffinityTable(0))
	if err != nil {
		t.Fatal(err)
	}
	return r, reg
}

func firstName(r *route.Router, snap *backend.Snapshot, op *route.Operation) (string, string) {
	got, alg := r.Candidates(snap, op, nil)
	if len(got) == 0 {
		return "", alg
	}
	return snap.Servers[got[0]].Name, alg
}

func TestBuildCanonicalRouter(t *testing.T) {
	r, reg := build(t, `location: east
locations:
  east: {preferred-failover-locations: [west]}
algorithms:
  writes: {type: failover, servers: [ds1, ds2, ds3]}
  reads:  {type: fewest-operations, servers: [ds1, ds2, ds3]}
routes:
  - match: {operations: [write]}
    algorithm: writes
  - match: {client-bind-dns: ["uid=app,ou=apps,dc=example,dc=com"]}
    algorithm: writes
  - algorithm: reads
affinity:
  type: bind-dn
  duration: 10s
  after: [write]
`)
	snap := reg.Snapshot()
	reads := map[string]int{}
	for range 300 {
		s, alg := firstName(r, snap, &route.Operation{Tag: ldapwire.OpSearchRequest, BindDN: "uid=reader"})
		reads[s]++
		if alg != "reads" {
			t.Fatalf("search routed by %s", alg)
		}
	}
	if reads["ds1"] != 300 {
		t.Errorf("reads left the proxy's location (east: ds1): %v", reads)
	}
	if s, alg := firstName(r, snap, &route.Operation{Tag: ldapwire.OpDelRequest}); s != "ds1" || alg != "writes" {
		t.Errorf("delete: %s via %s", s, alg)
	}
	if s, alg := firstName(r, snap, &route.Operation{Tag: ldapwire.OpCompareRequest, BindDN: "UID=App,ou=apps,dc=example,dc=com"}); s != "ds1" || alg != "writes" {
		t.Errorf("read-after-write client: %s via %s", s, alg)
	}
	// Local ds1 down: failover goes to west (ds3) before central (ds2).
	reg.SetHealth(0, backend.Health{State: backend.Unavailable, Score: 1, Reason: "test"})
	got, _ := r.Candidates(reg.Snapshot(), &route.Operation{Tag: ldapwire.OpAddRequest}, nil)
	if !slices.Equal(got, []int{2, 1}) {
		t.Errorf("writes with ds1 down: %v, want [2 1]", got)
	}
	// Affinity: after a write, the same identity reads from the writer.
	r.Record(&route.Operation{Tag: ldapwire.OpAddRequest, BindDN: "uid=w"}, "ds2", ldapwire.Success, time.Now())
	if s, alg := firstName(r, reg.Snapshot(), &route.Operation{Tag: ldapwire.OpSearchRequest, BindDN: "uid=w"}); s != "ds2" || alg != "reads/affinity" {
		t.Errorf("read after write: %s via %s", s, alg)
	}
}

func TestBuildReadsSpreadWithoutLocations(t *testing.T) {
	r, reg := build(t, `location: east
use-location: false
routes:
  - match: {operations: [write]}
    algorithm: failover
  - algorithm: fewest-operations
`)
	reads := map[string]int{}
	for range 300 {
		s, _ := firstName(r, reg.Snapshot(), &route.Operation{Tag: ldapwire.OpSearchRequest})
		reads[s]++
	}
	for _, name := range []string{"ds1", "ds2", "ds3"} {
		if reads[name] < 70 {
			t.Errorf("reads did not spread: %v", reads)
		}
	}
}

func TestBuildShorthandAndKeywords(t *testing.T) {
	for _, kind := range balancer.Kinds {
		r, reg := build(t, fmt.Sprintf("load-balancing: {algorithm: %s}\n", kind))
		got, alg := r.Candidates(reg.Snapshot(), &route.Operation{Tag: ldapwire.OpSearchRequest}, nil)
		if alg != kind || len(got) != 3 {
			t.Errorf("%s: %v via %s", kind, got, alg)
		}
	}
	r, reg := build(t, "routes:\n  - match: {operations: [add]}\n    algorithm: round-robin\n")
	if _, alg := firstName(r, reg.Snapshot(), &route.Operation{Tag: ldapwire.OpAddRequest}); alg != "round-robin" {
		t.Errorf("keyword route: %s", alg)
	}
	if s, alg := firstName(r, reg.Snapshot(), &route.Operation{Tag: ldapwire.OpSearchRequest}); s != "ds1" || alg != "failover" {
		t.Errorf("no matching route: %s via %s", s, alg)
	}
}

func TestBuildExampleConfig(t *testing.T) {
	t.Setenv("LDAPMUX_SERVICE_PASSWORD", "x")
	cfg, err := config.Parse(config.Example)
	if err != nil {
		t.Fatal(err)
	}
	servers := []*backend.Server{{Name: "ds1", Location: "site-a"}, {Name: "ds2", Location: "site-a"}, {Name: "ds3", Location: "site-b"}}
	r, err := buildRouter(cfg, servers, route.NewAffinityTable(0))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Routes) != 4 || r.Affinity == nil || r.Affinity.Kind != route.ByBindDN {
		t.Errorf("router = %+v", r)
	}
}

// TestNamesAgree keeps the configuration's keyword lists and the routing
// packages' in step.
func TestNamesAgree(t *testing.T) {
	if !slices.Equal(config.KnownAlgorithms, balancer.Kinds) {
		t.Errorf("config algorithms %v, balancer %v", config.KnownAlgorithms, balancer.Kinds)
	}
	if !slices.Equal(config.OperationNames, route.OperationNames()) {
		t.Errorf("config operations %v, route %v", config.OperationNames, route.OperationNames())
	}
}
