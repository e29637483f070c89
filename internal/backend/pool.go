package backend

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// PoolConfig sizes and times a server's pool.
type PoolConfig struct {
	Conns            int           // multiplexed operation connections
	BindConns        int           // connections reserved for client binds
	MaxAge           time.Duration // recycle connections older than this
	IdleCheck        time.Duration // probe connections idle for this long
	ConnectTimeout   time.Duration // dial plus service bind
	OperationTimeout time.Duration // also bounds writes and probes
	BindDN, Password string        // service account of operation connections
	MaxPDU           int
	// MaxPerConn caps the load (Conn.Load) of one operation connection;
	// 0 means no cap. OpConn returns ErrBusy when every connection is full.
	MaxPerConn int
	// Leases caps the connections leased to clients at once (Lease);
	// 0 means the default, DefaultLeases.
	Leases int
}

// DefaultLeases is the default cap on leased connections per server.
const DefaultLeases = 64

// PoolStats are cumulative and current connection counts of one pool.
type PoolStats struct {
	OpenOps, OpenBinds, IdleBinds int
	Leased                        int // connections leased to clients now
	LeasesRefused                 int64
	Opened, Recycled, Failed      [kinds]int64 // by Kind
}

// Pool keeps a server's connections: a few multiplexed operation connections
// and a set of bind connections used one bind at a time.
type Pool struct {
	server *Server
	cfg    PoolConfig
	now    func() time.Time

	mu       sync.Mutex // mu guards the fields below
	ops      []*Conn
	dialing  int
	dialWait chan struct{} // closed when the pending first dial ends
	dialErr  error
	closed   bool

	bindSlots chan struct{} // a token per bind connection in use or idle
	idleBinds chan *Conn

	leaseSlots    chan struct{}      // a token per leased connection
	leased        map[*Conn]struct{} // guarded by mu
	leasesRefused atomic.Int64

	opened, recycled, failed [kinds]atomic.Int64
	stop                     chan struct{}
	wg                       sync.WaitGroup
}

// NewPool creates the pool of s and starts its maintenance.
func NewPool(s *Server, cfg PoolConfig) *Pool {
	if cfg.Leases <= 0 {
		cfg.Leases = DefaultLeases
	}
	p := &Pool{server: s, cfg: cfg, now: time.Now,
		bindSlots: make(chan struct{}, cfg.BindConns), idleBinds: make(chan *Conn, cfg.BindConns),
		leaseSlots: make(chan struct{}, cfg.Leases), leased: make(map[*Conn]struct{}),
		stop: make(chan struct{})}
	s.pool = p
	p.wg.Add(1)
	go p.maintain()
	return p
}

// ErrPoolClosed is returned once the pool is shut down.
var ErrPoolClosed = errors.New("backend: pool closed")

