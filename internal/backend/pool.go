package backend

import (
	"context"
	"errors"
	"fmt"
	"github.com/ldapmux/ldapmux/internal/evloop"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// PoolConfig sizes and times a server's pool.
type PoolConfig struct {
	// Conns is the minimum of multiplexed operation connections: opened as
	// soon as operations overlap, and what the pool shrinks back to.
	Conns int
	// MaxConns is the most operation connections the pool grows to under
	// load; below Conns it is raised to Conns.
	MaxConns int
	// GrowAt is the load (Conn.Load) every operation connection must carry
	// before the pool opens another one; 0 means DefaultGrowAt.
	GrowAt int
	// BindConns is the minimum of connections reserved for client binds,
	// MaxBindConns the most they grow to while binds wait for one (below
	// BindConns it is raised to BindConns).
	BindConns, MaxBindConns int
	MaxAge                  time.Duration // recycle connections older than this
	// IdleCheck probes connections idle for this long; connections above
	// the minimum are closed instead.
	IdleCheck        time.Duration
	ConnectTimeout   time.Duration // dial plus service bind
	OperationTimeout time.Duration // also bounds writes and probes
	BindDN, Password string        // service account of operation connections
	MaxPDU           int
	// MaxPerConn caps the load (Conn.Load) of one operation connection;
	// 0 means no cap. OpConn returns ErrBusy when every connection is full.
	MaxPerConn int
	// MaxBound caps the bound connections (bound.go) kept at once; 0
	// keeps none.
	MaxBound int
	// Leases caps the connections leased to clients at once (Lease);
	// 0 means the default, DefaultLeases.
	Leases int
}

// Pool sizing defaults.
const (
	// DefaultLeases is the default cap on leased connections per server.
	DefaultLeases = 64
	// DefaultGrowAt is the default load per operation connection that
	// makes the pool grow.
	DefaultGrowAt = 4
	// AnonMaxPerConn caps the operations in flight on one unbound
	// connection: OpenLDAP closes an anonymous session with more than
	// conn_max_pending requests queued (default 100), which would end
	// every anonymous operation multiplexed on it.
	AnonMaxPerConn = 100
	// maxGrowDials bounds the growth dials in progress at once per pool.
	maxGrowDials = 2
	// growBackoffMin and growBackoffMax bound the pause in growth after a
	// failed dial; it doubles with each failure in a row.
	growBackoffMin = time.Second
	growBackoffMax = 30 * time.Second
)

// withDefaults fills what the caller left at zero.
func (cfg PoolConfig) withDefaults() PoolConfig {
	if cfg.Leases <= 0 {
		cfg.Leases = DefaultLeases
	}
	if cfg.GrowAt <= 0 {
		cfg.GrowAt = DefaultGrowAt
	}
	cfg.Conns = max(cfg.Conns, 1)
	cfg.MaxConns = max(cfg.MaxConns, cfg.Conns)
	cfg.BindConns = max(cfg.BindConns, 1)
	cfg.MaxBindConns = max(cfg.MaxBindConns, cfg.BindConns)
	return cfg
}

// PoolStats are cumulative and current connection counts of one pool.
type PoolStats struct {
	OpenOps, OpenBinds, IdleBinds int
	// DialingOps is the operation connections being opened now.
	DialingOps int
	// OpenAnon and DialingAnon are the unbound operation connections for
	// anonymous clients open and being opened (Pool.Anonymous); they
	// have the same bounds as the operation connections.
	OpenAnon, DialingAnon int
	// OpenBound is the bound connections (bound.go) open, MaxBound their cap.
	OpenBound, MaxBound int
	// MinOps, MaxOps, MinBinds, MaxBinds are the configured bounds.
	MinOps, MaxOps, MinBinds, MaxBinds int
	Leased                             int // connections leased to clients now
	LeasesRefused                      int64
	Opened, Recycled, Failed           [kinds]int64 // by Kind
	// Grown counts connections opened under load above the minimum,
	// Shrunk those closed for idleness above it, by Kind.
	Grown, Shrunk [kinds]int64
}

// Pool keeps a server's connections: multiplexed operation connections and
// bind connections used one bind at a time, both growing under load and
// shrinking when idle between a minimum and a maximum.
type Pool struct {
	server *Server
	cfg    PoolConfig
	now    func() time.Time
	// opKind is the kind of the operation connections: OpConn, bound as
	// the service account, or AnonConn, never bound, in the pool that
	// Anonymous returns.
	opKind Kind
	// anon holds the unbound operation connections of anonymous clients;
	// nil in that pool itself.
	anon *Pool

	// ops is the open operation connections, oldest first: an immutable
	// slice replaced under mu, read without locking by every operation.
	ops     atomic.Pointer[[]*Conn]
	dialing atomic.Int32 // operation connections being opened; written under mu
	closed  atomic.Bool  // written under mu

	mu       sync.Mutex    // mu guards the fields below and writes of ops
	dialWait chan struct{} // closed when the pending first dial ends
	dialErr  error
	// growPause is when growth may resume after failed dials (p.now()
	// nanoseconds), growBackoff the pause the next failure sets.
	growPause   atomic.Int64
	growBackoff time.Duration

	bindSlots chan struct{} // a token per open bind connection (in use, idle or dialing)
	idleBinds chan *Conn
	bindRoom  chan struct{} // nudged when a bind connection closed or a growth dial ended
	// bindDialing counts bind connections being opened above the minimum.
	bindDialing atomic.Int32

	// bound holds the bound connections by the DN they are bound as
	// (bound.go): an immutable map replaced under mu, read without locking
	// by every operation of a bound client.
	bound     atomic.Pointer[map[string][]*Conn]
	boundOpen atomic.Int32 // bound connections kept or being checked; written under mu
	// boundChecking counts, by DN, the bound connections being checked;
	// guarded by mu.
	boundChecking map[string]int

	leaseSlots    chan struct{}      // a token per leased connection
	leased        map[*Conn]struct{} // guarded by mu
	leasesRefused atomic.Int64

	opened, recycled, failed, grown, shrunk [kinds]atomic.Int64
	stop                                    chan struct{}
	wg                                      sync.WaitGroup
}

// NewPool creates the pool of s and starts its maintenance.
func NewPool(s *Server, cfg PoolConfig) *Pool {
	p := newPool(s, cfg, OpConn)
	anon := cfg
	anon.BindDN, anon.Password, anon.MaxBound = "", "", 0
	if anon.MaxPerConn <= 0 || anon.MaxPerConn > AnonMaxPerConn {
		anon.MaxPerConn = AnonMaxPerConn
	}
	p.anon = newPool(s, anon, AnonConn)
	s.pool = p
	return p
}

// newPool creates a pool whose operation connections are of kind opKind.
func newPool(s *Server, cfg PoolConfig, opKind Kind) *Pool {
	cfg = cfg.withDefaults()
	p := &Pool{server: s, cfg: cfg, now: time.Now, opKind: opKind,
		bindSlots: make(chan struct{}, cfg.MaxBindConns), idleBinds: make(chan *Conn, cfg.MaxBindConns),
		bindRoom:   make(chan struct{}, 1),
		leaseSlots: make(chan struct{}, cfg.Leases), leased: make(map[*Conn]struct{}),
		stop: make(chan struct{}), growBackoff: growBackoffMin}
	p.ops.Store(new([]*Conn))
	p.wg.Add(1)
	go p.maintain()
	return p
}

// Anonymous returns the pool of unbound operation connections, on which
// anonymous clients' operations run without a Proxied Authorization
// control: the server sees them exactly as on the client's own unbound
// connection, and spares the control's cost. It opens its connections
// on the first anonymous operation and follows the load within the same
// bounds as the operation connections.
func (p *Pool) Anonymous() *Pool {
	if p.anon == nil {
		return p
	}
	return p.anon
}

// ErrPoolClosed is returned once the pool is shut down.
var ErrPoolClosed = errors.New("backend: pool closed")

// OpConn returns the least loaded operation connection, opening one when
// none is open (waiting at most ctx) and growing the pool under load.
func (p *Pool) OpConn(ctx context.Context) (*Conn, error) {
	for {
		if c, err := p.ReadyOpConn(nil); c != nil || err != nil {
			return c, err
		}
		p.mu.Lock()
		if p.closed.Load() {
			p.mu.Unlock()
			return nil, ErrPoolClosed
		}
		if len(*p.ops.Load()) > 0 { // opened since ReadyOpConn looked
			p.mu.Unlock()
			continue
		}
		if p.dialWait == nil {
			p.dialWait = make(chan struct{})
			p.startDial()
		}
		wait := p.dialWait
		p.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, fmt.Errorf("backend %s: no connection: %w", p.server.Name, ctx.Err())
		}
		if err := p.firstDialError(); err != nil {
			return nil, err
		}
	}
}

