package benchrun

import (
	"fmt"
	"strings"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// ldapmuxConfig is the proxy's configuration for one target: the given
// replicas, one algorithm, quiet logs, room for the idle-connection test;
// pool sets the pool keys given (not 0).
func ldapmuxConfig(listen string, replicas []*slapdtest.Replica, algorithm string, maxClients int, pool PoolKeys) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen:\n  - address: %s\nservers:\n", listen)
	for _, r := range replicas {
		fmt.Fprintf(&b, "  - name: ds%d\n    address: %s\n", r.ID, r.Addr)
	}
	fmt.Fprintf(&b, "service-account:\n  bind-dn: %s\n  password: %s\n", slapdtest.ServiceDN, slapdtest.ServicePassword)
	fmt.Fprintf(&b, "load-balancing:\n  algorithm: %s\n", algorithm)
	fmt.Fprintf(&b, "limits:\n  max-client-connections: %d\n", maxClients)
	b.WriteString(pool.yaml())
	b.WriteString("log:\n  level: warn\nshutdown-grace-period: 1s\n")
	return b.String()
}

// haproxyConfig balances TCP connections (not operations) round-robin over
// the replicas, on loopback only.
// HAProxy needs two file descriptors per connection it may accept.
// nbthread sets its threads when not 0.
func haproxyConfig(listen string, replicas []*slapdtest.Replica, maxConns, nbthread int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global\n  maxconn %d\n", maxConns)
	if nbthread > 0 {
		fmt.Fprintf(&b, "  nbthread %d\n", nbthread)
	}
	b.WriteString("\n")
	b.WriteString("defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10m\n  timeout server 10m\n\n")
	fmt.Fprintf(&b, "frontend ldap\n  bind %s\n  default_backend slapd\n\n", listen)
	b.WriteString("backend slapd\n  balance roundrobin\n")
	for _, r := range replicas {
		fmt.Fprintf(&b, "  server ds%d %s\n", r.ID, r.Addr)
	}
	return b.String()
}

// PoolKeys are pool settings of the ldapmux targets; 0 keeps the default.
type PoolKeys struct {
	Conns    int `json:"connections_per_server,omitempty"`     // BENCH_POOL_CONNS
	MaxConns int `json:"max_connections_per_server,omitempty"` // BENCH_POOL_MAX_CONNS
	GrowAt   int `json:"grow_at,omitempty"`                    // BENCH_POOL_GROW_AT
	// EventLoops is the event-loops key (BENCH_EVENT_LOOPS); "" keeps the
	// default. Not given to a baseline build, which may not know the key.
	EventLoops string `json:"event_loops,omitempty"`
}

func (k PoolKeys) yaml() string {
	var b strings.Builder
	for _, kv := range []struct {
		key string
		v   int
	}{{"connections-per-server", k.Conns}, {"max-connections-per-server", k.MaxConns}, {"grow-at-operations-per-connection", k.GrowAt}} {
		if kv.v > 0 {
			fmt.Fprintf(&b, "  %s: %d\n", kv.key, kv.v)
		}
	}
	loops := ""
	if k.EventLoops != "" {
		loops = "event-loops: " + k.EventLoops + "\n"
	}
	if b.Len() == 0 {
		return loops
	}
	return loops + "pool:\n" + b.String()
}
