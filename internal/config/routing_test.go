package config

import (
	"reflect"
	"testing"
	"time"
)

// routingBase has three servers in two locations; it has 6 lines, so
// sections appended to it start at line 7.
const routingBase = `listen: [{address: ':1389'}]
servers:
  - {name: ds1, address: 'a:1', location: east}
  - {name: ds2, address: 'b:1', location: east}
  - {name: ds3, address: 'c:1', location: west}
service-account: {bind-dn: 'cn=x', password: y}
`

// canonical is the criteria-based configuration of the design issue.
const canonical = `location: east
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
  type: bind-dn            # client-connection | client-ip | bind-dn
  duration: 10s
  after: [write]           # operations that set affinity
`

func TestCanonicalRouting(t *testing.T) {
	cfg := mustParse(t, routingBase+canonical)
	r := cfg.Routing
	if r.Location != "east" || !reflect.DeepEqual(r.Locations["east"].PreferredFailoverLocations, []string{"west"}) {
		t.Errorf("locations = %q %+v", r.Location, r.Locations)
	}
	if !r.UsesLocation() || r.PreferDegradedServersOverFailover {
		t.Errorf("use-location = %v, prefer-degraded = %v", r.UsesLocation(), r.PreferDegradedServersOverFailover)
	}
	want := map[string]Algorithm{
		"writes": {Type: "failover", Servers: []string{"ds1", "ds2", "ds3"}},
		"reads":  {Type: "fewest-operations", Servers: []string{"ds1", "ds2", "ds3"}},
	}
	if !reflect.DeepEqual(r.Algorithms, want) {
		t.Errorf("algorithms = %+v", r.Algorithms)
	}
	wantRoutes := []Route{
		{Match{Operations: []string{"write"}}, "writes"},
		{Match{ClientBindDNs: []string{"uid=app,ou=apps,dc=example,dc=com"}}, "writes"},
		{Match{}, "reads"},
	}
	if !reflect.DeepEqual(r.Routes, wantRoutes) {
		t.Errorf("routes = %+v", r.Routes)
	}
	wantAff := Affinity{Type: "bind-dn", Mode: "per-proxy", Duration: Duration(10 * time.Second), After: []string{"write"}, MaxEntries: 100000}
	if !reflect.DeepEqual(r.Affinity, wantAff) {
		t.Errorf("affinity = %+v, want %+v", r.Affinity, wantAff)
	}
}

func TestRoutingDefaults(t *testing.T) {
	cfg := mustParse(t, routingBase+`use-location: false
algorithms:
  spread: {type: round-robin}
routes:
  - match: {operations: [search], client-networks: [10.0.0.0/8, 192.0.2.7, "2001:db8::/32"]}
    algorithm: spread
  - algorithm: weighted
affinity: {type: client-connection}
`)
	if cfg.UsesLocation() {
		t.Error("use-location: false ignored")
	}
	if got := cfg.Algorithms["spread"].Servers; !reflect.DeepEqual(got, []string{"ds1", "ds2", "ds3"}) {
		t.Errorf("default servers = %v", got)
	}
	want := Affinity{Type: "client-connection", Mode: "per-proxy", Duration: Duration(10 * time.Second), After: []string{"write"}, MaxEntries: 100000}
	if !reflect.DeepEqual(cfg.Affinity, want) {
		t.Errorf("affinity = %+v", cfg.Affinity)
	}
	cfg = mustParse(t, routingBase+"affinity: {type: client-ip, until: replicated}\n")
	lost := Duration(time.Minute)
	want = Affinity{Type: "client-ip", Mode: "per-proxy", Until: "replicated", MaxWait: Duration(2 * time.Second), LostWriteTimeout: &lost, MaxEntries: 100000}
	if !reflect.DeepEqual(cfg.Affinity, want) || !cfg.Affinity.UntilReplicated() || cfg.Affinity.LostWrite() != time.Minute {
		t.Errorf("until-replicated affinity = %+v", cfg.Affinity)
	}
	cfg = mustParse(t, routingBase+"affinity: {type: client-ip, until: replicated, lost-write-timeout: 0s}\n")
	if got := cfg.Affinity.LostWrite(); got != 0 {
		t.Errorf("lost-write-timeout: 0s gives %s, want 0 (refuse until the writer is back)", got)
	}
	cfg = mustParse(t, routingBase+"affinity: {type: bind-dn, mode: consistent}\n")
	if want := (Affinity{Type: "bind-dn", Mode: "consistent"}); !reflect.DeepEqual(cfg.Affinity, want) {
		t.Errorf("consistent affinity = %+v", cfg.Affinity)
	}
	if cfg := mustParse(t, routingBase); !reflect.DeepEqual(cfg.Affinity, Affinity{}) || !cfg.UsesLocation() {
		t.Errorf("no routing keys: affinity %+v, use-location %v", cfg.Affinity, cfg.UsesLocation())
	}
}