// ReadyOpConn returns the least loaded open operation connection without
// waiting (growing the pool under load), or nil and no error when one must
// be dialed first: the forwarding fast path needs no context, timer or lock.
// A connection read by near, the event loop the caller runs on, is
// preferred while it carries less than the load at which the pool grows:
// the response is then handled by the loop that sent the request, without
// waking another.
func (p *Pool) ReadyOpConn(near *evloop.Loop) (*Conn, error) {
	if p.closed.Load() {
		return nil, ErrPoolClosed
	}
	ops := *p.ops.Load()
	c, load, stale := leastLoaded(ops)
	if stale {
		p.dropClosed()
	}
	if c == nil {
		return nil, nil
	}
	if near != nil && c.Loop() != near {
		if nc, nload := leastLoadedOn(ops, near); nc != nil && nload < p.cfg.GrowAt {
			c = nc
		}
	}
	if p.wantsGrowth(len(ops), load) {
		p.grow(load)
	}
	if p.cfg.MaxPerConn > 0 && load >= p.cfg.MaxPerConn {
		return nil, p.busyError()
	}
	return c, nil
}

// leastLoaded returns the open connection with the fewest operations in
// flight, the oldest among equals, so that connections beyond what the load
// needs stay idle and can be closed; stale reports closed ones in ops.
func leastLoaded(ops []*Conn) (best *Conn, bestLoad int, stale bool) {
	for _, c := range ops {
		if !c.isOpen() {
			stale = true
			continue
		}
		if load := c.Load(); best == nil || load < bestLoad {
			best, bestLoad = c, load
			if load == 0 {
				break
			}
		}
	}
	return best, bestLoad, stale
}

