package app

import (
	"fmt"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/balancer"
	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/route"
)

// newRouter builds the routing rules from the configuration. The affinity
// table is made once and kept, so that a rebuilt router keeps affinity.
func (a *App) newRouter() (*route.Router, error) {
	if a.affinity == nil {
		a.affinity = a.newAffinityTable()
	}
	return buildRouter(a.cfg, slotServers(a.registry), a.affinity)
}

// routerBuilder turns configured names into algorithms over snapshot indexes.
type routerBuilder struct {
	cfg       *config.Config
	locality  route.Locality
	locations []string       // by snapshot index
	slotOf    map[string]int // server name → snapshot index
	built     map[string]balancer.Algorithm
}

// buildRouter builds a Router from cfg for servers, the registry's slots by
// snapshot index (in configured order, unless a reload changed the servers).
func buildRouter(cfg *config.Config, servers []*backend.Server, table *route.AffinityTable) (*route.Router, error) {
	b := &routerBuilder{cfg: cfg, built: map[string]balancer.Algorithm{}, locality: route.Locality{
		Enabled: cfg.UsesLocation(), Local: cfg.Location, DegradedFirst: cfg.PreferDegradedServersOverFailover,
		Preferred: cfg.Locations[cfg.Location].PreferredFailoverLocations,
	}}
	b.slotOf = map[string]int{}
	for k, s := range servers {
		b.locations = append(b.locations, s.Location)
		b.slotOf[s.Name] = k
	}
	def, err := b.algorithm(cfg.LoadBalancing.Algorithm)
	if err != nil {
		return nil, err
	}
	r := &route.Router{Default: def}
	for i, rc := range cfg.Routes {
		rt, err := b.route(rc)
		if err != nil {
			return nil, fmt.Errorf("app: routes[%d]: %w", i, err)
		}
		r.Routes = append(r.Routes, rt)
	}
	r.Affinity, err = b.affinity(table)
	return r, err
}

// algorithm builds (once) a named algorithm, or a type over all servers.
func (b *routerBuilder) algorithm(name string) (balancer.Algorithm, error) {
	if alg, ok := b.built[name]; ok {
		return alg, nil
	}
	kind, servers := name, b.allServers()
	if named, ok := b.cfg.Algorithms[name]; ok {
		kind, servers = named.Type, nil
		for _, s := range named.Servers {
			i, ok := b.slotOf[s]
			if !ok {
				return nil, fmt.Errorf("app: algorithm %s: unknown server %q", name, s)
			}
			servers = append(servers, i)
		}
	}
	alg, err := balancer.New(kind, b.locality.Tiers(servers, b.locations), nil)
	if err != nil {
		return nil, fmt.Errorf("app: algorithm %s: %w", name, err)
	}
	b.built[name] = alg
	return alg, nil
}

// allServers are the configured servers' indexes, in configured order.
func (b *routerBuilder) allServers() []int {
	all := make([]int, 0, len(b.cfg.Servers))
	for _, s := range b.cfg.Servers {
		if k, ok := b.slotOf[s.Name]; ok {
			all = append(all, k)
		}
	}
	return all
}

// route compiles one configured route.
func (b *routerBuilder) route(rc config.Route) (route.Route, error) {
	alg, err := b.algorithm(rc.Algorithm)
	if err != nil {
		return route.Route{}, err
	}
	crit, err := criteria(rc.Match)
	return route.Route{Name: rc.Algorithm, Match: crit, Algorithm: alg}, err
}

// criteria compiles a route's match settings.
func criteria(m config.Match) (route.Criteria, error) {
	var c route.Criteria
	var err error
	if c.Ops, err = route.ParseOperations(m.Operations); err != nil {
		return c, err
	}
	for _, n := range m.ClientNetworks {
		p, err := config.ParseNetwork(n)
		if err != nil {
			return c, err
		}
		c.Networks = append(c.Networks, p)
	}
	if c.BindDNs, err = parseDNs(m.ClientBindDNs); err != nil {
		return c, err
	}
	if c.BindSubtrees, err = parseDNs(m.ClientBindSubtrees); err != nil {
		return c, err
	}
	c.TargetSubtrees, err = parseDNs(m.TargetSubtrees)
	c.Controls, c.ExtendedOIDs = m.RequestControls, m.ExtendedOperations
	return c, err
}

func parseDNs(in []string) ([]route.DN, error) {
	var out []route.DN
	for _, s := range in {
		d, err := route.ParseDN(s)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// affinity builds the affinity settings, or nil when affinity is off.
func (b *routerBuilder) affinity(table *route.AffinityTable) (*route.Affinity, error) {
	ac := b.cfg.Affinity
	if ac.Type == "" {
		return nil, nil
	}
	kind, err := route.ParseAffinityKind(ac.Type)
	if err != nil {
		return nil, err
	}
	after, err := route.ParseOperations(ac.After)
	if err != nil {
		return nil, err
	}
	return &route.Affinity{
		Kind: kind, Consistent: ac.Mode == "consistent", Duration: ac.Duration.D(), After: after,
		UntilReplicated: ac.UntilReplicated(), MaxWait: ac.MaxWait.D(),
		LostWriteTimeout: ac.LostWrite(),
		Table:            table, TierOf: b.locality.TierOf(b.locations),
	}, nil
}
