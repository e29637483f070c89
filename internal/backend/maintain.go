package backend

import "time"

// maintain recycles old connections, probes idle ones and closes those the
// load no longer needs until Close.
func (p *Pool) maintain() {
	defer p.wg.Done()
	ticker := time.NewTicker(p.tickInterval())
	defer ticker.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-ticker.C:
			p.Tick()
		}
	}
}

// tickInterval checks often enough for the shortest configured period.
func (p *Pool) tickInterval() time.Duration {
	d := time.Second
	for _, c := range []time.Duration{p.cfg.IdleCheck / 2, p.cfg.MaxAge / 10} {
		if c > 0 && c < d {
			d = c
		}
	}
	return max(d, 10*time.Millisecond)
}

// Tick runs one maintenance pass; tests call it directly.
func (p *Pool) Tick() {
	for _, c := range p.takeExpiredOps() {
		go p.drain(c)
	}
	for _, c := range p.takeRetiredBound() {
		go p.drain(c)
	}
	idle, surplus := p.idleOps()
	for _, c := range surplus {
		p.shrunk[p.opKind].Add(1)
		go p.drain(c)
	}
	for _, c := range idle {
		if err := p.probe(c); err != nil {
			p.failed[c.Kind()].Add(1)
			c.Close(err)
		}
	}
	p.checkIdleBinds()
}

// takeExpiredOps removes connections past their maximum age from service.
func (p *Pool) takeExpiredOps() []*Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	var expired []*Conn
	p.setOps(func(c *Conn) bool {
		switch {
		case c.Err() != nil:
			return false
		case p.expired(c):
			c.draining.Store(true)
			expired = append(expired, c)
			return false
		}
		return true
	})
	return expired
}

// drain waits (bounded by the operation timeout) for a retired connection's
// operations to finish, then unbinds it. It first lets one tick pass: a
// sender that picked c just before it left ops registers its operation by
// then, and is waited for like the others.
func (p *Pool) drain(c *Conn) {
	deadline := p.now().Add(p.cfg.OperationTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	select {
	case <-c.Done():
		return
	case <-tick.C:
	}
	for c.Inflight() > 0 && p.now().Before(deadline) {
		select {
		case <-c.Done():
			return
		case <-tick.C:
		}
	}
	p.retire(c)
}

// idleOps lists open operation connections that have been quiet too long:
// those the pool keeps, to probe, and the surplus above the minimum, newest
// first, taken out of service to be closed (the oldest are picked first
// among equally loaded ones, so the newest are the ones the load left).
func (p *Pool) idleOps() (idle, surplus []*Conn) {
	if p.cfg.IdleCheck <= 0 {
		return nil, nil
	}
	limit := p.now().Add(-p.cfg.IdleCheck).UnixNano()
	p.mu.Lock()
	defer p.mu.Unlock()
	ops := *p.ops.Load()
	for _, c := range ops {
		if c.Err() == nil && c.Inflight() == 0 && c.lastUsed.Load() < limit {
			idle = append(idle, c)
		}
	}
	for n := len(ops); n > p.cfg.Conns && len(idle) > 0; n-- {
		c := idle[len(idle)-1]
		idle = idle[:len(idle)-1]
		c.draining.Store(true)
		surplus = append(surplus, c)
	}
	if len(surplus) > 0 {
		p.setOps(func(c *Conn) bool { return !c.draining.Load() })
	}
	return idle, surplus
}

// checkIdleBinds lets go of bind connections that closed while they
// waited in the pool, recycles and probes the others, and closes those
// idle above the minimum.
func (p *Pool) checkIdleBinds() {
	limit := p.now().Add(-p.cfg.IdleCheck).UnixNano()
	for range len(p.idleBinds) {
		var c *Conn
		select {
		case c = <-p.idleBinds:
		default:
			return
		}
		if c.Err() != nil { // closed while idle: by the server (its idle timeout) or the network
			p.releaseBindSlot()
			continue
		}
		if p.expired(c) {
			p.discardBind(c)
			continue
		}
		if p.cfg.IdleCheck > 0 && c.lastUsed.Load() < limit {
			if len(p.bindSlots) > p.cfg.BindConns {
				p.shrunk[BindConn].Add(1)
				p.discardBind(c)
				continue
			}
			if err := p.probe(c); err != nil {
				p.failed[BindConn].Add(1)
				c.Close(err)
				p.releaseBindSlot()
				continue
			}
		}
		p.idleBinds <- c // never blocks: it holds as many as there are slots
	}
}