// leastLoadedOn is leastLoaded among the open connections read by loop.
func leastLoadedOn(ops []*Conn, loop *evloop.Loop) (best *Conn, bestLoad int) {
	for _, c := range ops {
		if c.Loop() != loop || !c.isOpen() {
			continue
		}
		if load := c.Load(); best == nil || load < bestLoad {
			best, bestLoad = c, load
			if load == 0 {
				break
			}
		}
	}
	return best, bestLoad
}

// dropClosed removes closed connections from ops.
func (p *Pool) dropClosed() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setOps(func(c *Conn) bool { return c.isOpen() })
}

// setOps replaces ops by those of its connections keep accepts, oldest
// first. Caller must hold mu.
func (p *Pool) setOps(keep func(*Conn) bool) {
	old := *p.ops.Load()
	live := make([]*Conn, 0, len(old))
	for _, c := range old {
		if keep(c) {
			live = append(live, c)
		}
	}
	p.ops.Store(&live)
}

// addOp appends an opened connection to ops. Caller must hold mu.
func (p *Pool) addOp(c *Conn) {
	old := *p.ops.Load()
	ops := make([]*Conn, len(old), len(old)+1)
	copy(ops, old)
	ops = append(ops, c)
	p.ops.Store(&ops)
}

// wantsGrowth tells, without locking, whether the least loaded of n open
// connections carries enough to open another: below the minimum as soon as
// operations overlap, above it once every connection carries GrowAt, a
// few dials at a time. Growth waits while the server is marked
// unavailable and after a failed dial.
func (p *Pool) wantsGrowth(n, load int) bool {
	dialing := int(p.dialing.Load())
	n += dialing
	switch {
	case n < p.cfg.Conns:
		return load > 0 && p.growthAllowed()
	case n < p.cfg.MaxConns:
		return load >= p.cfg.GrowAt && dialing < maxGrowDials && p.growthAllowed()
	}
	return false
}

