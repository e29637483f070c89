package backend

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"

	"github.com/ldapmux/ldapmux/internal/evloop"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// connStream is what a connection's framer reads: the socket itself,
// blocking, while a goroutine reads it (the service bind, a message larger
// than the read buffer, TLS); one non-blocking read per readiness event
// while an event loop serves it (see evloop).
type connStream struct {
	nc     net.Conn
	sock   *evloop.Socket // nil under TLS
	nowait bool           // owner only: the loop serves the connection
}

func newConnStream(nc net.Conn) *connStream {
	return &connStream{nc: nc, sock: evloop.NewSocket(nc)}
}

func (s *connStream) Read(p []byte) (int, error) {
	if s.nowait {
		return s.sock.TryRead(p)
	}
	return s.nc.Read(p)
}

// eventReader serves a plain connection's responses from an event loop:
// one read per readiness event, every whole response in it dispatched, the
// clients flushed once. A response larger than the read buffer is read by
// a goroutine, which hands the connection back once it has caught up.
type eventReader struct {
	c      *Conn
	r      *ldapwire.Reader
	stream *connStream
	loop   *evloop.Loop
	reg    atomic.Pointer[evloop.Registration]
	dirty  flushSet // owner only
	// paused: a leased connection's client has too much queued; the loop
	// reads on once it drained (hold, resume). Loop only.
	paused bool
}

// startReading has the connection's responses read by an event loop when
// one is running and the connection is plain TCP, by a goroutine otherwise.
// It registers from the dialing goroutine, before any request is sent:
// nothing can have arrived that the first report would miss (reregister).
func (c *Conn) startReading(r *ldapwire.Reader, stream *connStream) {
	if g := c.server.Loops; g != nil && stream.sock != nil {
		e := &eventReader{c: c, r: r, stream: stream, loop: g.Pick()}
		c.events = e
		if e.register() {
			return
		}
		c.events = nil
	}
	go c.readLoop(r)
}

// Loop is the event loop that reads the connection, nil when a goroutine
// does.
func (c *Conn) Loop() *evloop.Loop {
	if c.events == nil {
		return nil
	}
	return c.events.loop
}

// register hands the connection to the loop; false when the loop would
// not take it (the caller keeps reading).
func (e *eventReader) register() bool {
	e.stream.nowait = true
	reg, err := e.loop.Add(e.stream.sock.RawConn(), e)
	if err != nil {
		e.stream.nowait = false
		return false
	}
	e.reg.Store(reg)
	if !e.c.isOpen() { // closed meanwhile: its Close may have missed reg
		reg.Remove()
	}
	return true
}

// unregister stops the loop's reports (Close, or a goroutine takes over).
func (e *eventReader) unregister() {
	if reg := e.reg.Swap(nil); reg != nil {
		reg.Remove()
	}
}

// Readable runs on the loop (evloop.Handler): it reads what came, one
// read unless it filled the buffer, and dispatches every whole response.
func (e *eventReader) Readable() {
	if e.reg.Load() == nil || e.paused { // a report from before the goroutine took over, or held
		return
	}
	c := e.c
	for {
		more, err := e.r.Fill()
		if errors.Is(err, evloop.ErrWouldBlock) {
			return
		}
		for e.r.Ready() {
			frame, _ := e.r.Next() // whole in the buffer: no read
			f, derr := c.dispatch(frame)
			if derr != nil {
				e.dirty.flush()
				e.unregister()
				c.Close(derr)
				return
			}
			e.dirty.add(f)
		}
		backlog := e.dirty.flushFor(c)
		if err != nil {
			e.unregister()
			c.Close(fmt.Errorf("backend %s: read: %w", c.server.Name, unexpectedEOF(err, e.r)))
			return
		}
		if partial, fits := e.r.Incomplete(); partial && !fits {
			e.unregister()
			e.stream.nowait = false
			go e.readUntilCaughtUp()
			return
		}
		if backlog != nil {
			e.hold(backlog)
			return
		}
		if !more {
			return
		}
	}
}

// hold stops reading until the client of b has drained: what the server
// sends meanwhile waits in the socket, and then in the server, as on the
// client's own connection. Loop only.
func (e *eventReader) hold(b Backlog) {
	e.paused = true
	e.c.held.Store(true)
	e.c.server.readsHeld.Add(1)
	b.WhenDrained(func() {
		if !e.loop.Post(e.resume) {
			e.c.held.Store(false) // the loop is closing, and the connection with it
		}
	})
}

// resume reads what came while the connection was held. Loop only.
func (e *eventReader) resume() {
	e.paused = false
	e.c.held.Store(false)
	e.Readable()
}

// unexpectedEOF reports an end of stream inside a response as such.
func unexpectedEOF(err error, r *ldapwire.Reader) error {
	if errors.Is(err, io.EOF) && r.Buffered() > 0 {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readUntilCaughtUp reads with blocking reads until nothing is left
// half-read, then hands the connection back to the loop.
func (e *eventReader) readUntilCaughtUp() {
	e.c.readBlocking(e.r, &e.dirty, func() bool {
		partial, _ := e.r.Incomplete()
		return !partial && e.loop.Post(e.reregister)
	})
}

// reregister gives the connection back to the loop, on the loop's
// goroutine. Registered from any other goroutine, a response already
// waiting would be reported before reg is stored; Readable would take that
// report for one from before the goroutine took over and drop it, and,
// edge-triggered, the socket would never be reported again: the response
// would wait for the operation timeout.
func (e *eventReader) reregister() {
	if !e.register() {
		go e.c.readBlocking(e.r, &e.dirty, nil) // the loop is closing: a goroutine reads on
	}
}
