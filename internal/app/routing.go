package app

import (
	"fmt"

	"github.com/ldapmux/ldapmux/internal/balancer"
	"github.com/ldapmux/ldapmux/internal/route"
)

// newRouter builds the routing rules from the load-balancing settings.
func (a *App) newRouter() (*route.Router, error) {
	order := make([]int, len(a.servers))
	for i := range order {
		order[i] = i
	}
	switch a.cfg.LoadBalancing.Algorithm {
	case "failover", "":
		return &route.Router{Default: balancer.Failover{Servers: order}}, nil
	}
	return nil, fmt.Errorf("app: load-balancing algorithm %q is not available yet", a.cfg.LoadBalancing.Algorithm)
}

