package backend

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// sweepInterval is how often operation deadlines are checked: a timeout
// fires at most this much late.
const sweepInterval = 10 * time.Millisecond

// sweeper times out operations on every open connection. One goroutine
// checks deadlines every sweepInterval while any operation has one, and
// sleeps otherwise; a timer per operation would cost a runtime timer
// insertion and removal, and an allocation, on every request.
type sweeper struct {
	mu      sync.Mutex // mu guards conns and running
	conns   map[*Conn]struct{}
	running bool

	parked atomic.Bool   // the goroutine waits for wakeCh
	wakeCh chan struct{} // capacity 1
}

// sweep serves every connection of the process.
var sweep = &sweeper{conns: make(map[*Conn]struct{}), wakeCh: make(chan struct{}, 1)}

// add starts watching c.
func (sw *sweeper) add(c *Conn) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.conns[c] = struct{}{}
	if !sw.running {
		sw.running = true
		go sw.run()
	}
}

// remove stops watching c.
func (sw *sweeper) remove(c *Conn) {
	sw.mu.Lock()
	delete(sw.conns, c)
	sw.mu.Unlock()
}

// wake is called after an operation with a deadline was registered: it
// costs an atomic load unless the goroutine sleeps.
func (sw *sweeper) wake() {
	if sw.parked.Load() && sw.parked.CompareAndSwap(true, false) {
		select {
		case sw.wakeCh <- struct{}{}:
		default:
		}
	}
}

// run checks deadlines until no operation has one, then sleeps until wake.
// parked is set before the last scan, so an operation registered after the
// scan looked at its connection finds it set and wakes the goroutine.
func (sw *sweeper) run() {
	ticker := time.NewTicker(sweepInterval)
	defer ticker.Stop()
	var expired []expiredOp
	for {
		sw.parked.Store(true)
		var busy bool
		expired, busy = sw.scan(expired[:0])
		fire(expired)
		clear(expired)
		if busy {
			if !sw.parked.CompareAndSwap(true, false) {
				<-sw.wakeCh // a wake raced the scan: drop its token
			}
			<-ticker.C
			continue
		}
		<-sw.wakeCh
		ticker.Reset(sweepInterval)
	}
}

// expiredOp is an operation past its deadline, already taken from its
// connection's pending ones.
type expiredOp struct {
	conn *Conn
	id   int32
	op   pendingOp
}

// scan collects the expired operations of every connection and reports
// whether any operation with a deadline remains.
func (sw *sweeper) scan(dst []expiredOp) ([]expiredOp, bool) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	now := nanotime()
	busy := false
	for c := range sw.conns {
		var left bool
		dst, left = c.takeExpired(now, dst)
		busy = busy || left
	}
	return dst, busy
}

// takeExpired moves c's operations past their deadline into dst and reports
// whether operations with a deadline are left.
func (c *Conn) takeExpired(now int64, dst []expiredOp) ([]expiredOp, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timed == 0 {
		return dst, false
	}
	held := c.held.Load()
	for id, op := range c.pending {
		if op.deadline != 0 && op.deadline <= now {
			if held && (op.limit == 0 || now < op.limit) { // not read on purpose: the server is not silent
				op.deadline = op.nextDeadline(now)
				c.pending[id] = op
				continue
			}
			c.take(id)
			dst = append(dst, expiredOp{conn: c, id: id, op: op})
		}
	}
	return dst, c.timed > 0
}

// fire ends expired operations, each in its own goroutine: abandoning one
// writes to a server that may be hung, which must not delay the others.
func fire(expired []expiredOp) {
	for _, e := range expired {
		e.conn.inflight.Add(-1)
		go e.fire()
	}
}

// fire ends an operation that timed out.
func (e expiredOp) fire() {
	err := fmt.Errorf("%w: no answer within %s", ErrTimeout, e.op.timeout)
	if e.op.limit != 0 && e.op.deadline >= e.op.limit {
		err = ErrTimeLimit
	}
	e.end(err)
}

// end releases the operation on its server and tells its handler. A bind
// cannot be abandoned: its connection is closed.
func (e expiredOp) end(err error) {
	if e.conn.Kind() == BindConn {
		e.conn.Close(err)
	} else {
		e.conn.sendAbandon(e.id)
	}
	e.op.h.Lost(err)
}
