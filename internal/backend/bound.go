package backend

import (
	"fmt"
	"maps"
	"slices"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// Bound connections. A client's simple bind is checked on a bind
// connection, which the server then holds bound as that client. Rather
// than binding it again for the next client, the pool may keep it to carry
// the operations of every client bound as the same DN, multiplexed and
// without a Proxied Authorization control: the server sees them exactly as
// on the client's own connection, and spares the control's cost (in
// OpenLDAP a fifth of a search's CPU). No password is kept: a bound
// connection lives until it is idle, too old or lost, and is never bound
// again; meanwhile, and past PoolConfig.MaxBound, those clients' operations
// carry the control on the service account's connections as before.
//
// A connection is kept only when nothing about its session differs from
// what a new bind as the same DN gives: the bind's answer said nothing of
// it (the proxy checks that before calling ReleaseBindAs: no control but an
// empty password policy response), and the client's own entry can be read
// on it (a second guard: OpenLDAP's password policy limits a session whose
// password must be changed to changing it, and says so only when asked).

// boundMaxPerConn caps the operations in flight on one bound connection,
// below OpenLDAP's conn_max_pending_auth (1000).
const boundMaxPerConn = 100

// BoundConn returns the least loaded bound connection of the clients bound
// as dn, or nil when there is none or each carries boundMaxPerConn.
func (p *Pool) BoundConn(dn string) *Conn {
	m := p.bound.Load()
	if m == nil {
		return nil
	}
	c, load, stale := leastLoaded((*m)[dn])
	if stale {
		p.dropClosedBound()
	}
	if c == nil || load >= boundMaxPerConn {
		return nil
	}
	return c
}

// ReleaseBindAs returns a bind connection on which a client's simple bind
// as dn just succeeded, with no control in its answer. When the clients
// bound as dn could use one more bound connection (wantsBound), it is
// checked and kept as one, on a goroutine of its own; otherwise it goes
// back to the bind connections (ReleaseBind).
func (p *Pool) ReleaseBindAs(c *Conn, dn string) {
	if dn == "" || !p.reserveBound(c, dn) {
		p.ReleaseBind(c)
		return
	}
	go p.adopt(c, dn)
}

// reserveBound counts c as a bound connection being checked when the pool
// wants one more for dn.
func (p *Pool) reserveBound(c *Conn, dn string) bool {
	if p.cfg.MaxBound <= 0 || c.Err() != nil || c.Inflight() > 0 || p.expired(c) {
		return false
	}
	if int(p.boundOpen.Load()) >= p.cfg.MaxBound {
		return false // the common case under a load of binds, without the lock
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() || int(p.boundOpen.Load()) >= p.cfg.MaxBound || !p.wantsBound(dn) {
		return false
	}
	p.boundOpen.Add(1)
	if p.boundChecking == nil {
		p.boundChecking = make(map[string]int)
	}
	p.boundChecking[dn]++
	return true
}

// wantsBound tells whether the clients bound as dn could use one more bound
// connection: below the pool's minimum (Conns) as long as there is one per
// bind, so that their operations in flight each have a connection, as
// operation connections do; above it only once each carries GrowAt, one
// checked at a time. Caller must hold mu.
func (p *Pool) wantsBound(dn string) bool {
	var set []*Conn
	if m := p.bound.Load(); m != nil {
		set = (*m)[dn]
	}
	checking := p.boundChecking[dn]
	switch n := len(set) + checking; {
	case n >= p.cfg.MaxConns:
		return false
	case n < p.cfg.Conns:
		return true
	case checking > 0:
		return false // binds at once as one DN: one is checked at a time
	}
	_, load, _ := leastLoaded(set)
	return load >= p.cfg.GrowAt
}

// adopt checks that c's session may serve every client bound as dn, then
// keeps it as a bound connection and frees its bind slot; a connection
// that fails the check goes back to the bind connections.
func (p *Pool) adopt(c *Conn, dn string) {
	if err := p.checkBound(c, dn); err != nil {
		p.unreserveBound(dn)
		p.ReleaseBind(c)
		return
	}
	c.kind.Store(int32(BoundConn))
	p.mu.Lock()
	p.doneChecking(dn)
	if p.closed.Load() {
		p.boundOpen.Add(-1)
		p.mu.Unlock()
		c.closeGracefully()
		p.releaseBindSlot()
		return
	}
	next := map[string][]*Conn{}
	if m := p.bound.Load(); m != nil {
		next = maps.Clone(*m)
	}
	next[dn] = append(slices.Clip(next[dn]), c)
	p.bound.Store(&next)
	p.mu.Unlock()
	p.opened[BoundConn].Add(1)
	p.releaseBindSlot() // it left the bind connections
}

func (p *Pool) unreserveBound(dn string) {
	p.mu.Lock()
	p.boundOpen.Add(-1)
	p.doneChecking(dn)
	p.mu.Unlock()
}

// checkBound reads the bound client's own entry on c: a session the server
// restricts (a password that must be changed) is refused it.
func (p *Pool) checkBound(c *Conn, dn string) error {
	h := &probeHandler{done: make(chan error, 1)}
	encode := func(dst []byte, id int32) []byte { return ldapwire.AppendBaseSearch(dst, id, dn, []string{"1.1"}, nil) }
	if _, err := c.Send(h, encode, p.cfg.ConnectTimeout); err != nil {
		return err
	}
	if err := <-h.done; err != nil {
		return fmt.Errorf("backend %s: bound connection check: %w", p.server.Name, err)
	}
	return nil
}

// dropClosedBound removes closed connections from the bound ones.
func (p *Pool) dropClosedBound() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setBound(func(c *Conn) bool { return c.isOpen() })
}

// setBound keeps the bound connections keep accepts and counts the others
// gone. Caller must hold mu.
func (p *Pool) setBound(keep func(*Conn) bool) {
	m := p.bound.Load()
	if m == nil {
		return
	}
	next := make(map[string][]*Conn, len(*m))
	for dn, set := range *m {
		var live []*Conn
		for _, c := range set {
			if keep(c) {
				live = append(live, c)
			} else {
				p.boundOpen.Add(-1)
			}
		}
		if len(live) > 0 {
			next[dn] = live
		}
	}
	p.bound.Store(&next)
}

// takeRetiredBound removes from service the bound connections that are
// closed, past their maximum age, or idle for IdleCheck (they are never
// probed: nothing could bind them again), and returns the open ones, to
// be drained and closed.
func (p *Pool) takeRetiredBound() []*Conn {
	idleLimit := int64(0)
	if p.cfg.IdleCheck > 0 {
		idleLimit = p.now().Add(-p.cfg.IdleCheck).UnixNano()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var retired []*Conn
	p.setBound(func(c *Conn) bool {
		switch {
		case c.Err() != nil:
			return false
		case p.expired(c), c.Inflight() == 0 && c.lastUsed.Load() < idleLimit:
			c.draining.Store(true)
			retired = append(retired, c)
			return false
		}
		return true
	})
	return retired
}

// takeAllBound removes every bound connection from service. Caller must
// hold mu.
func (p *Pool) takeAllBound() []*Conn {
	var all []*Conn
	p.setBound(func(c *Conn) bool { all = append(all, c); return false })
	return all
}

// doneChecking ends one check of a bound connection for dn. Caller must
// hold mu.
func (p *Pool) doneChecking(dn string) {
	if p.boundChecking[dn]--; p.boundChecking[dn] <= 0 {
		delete(p.boundChecking, dn)
	}
}