// grow opens one more operation connection unless, under the lock, it is
// no longer wanted.
func (p *Pool) grow(load int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(*p.ops.Load())
	if p.closed.Load() || !p.wantsGrowth(n, load) {
		return
	}
	if n+int(p.dialing.Load()) >= p.cfg.Conns {
		p.grown[p.opKind].Add(1)
	}
	p.startDial()
}

// growthAllowed reports whether the pool may open connections beyond those
// it must have: not while the server is unavailable or after a failed dial.
func (p *Pool) growthAllowed() bool {
	return !p.server.down.Load() && p.now().UnixNano() >= p.growPause.Load()
}

// dialed records the outcome of a dial for the growth pause.
func (p *Pool) dialed(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		p.growBackoff = growBackoffMin
		p.growPause.Store(0)
		return
	}
	p.growPause.Store(p.now().Add(p.growBackoff).UnixNano())
	p.growBackoff = min(2*p.growBackoff, growBackoffMax)
}

// firstDialError returns the error of the last dial when no connection opened.
func (p *Pool) firstDialError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(*p.ops.Load()) > 0 {
		return nil
	}
	if p.dialErr != nil {
		return p.dialErr
	}
	return fmt.Errorf("backend %s: no connection", p.server.Name)
}

// startDial opens one operation connection in the background.
// Caller must hold mu.
func (p *Pool) startDial() {
	p.dialing.Add(1)
	go p.dialOp()
}

func (p *Pool) dialOp() {
	c, err := p.dial(context.Background(), p.opKind)
	p.dialed(err)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dialing.Add(-1)
	p.dialErr = err
	if err == nil {
		if p.closed.Load() {
			go c.closeGracefully()
		} else {
			c.maxLoad = p.cfg.MaxPerConn
			p.addOp(c)
		}
	}
	if p.dialWait != nil {
		close(p.dialWait)
		p.dialWait = nil
	}
}

// dial opens a connection of the given kind, binding operation and leased
// connections as the service account.
func (p *Pool) dial(ctx context.Context, kind Kind) (*Conn, error) {
	return p.dialAs(ctx, kind, kind == OpConn || kind == LeasedConn)
}

// dialAs opens a connection, bound as the service account when serviceBind.
func (p *Pool) dialAs(ctx context.Context, kind Kind, serviceBind bool) (*Conn, error) {
	bindDN := ""
	if serviceBind {
		bindDN = p.cfg.BindDN
	}
	c, err := Dial(ctx, p.server, kind, bindDN, p.cfg.Password, p.cfg.ConnectTimeout, p.cfg.MaxPDU)
	if err != nil {
		p.failed[kind].Add(1)
		return nil, err
	}
	c.writeTimeout = p.cfg.OperationTimeout
	c.born = p.now().Add(-p.ageJitter())
	p.opened[kind].Add(1)
	return c, nil
}

// ageJitter spreads recycling so that connections opened together are not
// all closed together.
func (p *Pool) ageJitter() time.Duration {
	if p.cfg.MaxAge <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(p.cfg.MaxAge)/10 + 1))
}

// BindConn lends a bind connection for one bind; give it back with
// ReleaseBind. An idle one is lent first; when none is idle, another is
// opened up to MaxBindConns (past BindConns only while growth is allowed),
// else the bind waits for one at most ctx.
func (p *Pool) BindConn(ctx context.Context) (*Conn, error) {
	for {
		if c := p.idleBind(p.discardBind); c != nil {
			return c, nil
		}
		if ok, growing := p.takeBindSlot(); ok {
			c, err := p.dial(ctx, BindConn)
			p.dialed(err)
			if growing {
				p.bindDialing.Add(-1)
				p.nudgeBindWaiter() // another growth dial may start
			}
			if err != nil {
				p.releaseBindSlot()
				return nil, err
			}
			return c, nil
		}
		select {
		case c := <-p.idleBinds:
			if p.usableBind(c) {
				return c, nil
			}
		case <-p.bindRoom:
		case <-ctx.Done():
			return nil, fmt.Errorf("backend %s: all %d bind connections busy: %w", p.server.Name, len(p.bindSlots), ctx.Err())
		}
	}
}

