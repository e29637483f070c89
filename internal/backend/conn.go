package backend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ldapmux/ldapmux/internal/evloop"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// ErrConnClosed is returned for operations on a connection that is gone.
var ErrConnClosed = errors.New("backend: connection closed")

// Handler receives the responses of one operation sent on a Conn. Both
// methods run on the connection's reader goroutine (Lost also on whichever
// goroutine closes the connection or times the operation out) and must not
// block: a slow handler would stall every operation multiplexed on the
// connection.
type Handler interface {
	// Response is called for every response message; frame and msg are only
	// valid during the call. final is true for the last one. It returns
	// what must be flushed once the reader has no more buffered responses
	// (nil when nothing).
	Response(frame []byte, msg ldapwire.Message, final bool) Flusher
	// Lost is called when the connection fails or the operation's timeout
	// passes (the error then wraps ErrTimeout) before the final response.
	Lost(err error)
}

// Flusher is where handlers put responses: flushed once per read batch, so
// that the many entries of one read reach a client in one write.
type Flusher interface{ Flush() }

// Backlog is implemented by a Flusher whose client can make a connection
// read for it alone (a leased one) wait: Backlogged reports whether the
// client has more queued than it should, and WhenDrained calls resume once
// it has read most of it (at once when it has, or is gone). The server then
// waits for the client as it would on the client's own connection, rather
// than the client being dropped for what piles up (a replica's refresh, a
// large export read slowly).
type Backlog interface {
	Backlogged() bool
	WhenDrained(resume func())
}

// ErrTimeout is wrapped by the error Lost receives when an operation got no
// final response within the timeout given to Send. The connection has sent
// the server an abandon (a bind connection is closed instead).
var ErrTimeout = errors.New("backend: operation timed out")

// pendingOp is an operation waiting for its final response.
type pendingOp struct {
	h        Handler
	deadline int64         // nanotime; 0 when the operation has no timeout
	timeout  time.Duration // silence allowed between responses
	limit    int64         // nanotime cap on the whole operation; 0 when none
	// movable: the operation may go to another server while the server
	// has sent nothing for it (Timing.Movable); answered: it has.
	movable, answered bool
}

// Timing bounds one operation sent with SendTimed.
type Timing struct {
	// Batch, when not nil, is the event loop whose batch the caller runs
	// in (on its goroutine): the request may be written when the batch
	// ends, together with the other requests the batch sends on this
	// connection.
	Batch *evloop.Loop
	// Silence is how long the server may stay silent, before the first
	// response and between responses: an operation still receiving search
	// entries is not timed out. 0 means no timeout at all.
	Silence time.Duration
	// Total, when not 0, caps the whole operation however busy the server.
	Total time.Duration
	// Movable marks an operation that may be sent to another server as
	// long as this one has sent nothing for it (a read): a server found
	// not answering gives it up at once (Server.GiveUpInFlight) rather than
	// at its timeout.
	Movable bool
}

// ErrTimeLimit is wrapped by the error Lost receives when an operation
// reached its Timing.Total; it also wraps ErrTimeout.
var ErrTimeLimit = fmt.Errorf("%w: time limit reached", ErrTimeout)

// nextDeadline is when op times out if the server stays silent from now.
func (op *pendingOp) nextDeadline(now int64) int64 {
	d := now + int64(op.timeout)
	if op.limit != 0 && op.limit < d {
		d = op.limit
	}
	return d
}

// Kind tells operation connections from bind connections.
type Kind int

// Connection kinds.
const (
	OpConn Kind = iota
	BindConn
	// LeasedConn is an operation connection lent to one client for state
	// the server keeps per connection (paging, VLV, long-lived searches).
	LeasedConn
	// AnonConn is a multiplexed operation connection that is never bound:
	// anonymous clients' operations go there, without a Proxied
	// Authorization control, exactly as on a client's own unbound
	// connection (Pool.Anonymous).
	AnonConn
	// BoundConn is a bind connection that a client's bind left bound as
	// that client, kept to carry, multiplexed and without a control, the
	// operations of clients bound as the same DN (bound.go).
	BoundConn
)

