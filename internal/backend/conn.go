package backend

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// ErrConnClosed is returned for operations on a connection that is gone.
var ErrConnClosed = errors.New("backend: connection closed")

// Handler receives the responses of one operation sent on a Conn. Both
// methods run on the connection's reader goroutine and must not block: a
// slow handler would stall every operation multiplexed on the connection.
type Handler interface {
	// Response is called for every response message; frame is only valid
	// during the call. final is true for the last one.
	Response(frame []byte, msg ldapwire.Message, final bool)
	// Lost is called when the connection fails before the final response.
	Lost(err error)
}

// Kind tells operation connections from bind connections.
type Kind int

// Connection kinds.
const (
	OpConn Kind = iota
	BindConn
)

func (k Kind) String() string {
	if k == BindConn {
		return "bind"
	}
	return "operation"
}

// Conn is one connection to a backend server. Many operations share it: each
// gets a connection-local message ID, and one reader goroutine owns the
// dispatch of responses by that ID.
type Conn struct {
	server *Server
	kind   Kind
	nc     net.Conn
	born   time.Time

	wmu sync.Mutex // wmu guards the fields below
	w   *bufio.Writer
	buf []byte

	mu      sync.Mutex // mu guards the fields below
	pending map[int32]Handler
	nextID  int32
	err     error // set once the connection is closed

	writeTimeout time.Duration

	inflight atomic.Int32
	ghosts   ghosts       // abandoned operations the server may still hold (ghosts.go)
	lastUsed atomic.Int64 // unix nanoseconds
	draining atomic.Bool
	done     chan struct{}
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
	c := &Conn{server: s, kind: kind, nc: nc, born: time.Now(), w: bufio.NewWriterSize(nc, 16<<10),
		pending: make(map[int32]Handler), done: make(chan struct{})}
	c.lastUsed.Store(time.Now().UnixNano())
	reader := ldapwire.NewReader(nc, maxPDU)
	if bindDN != "" {
		deadline, _ := ctx.Deadline()
		if err := c.serviceBind(reader, bindDN, password, deadline); err != nil {
			nc.Close()
			return nil, fmt.Errorf("backend %s: %w", s.Name, err)
		}
	}
	go c.readLoop(reader)
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

// Server is the backend this connection goes to.
func (c *Conn) Server() *Server { return c.server }

// Kind is the connection's role.
func (c *Conn) Kind() Kind { return c.kind }

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
// and writes it. It returns the message ID used on this connection.
func (c *Conn) Send(h Handler, encode func(dst []byte, id int32) []byte) (int32, error) {
	id, err := c.register(h)
	if err != nil {
		return 0, err
	}
	c.inflight.Add(1)
	c.lastUsed.Store(time.Now().UnixNano())
	if err := c.write(id, encode); err != nil {
		c.forget(id)
		c.Close(err)
		return 0, err
	}
	return id, nil
}

// register allocates a message ID that is not in use.
func (c *Conn) register(h Handler) (int32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, err := c.nextFreeID()
	if err == nil {
		c.pending[id] = h
	}
	return id, err
}

func (c *Conn) write(id int32, encode func(dst []byte, id int32) []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.buf = encode(c.buf[:0], id)
	if c.writeTimeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	if _, err := c.w.Write(c.buf); err != nil {
		return fmt.Errorf("backend %s: write: %w", c.server.Name, err)
	}
	if cap(c.buf) > 1<<20 {
		c.buf = nil
	}
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("backend %s: write: %w", c.server.Name, err)
	}
	return nil
}

// forget drops an operation's handler; it reports whether it was pending.
func (c *Conn) forget(id int32) bool {
	c.mu.Lock()
	_, ok := c.pending[id]
	delete(c.pending, id)
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
	c.mu.Lock()
	abandonID, err := c.nextFreeID()
	c.mu.Unlock()
	if err == nil && c.write(abandonID, func(dst []byte, mid int32) []byte { return ldapwire.AppendAbandon(dst, mid, id) }) == nil {
		c.addGhost(abandonID)
	}
	return true
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

// readLoop dispatches responses until the connection fails.
func (c *Conn) readLoop(r *ldapwire.Reader) {
	for {
		frame, err := r.Next()
		if err != nil {
			c.Close(fmt.Errorf("backend %s: read: %w", c.server.Name, err))
			return
		}
		if err := c.dispatch(frame); err != nil {
			c.Close(err)
			return
		}
	}
}

// dispatch routes one response to its handler.
func (c *Conn) dispatch(frame []byte) error {
	msg, err := ldapwire.Parse(frame)
	if err != nil {
		return fmt.Errorf("backend %s sent a malformed response: %w", c.server.Name, err)
	}
	if msg.ID == 0 {
		return fmt.Errorf("backend %s: unsolicited notification (%s)", c.server.Name, noticeText(msg))
	}
	final := ldapwire.IsFinal(msg.OpTag)
	c.mu.Lock()
	h, ok := c.pending[msg.ID]
	if ok && final {
		delete(c.pending, msg.ID)
	}
	c.mu.Unlock()
	if !ok {
		return nil // abandoned or timed out: drop late responses
	}
	if final {
		c.inflight.Add(-1)
		c.releaseGhosts(msg.ID)
	}
	c.lastUsed.Store(time.Now().UnixNano())
	h.Response(frame, msg, final)
	return nil
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
	lost := c.pending
	c.pending = nil
	c.mu.Unlock()
	c.nc.Close()
	close(c.done)
	for range lost {
		c.inflight.Add(-1)
	}
	for _, h := range lost {
		h.Lost(cause)
	}
}

// closeGracefully sends an unbind and closes; used for recycling.
func (c *Conn) closeGracefully() {
	c.mu.Lock()
	id, err := c.nextFreeID()
	c.mu.Unlock()
	if err == nil {
		_ = c.write(id, ldapwire.AppendUnbind)
	}
	c.Close(ErrConnClosed)
}