// IdleBindConn lends an idle bind connection without waiting, or returns
// nil when none is idle (BindConn then opens one or waits). One no longer
// fit for a bind is closed on a goroutine of its own: the caller may be an
// event loop, which never writes an unbind itself.
func (p *Pool) IdleBindConn() *Conn {
	if p.closed.Load() {
		return nil
	}
	return p.idleBind(func(c *Conn) { go p.discardBind(c) })
}

// idleBind takes idle bind connections until one is fit for a bind, and
// hands those that are not to discard; nil when none is left.
func (p *Pool) idleBind(discard func(*Conn)) *Conn {
	for {
		select {
		case c := <-p.idleBinds:
			if p.fitForBind(c) {
				return c
			}
			discard(c)
		default:
			return nil
		}
	}
}

// usableBind reports whether an idle bind connection may be lent, and
// retires it when not.
func (p *Pool) usableBind(c *Conn) bool {
	if p.fitForBind(c) {
		return true
	}
	p.discardBind(c)
	return false
}

// fitForBind reports whether an idle bind connection is open and young
// enough to be lent.
func (p *Pool) fitForBind(c *Conn) bool { return c.Err() == nil && !p.expired(c) }

// discardBind retires an idle bind connection (unfit for a bind, or one
// the pool no longer needs) and frees its slot.
func (p *Pool) discardBind(c *Conn) {
	p.retire(c)
	p.releaseBindSlot()
}

// takeBindSlot reserves the opening of one more bind connection: always
// below the minimum, up to the maximum while growth is allowed and fewer
// than maxGrowDials growth dials are in progress (growing is then true:
// the caller ends it with bindDialing.Add(-1)).
func (p *Pool) takeBindSlot() (ok, growing bool) {
	open := len(p.bindSlots)
	if open >= p.cfg.MaxBindConns {
		return false, false
	}
	if growing = open >= p.cfg.BindConns; growing {
		if !p.growthAllowed() || !p.reserveBindDial() {
			return false, false
		}
	}
	select {
	case p.bindSlots <- struct{}{}:
		if growing {
			p.grown[BindConn].Add(1)
		}
		return true, growing
	default:
		if growing {
			p.bindDialing.Add(-1)
		}
		return false, false
	}
}