// kinds is every Kind, for counters indexed by Kind.
const kinds = 5

func (k Kind) String() string {
	switch k {
	case BindConn:
		return "bind"
	case LeasedConn:
		return "leased"
	case AnonConn:
		return "anonymous"
	case BoundConn:
		return "bound"
	}
	return "operation"
}

// Conn is one connection to a backend server. Many operations share it: each
// gets a connection-local message ID, and one reader goroutine owns the
// dispatch of responses by that ID.
type Conn struct {
	server *Server
	// kind changes at most once, when a bind connection becomes a bound
	// one (bound.go); read from any goroutine.
	kind atomic.Int32
	nc   net.Conn
	born time.Time

	wmu       sync.Mutex // wmu guards the fields below
	queued    []byte     // requests waiting for the write in progress
	spare     []byte     // an empty buffer to swap with queued
	writing   bool       // a sender is writing: others queue behind it
	batched   bool       // an event loop writes the queue at the end of its batch
	wdeadline time.Time  // write deadline armed on nc

	mu      sync.Mutex // mu guards the fields below
	pending map[int32]pendingOp
	nextID  int32
	timed   int   // pending operations with a deadline
	err     error // set once the connection is closed

	writeTimeout time.Duration
	// maxLoad, when above 0, caps Load at every send (PoolConfig.MaxPerConn
	// of a shared operation connection); set before the connection is used.
	maxLoad int

	inflight atomic.Int32 // incremented under mu, where maxLoad is checked
	// held: a leased connection not read while its client drains what it
	// was sent (Backlog); its operations' silence does not count then.
	held     atomic.Bool
	closed   atomic.Bool  // set with err
	ghosts   ghosts       // abandoned operations the server may still hold (ghosts.go)
	lastUsed atomic.Int64 // unix nanoseconds
	draining atomic.Bool
	done     chan struct{}
	events   *eventReader   // set when an event loop reads the connection
	rawOut   *evloop.Socket // non-blocking writes on plain TCP; nil under TLS

	flushBatchFn func() // flushBatch, bound once
}

// Dial opens a connection and, when bindDN is not empty, binds it with a
// simple bind. The whole handshake is bounded by timeout.
func Dial(ctx context.Context, s *Server, kind Kind, bindDN, password string, timeout time.Duration, maxPDU int) (*Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", s.Address)
	if err != nil {
		return nil, fmt.Errorf("backend %s: connect %s: %w", s.Name, s.Address, err)
	}
	if nc, err = s.secure(ctx, nc); err != nil {
		return nil, fmt.Errorf("backend %s: %w", s.Name, err)
	}
	c := &Conn{server: s, nc: nc, born: time.Now(),
		pending: make(map[int32]pendingOp), done: make(chan struct{})}
	c.kind.Store(int32(kind))
	c.lastUsed.Store(time.Now().UnixNano())
	c.flushBatchFn = c.flushBatch
	stream := newConnStream(nc)
	c.rawOut = stream.sock
	reader := ldapwire.NewReader(stream, maxPDU)
	if bindDN != "" {
		deadline, _ := ctx.Deadline()
		if err := c.serviceBind(reader, bindDN, password, deadline); err != nil {
			nc.Close()
			return nil, fmt.Errorf("backend %s: %w", s.Name, err)
		}
		if err := c.detectOnce(reader, deadline); err != nil {
			nc.Close()
			return nil, fmt.Errorf("backend %s: %w", s.Name, err)
		}
	}
	c.startReading(reader, stream)
	sweep.add(c)
	return c, nil
}