// OpConn returns the least loaded operation connection, opening one when
// none is open (waiting at most ctx) and growing the pool under load.
func (p *Pool) OpConn(ctx context.Context) (*Conn, error) {
	for {
		if c, err := p.ReadyOpConn(); c != nil || err != nil {
			return c, err
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrPoolClosed
		}
		if len(p.ops) > 0 { // opened since ReadyOpConn looked
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
// be dialed first: the forwarding fast path needs no context or timer.
func (p *Pool) ReadyOpConn() (*Conn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	c := p.leastLoaded()
	if c == nil {
		p.mu.Unlock()
		return nil, nil
	}
	if c.Inflight() > 0 && len(p.ops)+p.dialing < p.cfg.Conns {
		p.startDial()
	}
	p.mu.Unlock()
	if p.cfg.MaxPerConn > 0 && c.Load() >= p.cfg.MaxPerConn {
		return nil, p.busyError()
	}
	return c, nil
}

// leastLoaded drops closed connections and returns the open one with the
// fewest operations in flight. Caller must hold mu.
func (p *Pool) leastLoaded() *Conn {
	var best *Conn
	bestLoad := 0
	live := p.ops[:0]
	for _, c := range p.ops {
		if !c.isOpen() {
			continue
		}
		live = append(live, c)
		if load := c.Load(); best == nil || load < bestLoad {
			best, bestLoad = c, load
		}
	}
	clear(p.ops[len(live):])
	p.ops = live
	return best
}

// firstDialError returns the error of the last dial when no connection opened.
func (p *Pool) firstDialError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ops) > 0 {
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
	p.dialing++
	go p.dialOp()
}

func (p *Pool) dialOp() {
	c, err := p.dial(context.Background(), OpConn)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dialing--
	p.dialErr = err
	if err == nil {
		if p.closed {
			go c.closeGracefully()
		} else {
			p.ops = append(p.ops, c)
		}
	}
	if p.dialWait != nil {
		close(p.dialWait)
		p.dialWait = nil
	}
}

// dial opens a connection of the given kind, binding operation connections
// as the service account.
func (p *Pool) dial(ctx context.Context, kind Kind) (*Conn, error) {
	return p.dialAs(ctx, kind, kind != BindConn)
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

// BindConn lends a bind connection for one bind; give it back with ReleaseBind.
func (p *Pool) BindConn(ctx context.Context) (*Conn, error) {
	select {
	case p.bindSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("backend %s: all %d bind connections busy: %w", p.server.Name, p.cfg.BindConns, ctx.Err())
	}
	for {
		select {
		case c := <-p.idleBinds:
			if c.Err() == nil && !p.expired(c) {
				return c, nil
			}
			p.retire(c)
		default:
			c, err := p.dial(ctx, BindConn)
			if err != nil {
				<-p.bindSlots
				return nil, err
			}
			return c, nil
		}
	}
}

// DialSASL opens a connection of its own for one client's SASL bind,
// outside the bind connections: a negotiation may span several client
// requests, and what the server keeps of it belongs to that client. Close
// it with Retire when the bind is over.
func (p *Pool) DialSASL(ctx context.Context) (*Conn, error) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
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
	select {
	case p.leaseSlots <- struct{}{}:
	default:
		p.leasesRefused.Add(1)
		return nil, fmt.Errorf("backend %s: %w: %w: all %d leased (pool.leased-connections-per-server)", p.server.Name, ErrBusy, ErrNoLease, p.cfg.Leases)
	}
	c, err := p.dialAs(ctx, LeasedConn, serviceBind)
	if err == nil {
		p.mu.Lock()
		if p.closed {
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
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed || c.Err() != nil || c.Inflight() > 0 {
		c.Close(ErrConnClosed)
	} else {
		p.idleBinds <- c
	}
	<-p.bindSlots
}

func (p *Pool) expired(c *Conn) bool {
	return p.cfg.MaxAge > 0 && p.now().Sub(c.born) >= p.cfg.MaxAge
}

// retire closes a connection that was healthy enough to unbind.
func (p *Pool) retire(c *Conn) {
	if c.Err() == nil {
		p.recycled[c.kind].Add(1)
		c.closeGracefully()
	}
}

// Stats returns the pool's counters.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	st := PoolStats{OpenOps: len(p.ops), IdleBinds: len(p.idleBinds), Leased: len(p.leased)}
	p.mu.Unlock()
	st.LeasesRefused = p.leasesRefused.Load()
	st.OpenBinds = len(p.bindSlots) + st.IdleBinds
	if st.OpenBinds > p.cfg.BindConns {
		st.OpenBinds = p.cfg.BindConns
	}
	for k := range kinds {
		st.Opened[k], st.Recycled[k], st.Failed[k] = p.opened[k].Load(), p.recycled[k].Load(), p.failed[k].Load()
	}
	return st
}

// Close shuts the pool: every connection is closed and waiting operations fail.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	ops := p.ops
	p.ops = nil
	for c := range p.leased {
		ops = append(ops, c) // their clients' operations are told they are lost
	}
	p.mu.Unlock()
	close(p.stop)
	p.wg.Wait()
	for _, c := range ops {
		c.closeGracefully()
	}
	for {
		select {
		case c := <-p.idleBinds:
			c.closeGracefully()
		default:
			return
		}
	}
}

// probe performs a light read on c and reports whether it answered in time.
func (p *Pool) probe(c *Conn) error {
	h := &probeHandler{done: make(chan error, 1)}
	if _, err := c.Send(h, ldapwire.AppendRootDSEProbe, p.cfg.ConnectTimeout); err != nil {
		return err
	}
	err := <-h.done
	if errors.Is(err, ErrTimeout) {
		return fmt.Errorf("backend %s: idle probe: no answer within %s", p.server.Name, p.cfg.ConnectTimeout)
	}
	return err
}

// probeHandler waits for the end of a probe search.
type probeHandler struct{ done chan error }

func (h *probeHandler) Response(_ []byte, msg ldapwire.Message, final bool) Flusher {
	if !final {
		return nil
	}
	res, err := ldapwire.ParseResult(msg.Body)
	if err == nil && res.Code != ldapwire.Success {
		err = fmt.Errorf("idle probe: result %d %s", res.Code, res.Diagnostic)
	}
	h.done <- err
	return nil
}

func (h *probeHandler) Lost(err error) { h.done <- err }