// reserveBindDial counts one more growth dial of a bind connection unless
// maxGrowDials are in progress.
func (p *Pool) reserveBindDial() bool {
	for {
		n := p.bindDialing.Load()
		if n >= maxGrowDials {
			return false
		}
		if p.bindDialing.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// nudgeBindWaiter wakes one bind waiting for room to open a connection.
func (p *Pool) nudgeBindWaiter() {
	select {
	case p.bindRoom <- struct{}{}:
	default:
	}
}

// releaseBindSlot counts a bind connection closed and wakes a bind waiting
// for room to open one.
func (p *Pool) releaseBindSlot() {
	<-p.bindSlots
	p.nudgeBindWaiter()
}

// DialSASL opens a connection of its own for one client's SASL bind,
// outside the bind connections: a negotiation may span several client
// requests, and what the server keeps of it belongs to that client. Close
// it with Retire when the bind is over.
func (p *Pool) DialSASL(ctx context.Context) (*Conn, error) {
	if p.closed.Load() {
		return nil, ErrPoolClosed
	}
	return p.dial(ctx, BindConn)
}

// ErrNoLease is wrapped (with ErrBusy) when every leasable connection of a
// server is leased.
var ErrNoLease = errors.New("no connection left to lease")

// Lease opens a connection, bound as the service account like the
// operation connections, for one client's state that the server keeps per
// connection: nobody else's operation is ever sent on it, recycling and
// idle probes leave it alone, and it stays open until ReleaseLease. At most
// PoolConfig.Leases are leased at once; past that, an error wrapping
// ErrBusy and ErrNoLease.
func (p *Pool) Lease(ctx context.Context) (*Conn, error) { return p.lease(ctx, true) }

// LeaseUnbound leases a connection that is not bound at all: in
// client-bind mode a client's own bind, or its anonymous operations, go on
// it. Same cap and ReleaseLease as Lease.
func (p *Pool) LeaseUnbound(ctx context.Context) (*Conn, error) { return p.lease(ctx, false) }

func (p *Pool) lease(ctx context.Context, serviceBind bool) (*Conn, error) {
	if err := p.takeLeaseSlot(ctx); err != nil {
		return nil, err
	}
	c, err := p.dialAs(ctx, LeasedConn, serviceBind)
	if err == nil {
		p.mu.Lock()
		if p.closed.Load() {
			err = ErrPoolClosed
		} else {
			p.leased[c] = struct{}{}
		}
		p.mu.Unlock()
	}
	if err != nil {
		if c != nil {
			c.Close(err)
		}
		<-p.leaseSlots
		return nil, err
	}
	return c, nil
}

// takeLeaseSlot reserves a lease; when every one is taken it waits, within
// ctx, for one to end (a burst of paged or sync searches, each short), and
// past that refuses with an error wrapping ErrBusy and ErrNoLease.
func (p *Pool) takeLeaseSlot(ctx context.Context) error {
	select { // a free slot first, even when ctx is already done
	case p.leaseSlots <- struct{}{}:
		return nil
	default:
	}
	select {
	case p.leaseSlots <- struct{}{}:
		return nil
	case <-ctx.Done():
	case <-p.stop:
	}
	p.leasesRefused.Add(1)
	return fmt.Errorf("backend %s: %w: %w: all %d leased, none ended in time (pool.leased-connections-per-server)", p.server.Name, ErrBusy, ErrNoLease, p.cfg.Leases)
}

// LeaseBind makes c, a bind connection lent for a bind that succeeded, a
// leased connection (end it with ReleaseLease): the session the bind opened
// on it becomes its client's own. False when every leasable connection is
// leased (c is then still a bind connection, to give back).
func (p *Pool) LeaseBind(c *Conn) bool {
	select {
	case p.leaseSlots <- struct{}{}:
	default:
		p.leasesRefused.Add(1)
		return false
	}
	p.mu.Lock()
	if p.closed.Load() || c.Err() != nil {
		p.mu.Unlock()
		<-p.leaseSlots
		return false
	}
	c.kind.Store(int32(LeasedConn))
	p.leased[c] = struct{}{}
	p.mu.Unlock()
	p.opened[LeasedConn].Add(1)
	p.releaseBindSlot() // it left the bind connections
	return true
}

// ReleaseLease ends a lease: the connection, and whatever state the server
// keeps on it, is closed.
func (p *Pool) ReleaseLease(c *Conn) {
	p.mu.Lock()
	_, mine := p.leased[c]
	delete(p.leased, c)
	p.mu.Unlock()
	if !mine {
		return
	}
	if c.Err() == nil {
		p.recycled[LeasedConn].Add(1)
	}
	c.closeGracefully()
	<-p.leaseSlots
}

// Retire unbinds and closes a connection the pool does not hold.
func (c *Conn) Retire() { c.closeGracefully() }

// ReleaseBind returns a bind connection; a broken one is closed.
func (p *Pool) ReleaseBind(c *Conn) {
	if p.closed.Load() || c.Err() != nil || c.Inflight() > 0 {
		c.Close(ErrConnClosed)
		p.releaseBindSlot()
		return
	}
	p.idleBinds <- c     // never blocks: it holds as many as there are slots
	if p.closed.Load() { // Close may have drained idleBinds already
		p.closeIdleBinds()
	}
}

func (p *Pool) expired(c *Conn) bool {
	return p.cfg.MaxAge > 0 && p.now().Sub(c.born) >= p.cfg.MaxAge
}

// retire closes a connection that was healthy enough to unbind.
func (p *Pool) retire(c *Conn) {
	if c.Err() == nil {
		p.recycled[c.Kind()].Add(1)
		c.closeGracefully()
	}
}

// Stats returns the pool's counters.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	st := PoolStats{OpenOps: len(*p.ops.Load()), DialingOps: int(p.dialing.Load()), Leased: len(p.leased),
		OpenBound: int(p.boundOpen.Load()), MaxBound: p.cfg.MaxBound}
	p.mu.Unlock()
	st.IdleBinds, st.OpenBinds = len(p.idleBinds), len(p.bindSlots)
	st.MinOps, st.MaxOps, st.MinBinds, st.MaxBinds = p.cfg.Conns, p.cfg.MaxConns, p.cfg.BindConns, p.cfg.MaxBindConns
	st.LeasesRefused = p.leasesRefused.Load()
	for k := range kinds {
		st.Opened[k], st.Recycled[k], st.Failed[k] = p.opened[k].Load(), p.recycled[k].Load(), p.failed[k].Load()
		st.Grown[k], st.Shrunk[k] = p.grown[k].Load(), p.shrunk[k].Load()
	}
	if p.anon != nil {
		a := p.anon.Stats() // counted under AnonConn alone
		st.OpenAnon, st.DialingAnon = a.OpenOps, a.DialingOps
		for k := range kinds {
			st.Opened[k] += a.Opened[k]
			st.Recycled[k] += a.Recycled[k]
			st.Failed[k] += a.Failed[k]
			st.Grown[k] += a.Grown[k]
			st.Shrunk[k] += a.Shrunk[k]
		}
	}
	return st
}