// serviceBind authenticates the connection before the reader starts.
func (c *Conn) serviceBind(r *ldapwire.Reader, dn, password string, deadline time.Time) error {
	c.nc.SetDeadline(deadline)
	defer c.nc.SetDeadline(time.Time{})
	c.nextID = 1
	if _, err := c.nc.Write(ldapwire.AppendSimpleBind(nil, 1, dn, password)); err != nil {
		return fmt.Errorf("service bind: %w", err)
	}
	frame, err := r.Next()
	if err != nil {
		return fmt.Errorf("service bind: %w", err)
	}
	msg, err := ldapwire.Parse(frame)
	if err != nil || msg.OpTag != ldapwire.OpBindResponse {
		return fmt.Errorf("service bind: unexpected response: %v", err)
	}
	res, err := ldapwire.ParseResult(msg.Body)
	if err != nil {
		return fmt.Errorf("service bind: %w", err)
	}
	if res.Code != ldapwire.Success {
		return fmt.Errorf("service bind as %q refused: result %d %s (check service-account in the config)", dn, res.Code, res.Diagnostic)
	}
	return nil
}

// detectOnce reads the server's root DSE when it was not read lately and
// records what it found; it fails when the server cannot serve its
// identity mode.
func (c *Conn) detectOnce(r *ldapwire.Reader, deadline time.Time) error {
	if !c.server.needsDetection() {
		return nil
	}
	c.nc.SetDeadline(deadline)
	defer c.nc.SetDeadline(time.Time{})
	caps := c.detect(r)
	c.server.caps.p.Store(caps)
	return caps.Err
}

// Server is the backend this connection goes to.
func (c *Conn) Server() *Server { return c.server }

// Kind is the connection's role.
func (c *Conn) Kind() Kind { return Kind(c.kind.Load()) }

// Inflight is the number of operations waiting for a final response.
func (c *Conn) Inflight() int { return int(c.inflight.Load()) }

// Done is closed when the connection is closed.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection closed, or nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Send registers h, encodes a request with a fresh message ID through encode
// and writes it. It returns the message ID used on this connection. With a
// timeout > 0, h is told Lost(ErrTimeout) when no final response came in
// time (checked every sweepInterval).
func (c *Conn) Send(h Handler, encode func(dst []byte, id int32) []byte, timeout time.Duration) (int32, error) {
	return c.SendTimed(h, encode, Timing{Silence: timeout})
}

// SendTimed is Send with the silence allowed between responses and an
// optional cap on the whole operation; a zero Timing sets no deadline.
func (c *Conn) SendTimed(h Handler, encode func(dst []byte, id int32) []byte, t Timing) (int32, error) {
	now := nanotime()
	id, err := c.register(h, now, t)
	if err != nil {
		return 0, err
	}
	c.lastUsed.Store(time.Now().UnixNano())
	if t.Silence > 0 || t.Total > 0 {
		sweep.wake()
	}
	if err := c.write(id, encode, t.Batch); err != nil {
		return 0, err // the connection is closed and id forgotten
	}
	return id, nil
}

// register allocates a message ID that is not in use and counts the
// operation in flight, unless the connection is at maxLoad: senders that
// picked it at once are checked one at a time, so that none takes it past
// what the server accepts (OpenLDAP closes a connection with too many
// requests queued, ending every operation on it).
func (c *Conn) register(h Handler, now int64, t Timing) (int32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.maxLoad > 0 && c.Load() >= c.maxLoad && c.err == nil {
		return 0, fmt.Errorf("backend %s: %w (limits.max-operations-per-server-connection %d)", c.server.Name, ErrBusy, c.maxLoad)
	}
	id, err := c.nextFreeID()
	if err != nil {
		return 0, err
	}
	op := pendingOp{h: h, timeout: t.Silence, movable: t.Movable}
	if t.Total > 0 {
		op.limit = now + int64(t.Total)
	}
	switch {
	case t.Silence > 0:
		op.deadline = op.nextDeadline(now)
	case t.Total > 0:
		op.deadline = op.limit
	}
	if op.deadline != 0 {
		c.timed++
	}
	c.pending[id] = op
	c.inflight.Add(1)
	return id, nil
}