func TestParseNetwork(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.0/8": "10.0.0.0/8", "192.0.2.7": "192.0.2.7/32", "2001:db8::/32": "2001:db8::/32", "::1": "::1/128",
	} {
		p, err := ParseNetwork(in)
		if err != nil || p.String() != want {
			t.Errorf("ParseNetwork(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
}

func TestRoutingProblems(t *testing.T) {
	tests := []struct {
		name string
		src  string // appended to routingBase, from line 7
		want []Problem
	}{
		{"unknown server", "algorithms:\n  a: {type: failover, servers: [ds1, ds4, ds1, web]}\n", []Problem{
			{"algorithms.a.servers[1]", 8, `unknown server "ds4" (did you mean ds1?)`},
			{"algorithms.a.servers[2]", 8, `duplicate server "ds1"`},
			{"algorithms.a.servers[3]", 8, `unknown server "web" (servers are ds1, ds2, ds3)`},
		}},
		{"algorithm type", "algorithms:\n  a: {servers: [ds1]}\n  b: {type: fewest-ops}\n  failover: {type: failover}\n", []Problem{
			{"algorithms.a.type", 8, "required (one of failover, fewest-operations, round-robin, weighted, health-weighted)"},
			{"algorithms.b.type", 9, `unknown algorithm type "fewest-ops" (must be one of failover, fewest-operations, round-robin, weighted, health-weighted)`},
			{"algorithms.failover", 10, `"failover" is an algorithm type; give the named algorithm another name`},
		}},
		{"unknown algorithm in route", "algorithms:\n  reads: {type: round-robin}\nroutes:\n  - match: {operations: [add]}\n    algorithm: raeds\n  - match: {operations: [read]}\n    algorithm: nope\n  - match: {operations: [bind]}\n", []Problem{
			{"routes[0].algorithm", 11, `unknown algorithm "raeds" (did you mean reads?)`},
			{"routes[1].algorithm", 13, `unknown algorithm "nope" (define it under algorithms, or use one of failover, fewest-operations, round-robin, weighted, health-weighted)`},
			{"routes[2].algorithm", 14, "required (a name under algorithms, or one of failover, fewest-operations, round-robin, weighted, health-weighted)"},
		}},
		{"default route not last", "routes:\n  - algorithm: failover\n  - match: {operations: [search]}\n    algorithm: round-robin\n", []Problem{
			{"routes[0]", 8, "a route without criteria matches every operation, so it must be the last (routes after it are never used)"},
		}},
		{"bad criteria", `routes:
  - match:
      operations: [writes, bind, lookup, ""]
      client-networks: [10.0.0.0/33, 10.1.2.3/16, not-an-ip]
      client-bind-dns: [app, ""]
      client-bind-subtrees: ["ou=apps;;"]
      target-subtrees: [dc=example]
      request-controls: [1.2.840.113556.1.4.319, paged]
      extended-operations: [1.3.6.1.4.1.4203.1.11.01]
    algorithm: failover
`, []Problem{
			{"routes[0].match.operations[0]", 9, `unknown operation "writes" (did you mean write?)`},
			{"routes[0].match.operations[2]", 9, `unknown operation "lookup" (must be one of add, delete, modify, modify-dn, bind, search, compare, extended, write, read)`},
			{"routes[0].match.operations[3]", 9, "empty operation (use one of add, delete, modify, modify-dn, bind, search, compare, extended, write, read)"},
			{"routes[0].match.client-networks[0]", 10, `invalid network "10.0.0.0/33" (use CIDR notation such as 10.0.0.0/8, or an address)`},
			{"routes[0].match.client-networks[1]", 10, `network "10.1.2.3/16" has host bits set (did you mean 10.1.0.0/16?)`},
			{"routes[0].match.client-networks[2]", 10, `invalid network "not-an-ip" (use CIDR notation such as 10.0.0.0/8, or an address)`},
			{"routes[0].match.client-bind-dns[0]", 11, `invalid DN "app": DN ended with incomplete type, value pair`},
			{"routes[0].match.client-bind-dns[1]", 11, "required"},
			{"routes[0].match.client-bind-subtrees[0]", 12, `invalid DN "ou=apps;;": incomplete type, value pair`},
			{"routes[0].match.request-controls[1]", 14, `invalid OID "paged" (use dotted numbers such as 1.3.6.1.4.1.4203.1.11.1)`},
			{"routes[0].match.extended-operations[0]", 15, `invalid OID "1.3.6.1.4.1.4203.1.11.01" (use dotted numbers such as 1.3.6.1.4.1.4203.1.11.1)`},
		}},
		{"misspelt criterion", "routes:\n  - match: {client-bind-dn: [\"cn=x\"]}\n    algorithm: failover\n", []Problem{
			{"routes[0].match.client-bind-dn", 8, "unknown key (did you mean client-bind-dns?)"},
		}},
		{"locations", `location: eats
locations:
  east: {preferred-failover-locations: [east, west, west, wset, mars]}
`, []Problem{
			{"location", 7, `no server is in location "eats" and it has no entry under locations (did you mean east?)`},
			{"locations.east.preferred-failover-locations[0]", 9, `location "east" cannot fail over to itself`},
			{"locations.east.preferred-failover-locations[2]", 9, `duplicate location "west"`},
			{"locations.east.preferred-failover-locations[3]", 9, `unknown location "wset" (no server is in it) (did you mean west?)`},
			{"locations.east.preferred-failover-locations[4]", 9, `unknown location "mars" (no server is in it)`},
		}},
		{"use-location not a boolean", "use-location: yes please\n", []Problem{
			{"use-location", 7, `expected true or false, got "yes please"`},
		}},
		{"affinity without type", "affinity:\n  duration: 5s\n", []Problem{
			{"affinity.type", 7, "required to enable affinity (one of client-connection, client-ip, bind-dn)"},
		}},
		{"affinity values", "affinity:\n  type: bind_dn\n  mode: shared\n  after: [write, serch]\n  max-entries: -3\n", []Problem{
			{"affinity.type", 8, `unknown affinity type "bind_dn" (did you mean bind-dn?)`},
			{"affinity.mode", 9, `unknown affinity mode "shared" (must be one of per-proxy, consistent)`},
			{"affinity.after[1]", 10, `unknown operation "serch" (did you mean search?)`},
			{"affinity.max-entries", 11, "must be between 1 and 10000000 (got -3)"},
		}},
		{"affinity after empty", "affinity: {type: client-ip, after: []}\n", []Problem{
			{"affinity.after", 7, "at least one operation is required (default [write])"},
		}},
		{"until replicated", "affinity:\n  type: bind-dn\n  until: replicatd\n  duration: 5s\n  after: [write]\n  max-wait: 2m\n", []Problem{
			{"affinity.until", 9, `unknown affinity end "replicatd" (did you mean replicated?)`},
			{"affinity.duration", 10, "does not apply with until: replicated, which ends when every server has the write (remove one of them)"},
			{"affinity.after", 11, "does not apply with until: replicated: every successful add, delete, modify and modify-dn sets it (remove it)"},
			{"affinity.max-wait", 12, "must be between 1ms and 1m0s (got 2m0s)"},
		}},
		{"max-wait without until", "affinity: {type: client-ip, max-wait: 1s}\n", []Problem{
			{"affinity.until", 7, "max-wait and lost-write-timeout apply only with until: replicated"},
		}},
		{"lost-write-timeout out of range", "affinity: {type: client-ip, until: replicated, lost-write-timeout: 48h}\n", []Problem{
			{"affinity.lost-write-timeout", 7, "must be between 0 (refuse until the writer is back) and 24h0m0s (got 48h0m0s)"},
		}},
		{"until without type", "affinity: {until: replicated}\n", []Problem{
			{"affinity.type", 7, "required to enable affinity (one of client-connection, client-ip, bind-dn)"},
		}},
		{"consistent until", "affinity: {type: bind-dn, mode: consistent, until: replicated, max-wait: 1s, lost-write-timeout: 1m}\n", []Problem{
			{"affinity.until", 7, "does not apply in consistent mode, which remembers nothing (remove it)"},
			{"affinity.max-wait", 7, "does not apply in consistent mode, which remembers nothing (remove it)"},
			{"affinity.lost-write-timeout", 7, "does not apply in consistent mode, which remembers nothing (remove it)"},
		}},
		{"consistent affinity", "affinity:\n  type: client-connection\n  mode: consistent\n  duration: 5s\n  after: [write]\n  max-entries: 10\n", []Problem{
			{"affinity.type", 8, "consistent mode needs an identity every proxy sees: use bind-dn or client-ip"},
			{"affinity.duration", 10, "does not apply in consistent mode, which remembers nothing (remove it)"},
			{"affinity.after", 11, "does not apply in consistent mode, which remembers nothing (remove it)"},
			{"affinity.max-entries", 12, "does not apply in consistent mode, which remembers nothing (remove it)"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProblems(t, routingBase+tt.src, tt.want)
		})
	}
}