// Close shuts the pool: every connection is closed and waiting operations fail.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed.Load() {
		p.mu.Unlock()
		return
	}
	p.closed.Store(true)
	ops := append([]*Conn(nil), *p.ops.Load()...)
	p.ops.Store(new([]*Conn))
	for c := range p.leased {
		ops = append(ops, c) // their clients' operations are told they are lost
	}
	ops = append(ops, p.takeAllBound()...)
	p.mu.Unlock()
	close(p.stop)
	p.wg.Wait()
	for _, c := range ops {
		c.closeGracefully()
	}
	p.closeIdleBinds()
	if p.anon != nil {
		p.anon.Close()
	}
}

// closeIdleBinds closes the bind connections waiting in the pool.
func (p *Pool) closeIdleBinds() {
	for {
		select {
		case c := <-p.idleBinds:
			c.closeGracefully()
			p.releaseBindSlot()
		default:
			return
		}
	}
}

// probe performs a light read on c and reports whether it answered in time.
// On an unbound connection any result will do: a server that refuses
// anonymous clients (OpenLDAP `require authc`) answers the read with an
// error, and still shows the connection alive.
func (p *Pool) probe(c *Conn) error {
	h := &probeHandler{done: make(chan error, 1), anyResult: p.opKind == AnonConn}
	if _, err := c.Send(h, ldapwire.AppendRootDSEProbe, p.cfg.ConnectTimeout); err != nil {
		return err
	}
	err := <-h.done
	if errors.Is(err, ErrTimeout) {
		return fmt.Errorf("backend %s: idle probe: no answer within %s", p.server.Name, p.cfg.ConnectTimeout)
	}
	return err
}

// probeHandler waits for the end of a probe search; unless anyResult, a
// result other than success is an error.
type probeHandler struct {
	done      chan error
	anyResult bool
}

func (h *probeHandler) Response(_ []byte, msg ldapwire.Message, final bool) Flusher {
	if !final {
		return nil
	}
	res, err := ldapwire.ParseResult(msg.Body)
	if err == nil && res.Code != ldapwire.Success && !h.anyResult {
		err = fmt.Errorf("idle probe: result %d %s", res.Code, res.Diagnostic)
	}
	h.done <- err
	return nil
}

func (h *probeHandler) Lost(err error) { h.done <- err }