// take removes operation id from the pending ones. Caller must hold mu.
func (c *Conn) take(id int32) (pendingOp, bool) {
	op, ok := c.pending[id]
	if ok {
		delete(c.pending, id)
		if op.deadline != 0 {
			c.timed--
		}
	}
	return op, ok
}

// write encodes a request and writes it. A sender that finds a write in
// progress leaves its request queued for that sender, which writes until the
// queue is empty: requests sent at the same time share a system call. On
// plain TCP a sender never waits for the socket: what it does not take at
// once is written by a goroutine, the senders behind queueing as before.
// A failed write closes the connection.
func (c *Conn) write(id int32, encode func(dst []byte, id int32) []byte, batch *evloop.Loop) error {
	c.wmu.Lock()
	c.queued = encode(c.queued, id)
	if c.writing || c.batched {
		c.wmu.Unlock()
		return nil
	}
	if batch != nil {
		c.batched = true
		c.wmu.Unlock()
		batch.Defer(c.flushBatchFn)
		return nil
	}
	c.writing = true
	if first, err := c.drain(); err != nil {
		return c.writeFailed(id, first, err)
	}
	return nil
}

// flushBatch writes the requests an event-loop batch queued (Timing.Batch),
// unless a sender is writing, which then takes them. A failed write
// closes the connection, which tells their handlers.
func (c *Conn) flushBatch() {
	c.wmu.Lock()
	c.batched = false
	if c.writing {
		c.wmu.Unlock()
		return
	}
	c.writing = true
	if _, err := c.drain(); err != nil {
		c.Close(fmt.Errorf("backend %s: write: %w", c.server.Name, err))
	}
}

// drain writes the queue until it is empty, without waiting for the
// socket: what it does not take is left to writeRest, which then clears
// writing. Caller holds wmu, with writing set; drain releases it. first
// reports a failure of the first batch written.
func (c *Conn) drain() (first bool, err error) {
	first = true
	for len(c.queued) > 0 {
		buf := c.takeQueued()
		c.wmu.Unlock()
		n, err := c.writeNow(buf)
		if err == nil && n < len(buf) {
			go c.writeRest(buf, n) // still writing: it clears the flag
			return false, nil
		}
		c.wmu.Lock()
		c.recycle(buf)
		if err != nil {
			c.writing = false
			c.wmu.Unlock()
			return first, err
		}
		first = false
	}
	c.writing = false
	c.wmu.Unlock()
	return false, nil
}

// takeQueued swaps the queue for the spare buffer and arms the write
// deadline for writing it. Caller must hold wmu.
func (c *Conn) takeQueued() []byte {
	buf := c.queued
	c.queued, c.spare = c.spare[:0], nil
	c.armWriteDeadline()
	return buf
}

// recycle keeps buf, written, as the spare. Caller must hold wmu.
func (c *Conn) recycle(buf []byte) {
	if cap(buf) <= 64<<10 {
		c.spare = buf[:0]
	}
}

// writeNow writes what the socket takes without waiting on plain TCP (n
// may be short). Under TLS it writes nothing: a TLS write may wait, so the
// goroutine of writeRest does it, and a sender, which may be an event
// loop serving many clients, never waits for a server's socket.
func (c *Conn) writeNow(buf []byte) (int, error) {
	if c.rawOut == nil {
		return 0, nil
	}
	return c.rawOut.TryWrite(buf)
}

// writeRest writes, waiting for the socket, what it did not take at once,
// then whatever was queued meanwhile.
func (c *Conn) writeRest(buf []byte, n int) {
	_, err := c.nc.Write(buf[n:])
	c.wmu.Lock()
	c.recycle(buf)
	for err == nil && len(c.queued) > 0 {
		next := c.takeQueued()
		c.wmu.Unlock()
		_, err = c.nc.Write(next)
		c.wmu.Lock()
		c.recycle(next)
	}
	c.writing = false
	c.wmu.Unlock()
	if err != nil { // every request written or queued is pending: Close tells them
		c.Close(fmt.Errorf("backend %s: write: %w", c.server.Name, err))
	}
}

