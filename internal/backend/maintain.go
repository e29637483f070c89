package backend

import "time"

// maintain recycles old connections and probes idle ones until Close.
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
	for _, c := range p.idleOps() {
		if err := p.probe(c); err != nil {
			p.failed[c.kind].Add(1)
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
	live := p.ops[:0]
	for _, c := range p.ops {
		switch {
		case c.Err() != nil:
		case p.expired(c):
			c.draining.Store(true)
			expired = append(expired, c)
		default:
			live = append(live, c)
		}
	}
	clear(p.ops[len(live):])
	p.ops = live
	return expired
}

// drain waits (bounded by the operation timeout) for a retired connection's
// operations to finish, then unbinds it.
func (p *Pool) drain(c *Conn) {
	deadline := p.now().Add(p.cfg.OperationTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for c.Inflight() > 0 && p.now().Before(deadline) {
		select {
		case <-c.Done():
			return
		case <-tick.C:
		}
	}
	p.retire(c)
}

// idleOps lists open operation connections that have been quiet too long.
func (p *Pool) idleOps() []*Conn {
	if p.cfg.IdleCheck <= 0 {
		return nil
	}
	limit := p.now().Add(-p.cfg.IdleCheck).UnixNano()
	p.mu.Lock()
	defer p.mu.Unlock()
	var idle []*Conn
	for _, c := range p.ops {
		if c.Err() == nil && c.Inflight() == 0 && c.lastUsed.Load() < limit {
			idle = append(idle, c)
		}
	}
	return idle
}

// checkIdleBinds recycles and probes bind connections waiting in the pool.
func (p *Pool) checkIdleBinds() {
	limit := p.now().Add(-p.cfg.IdleCheck).UnixNano()
	for range len(p.idleBinds) {
		var c *Conn
		select {
		case c = <-p.idleBinds:
		default:
			return
		}
		if p.expired(c) {
			p.retire(c)
			continue
		}
		if c.lastUsed.Load() < limit {
			if err := p.probe(c); err != nil {
				p.failed[BindConn].Add(1)
				c.Close(err)
				continue
			}
		}
		select {
		case p.idleBinds <- c:
		default:
			p.retire(c)
		}
	}
}