// writeFailed closes the connection after a failed write and tells the
// sender whether its own request is its to report.
func (c *Conn) writeFailed(id int32, own bool, err error) error {
	// Requests queued behind are lost with the connection: closing it tells
	// their handlers. This sender's own request is its caller's to handle,
	// unless it was written before the failure or the connection was closed
	// meanwhile (by its reader or the timeout sweep), which already told the
	// handler: exactly one of the two reports the request's end.
	err = fmt.Errorf("backend %s: write: %w", c.server.Name, err)
	if !own {
		// This sender's request went out in an earlier batch and is still
		// pending: closing tells its handler, which may need a lock the
		// sender's caller holds while it sends. Close on another goroutine.
		go c.Close(err)
		return nil
	}
	mine := c.forget(id)
	c.Close(err) // tells only other requests' handlers, or does nothing
	if !mine {
		return nil
	}
	return err
}

// armWriteDeadline bounds the next write by the write timeout. The deadline
// is moved only once less than half of the timeout is left, sparing a
// runtime timer update per request: a stuck write fails after between half
// and all of the timeout. Caller must hold wmu.
func (c *Conn) armWriteDeadline() {
	if c.writeTimeout <= 0 {
		return
	}
	now := time.Now()
	if c.wdeadline.Sub(now) > c.writeTimeout/2 {
		return
	}
	c.wdeadline = now.Add(c.writeTimeout)
	c.nc.SetWriteDeadline(c.wdeadline)
}

// forget drops an operation's handler; it reports whether it was pending.
func (c *Conn) forget(id int32) bool {
	c.mu.Lock()
	_, ok := c.take(id)
	c.mu.Unlock()
	if ok {
		c.inflight.Add(-1)
	}
	return ok
}

// Abandon stops waiting for operation id and asks the server to abandon it.
// It reports whether the operation was still pending.
func (c *Conn) Abandon(id int32) bool {
	if !c.forget(id) {
		return false
	}
	c.sendAbandon(id)
	return true
}

// sendAbandon asks the server to abandon operation id, already forgotten.
func (c *Conn) sendAbandon(id int32) {
	c.mu.Lock()
	abandonID, err := c.nextFreeID()
	c.mu.Unlock()
	if err == nil && c.write(abandonID, func(dst []byte, mid int32) []byte { return ldapwire.AppendAbandon(dst, mid, id) }, nil) == nil {
		c.addGhost(abandonID)
	}
}

// nextFreeID returns an unused message ID without registering it.
// Caller must hold mu.
func (c *Conn) nextFreeID() (int32, error) {
	if c.err != nil {
		return 0, c.err
	}
	for {
		c.nextID++
		if c.nextID <= 0 {
			c.nextID = 1
		}
		if _, busy := c.pending[c.nextID]; !busy {
			return c.nextID, nil
		}
	}
}

// readLoop dispatches responses until the connection fails. What handlers
// produced is flushed when no whole response is left in the read buffer, so
// a burst of entries costs one client write, not one per entry.
func (c *Conn) readLoop(r *ldapwire.Reader) {
	var dirty flushSet
	c.readBlocking(r, &dirty, nil)
}

// readBlocking reads and dispatches responses, waiting for the socket,
// until the connection fails or, each time nothing is left in the read
// buffer, stop (when not nil) says to.
// Once stop has returned true the caller no longer owns dirty: nothing
// touches it after.
func (c *Conn) readBlocking(r *ldapwire.Reader, dirty *flushSet, stop func() bool) {
	for {
		frame, err := r.Next()
		if err != nil {
			dirty.flush()
			c.Close(fmt.Errorf("backend %s: read: %w", c.server.Name, err))
			return
		}
		f, err := c.dispatch(frame)
		if err != nil {
			dirty.flush()
			c.Close(err)
			return
		}
		dirty.add(f)
		if r.Ready() {
			continue
		}
		if b := dirty.flushFor(c); b != nil && !c.waitDrained(b) {
			return // closed while it waited
		}
		if stop != nil && stop() {
			return
		}
	}
}

// dispatch routes one response to its handler and returns what it filled.
func (c *Conn) dispatch(frame []byte) (Flusher, error) {
	msg, err := ldapwire.Parse(frame)
	if err != nil {
		return nil, fmt.Errorf("backend %s sent a malformed response: %w", c.server.Name, err)
	}
	if msg.ID == 0 {
		return nil, fmt.Errorf("backend %s: unsolicited notification (%s)", c.server.Name, noticeText(msg))
	}
	final := ldapwire.IsFinal(msg.OpTag)
	c.mu.Lock()
	var op pendingOp
	var ok bool
	if final {
		op, ok = c.take(msg.ID)
	} else if op, ok = c.pending[msg.ID]; ok && (op.timeout > 0 || op.movable && !op.answered) {
		if op.timeout > 0 {
			op.deadline = op.nextDeadline(nanotime()) // the timeout measures silence
		}
		op.answered = true
		c.pending[msg.ID] = op
	}
	c.mu.Unlock()
	if !ok {
		return nil, nil // abandoned or timed out: drop late responses
	}
	if final {
		c.inflight.Add(-1)
		c.releaseGhosts(msg.ID)
	}
	c.lastUsed.Store(time.Now().UnixNano())
	return op.h.Response(frame, msg, final), nil
}

// flushSet is the flushers a read batch filled, each once.
type flushSet struct{ fs []Flusher }

func (s *flushSet) add(f Flusher) {
	if f == nil {
		return
	}
	for _, g := range s.fs {
		if g == f {
			return
		}
	}
	s.fs = append(s.fs, f)
	if len(s.fs) >= 64 {
		s.flush()
	}
}

// flushFor flushes and, when c is a leased connection, returns the
// Backlog of its client if that client now has too much queued.
func (s *flushSet) flushFor(c *Conn) Backlog {
	var b Backlog
	if len(s.fs) > 0 && c.Kind() == LeasedConn {
		b, _ = s.fs[0].(Backlog) // a leased connection serves one client
	}
	s.flush()
	if b != nil && b.Backlogged() {
		return b
	}
	return nil
}

// waitDrained holds a connection read by a goroutine until the client of
// b has drained; false when the connection closed meanwhile.
func (c *Conn) waitDrained(b Backlog) bool {
	drained := make(chan struct{})
	c.held.Store(true)
	c.server.readsHeld.Add(1)
	defer c.held.Store(false)
	b.WhenDrained(func() { close(drained) })
	select {
	case <-drained:
		return true
	case <-c.done:
		return false
	}
}

func (s *flushSet) flush() {
	for i, f := range s.fs {
		f.Flush()
		s.fs[i] = nil
	}
	s.fs = s.fs[:0]
}

func noticeText(msg ldapwire.Message) string {
	res, err := ldapwire.ParseResult(msg.Body)
	if err != nil {
		return "unreadable"
	}
	return fmt.Sprintf("result %d: %s", res.Code, res.Diagnostic)
}

// Close closes the connection and tells every pending operation it is lost.
func (c *Conn) Close(cause error) {
	if cause == nil {
		cause = ErrConnClosed
	}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = cause
	c.closed.Store(true)
	lost := c.pending
	c.pending = nil
	c.timed = 0
	c.mu.Unlock()
	c.nc.Close()
	if c.events != nil {
		c.events.unregister()
	}
	close(c.done)
	sweep.remove(c)
	for range lost {
		c.inflight.Add(-1)
	}
	for _, op := range lost {
		op.h.Lost(cause)
	}
}

// isOpen reports, without locking, whether the connection is still open.
func (c *Conn) isOpen() bool { return !c.closed.Load() }

// closeGracefully sends an unbind and closes; used for recycling.
func (c *Conn) closeGracefully() {
	c.mu.Lock()
	id, err := c.nextFreeID()
	c.mu.Unlock()
	if err == nil {
		_ = c.write(id, ldapwire.AppendUnbind, nil)
	}
	c.Close(ErrConnClosed)
}
