// Package evloop waits for many sockets at once on a few goroutines: an
// epoll instance of its own per loop, itself waited for through Go's
// netpoller, calls a handler for each socket that has something to read.
//
// Why not one goroutine blocked in Read per socket, as net does: that costs,
// per request, a read that ends in EAGAIN before the goroutine parks, and a
// netpoller wake-up of that goroutine (often of an OS thread too). A loop
// reads a socket once per readiness event (edge-triggered: until a read
// returns less than the free buffer, never until EAGAIN) and handles the
// events of many sockets per wake-up. The
// sockets stay ordinary net.Conns (deadlines, Close, TLS on other paths);
// only the waiting moves here. Hand-written rather than taken from an event
// loop library because those own the sockets and their accept loop, which
// would mean giving up net.Conn for TLS, the PROXY protocol and blocking
// fallbacks.
package evloop

import (
	"errors"
	"sync"
	"syscall"
)

// Handler is told that its socket is readable (or hung up, or in error).
// Readable runs on the loop's goroutine and must not block: every socket of
// the loop waits while it runs. Reports are edge-triggered: Readable must
// read until a read returns less than it asked for (or nothing), since the
// bytes left unread are not reported again until more arrive. A socket may
// be reported once more after it was removed or closed; Readable must then
// find nothing to do.
type Handler interface{ Readable() }

// ErrClosed is returned when the loop was closed.
var ErrClosed = errors.New("evloop: loop closed")

// Loop is one epoll instance and the goroutine that serves it.
type Loop struct {
	ep     *poller
	events []event // loop goroutine only

	mu       sync.Mutex // mu guards the fields below
	handlers map[uint64]Handler
	nextTok  uint64
	posted   []func()
	closed   bool

	running  []Handler // loop goroutine only: the handlers of one batch
	deferred []func()  // loop goroutine only: to run once the batch's handlers ran
	funcs    []func()  // loop goroutine only: posted functions being run
	done     chan struct{}
}

// Registration is a socket added to a loop.
type Registration struct {
	loop *Loop
	tok  uint64
	rc   syscall.RawConn
}

// New starts a loop.
func New() (*Loop, error) {
	ep, err := newPoller()
	if err != nil {
		return nil, err
	}
	l := &Loop{ep: ep, events: make([]event, 256), handlers: make(map[uint64]Handler),
		done: make(chan struct{})}
	go l.run()
	return l, nil
}

// Add has h told whenever the socket under rc is readable, until Remove.
// The first call may come before Add returns.
func (l *Loop) Add(rc syscall.RawConn, h Handler) (*Registration, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	l.nextTok++
	tok := l.nextTok
	l.handlers[tok] = h
	l.mu.Unlock()
	r := &Registration{loop: l, tok: tok, rc: rc}
	var cerr error
	err := rc.Control(func(fd uintptr) { cerr = l.ep.add(int(fd), tok) })
	if err == nil {
		err = cerr
	}
	if err != nil {
		l.forget(tok)
		return nil, err
	}
	return r, nil
}

// Remove stops the reports; the handler may still be called once if an
// event was already taken from the kernel (see Handler). Safe to call more
// than once and after the socket is closed.
func (r *Registration) Remove() {
	r.rc.Control(func(fd uintptr) { r.loop.ep.del(int(fd)) }) // a closed socket left epoll by itself
	r.loop.forget(r.tok)
}

// Loop is the loop r belongs to.
func (r *Registration) Loop() *Loop { return r.loop }

func (l *Loop) forget(tok uint64) {
	l.mu.Lock()
	delete(l.handlers, tok)
	l.mu.Unlock()
}

// Post runs f on the loop's goroutine, after the handlers of the batch in
// progress. It reports false when the loop is closed (f does not run).
func (l *Loop) Post(f func()) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	wake := len(l.posted) == 0
	l.posted = append(l.posted, f)
	l.mu.Unlock()
	if wake {
		l.ep.wake()
	}
	return true
}

// Close stops the loop once the batch in progress is done; handlers are not
// called again and posted functions that did not run are dropped. The
// sockets are left as they are.
func (l *Loop) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.posted = nil
	l.mu.Unlock()
	l.ep.wake()
	<-l.done
	l.ep.close()
}

// run waits in Go's netpoller until the epoll instance has events, then
// serves them until it has none.
func (l *Loop) run() {
	defer close(l.done)
	for {
		if err := l.ep.wait(l.serve); err != nil || l.isClosed() {
			return
		}
	}
}

func (l *Loop) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// serve takes the events ready now and handles them. Sockets are
// registered edge-triggered, so every event that comes while a batch is
// being handled also makes the epoll descriptor readable again for the
// netpoller: serve never polls once more just to find nothing, it returns
// false (wait) after a batch that did not fill the event buffer, and true
// only once the loop is closed.
func (l *Loop) serve(epfd int) bool {
	for {
		n, err := take(epfd, l.events)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return false
		}
		if !l.dispatch(l.events[:n]) {
			return true
		}
		if n < len(l.events) {
			return false
		}
	}
}

// dispatch calls the handlers of one batch of events; false when closed.
func (l *Loop) dispatch(events []event) bool {
	woken := false
	for i := range events {
		if eventToken(&events[i]) == wakeToken {
			woken = true
		}
	}
	if woken {
		// Drained before the posted functions are taken: a Post after the
		// take finds the queue empty and wakes the loop again, and the
		// drain cannot swallow that wake.
		l.ep.drainWake()
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	for i := range events {
		if tok := eventToken(&events[i]); tok != wakeToken {
			if h := l.handlers[tok]; h != nil {
				l.running = append(l.running, h)
			}
		}
	}
	if woken {
		l.funcs, l.posted = l.posted, l.funcs[:0]
	}
	l.mu.Unlock()
	for i, h := range l.running {
		h.Readable()
		l.running[i] = nil
	}
	l.running = l.running[:0]
	l.runDeferred()
	for i, f := range l.funcs {
		f()
		l.funcs[i] = nil
	}
	l.funcs = l.funcs[:0]
	l.runDeferred()
	return true
}

// Defer runs f once every handler of the batch in progress has run, on the
// loop's goroutine: the requests that the handlers of one batch send on
// the same server connection share one write. Only a handler (or a posted
// function) running on l may call it.
func (l *Loop) Defer(f func()) { l.deferred = append(l.deferred, f) }

func (l *Loop) runDeferred() {
	for i := 0; i < len(l.deferred); i++ {
		l.deferred[i]()
		l.deferred[i] = nil
	}
	l.deferred = l.deferred[:0]
}

// Group spreads sockets over several loops.
type Group struct {
	loops []*Loop
	next  uint32
	mu    sync.Mutex
}

// NewGroup starts n loops (at least one).
func NewGroup(n int) (*Group, error) {
	g := &Group{}
	for range max(n, 1) {
		l, err := New()
		if err != nil {
			g.Close()
			return nil, err
		}
		g.loops = append(g.loops, l)
	}
	return g, nil
}

// Pick returns the next loop in turn.
func (g *Group) Pick() *Loop {
	g.mu.Lock()
	l := g.loops[g.next%uint32(len(g.loops))]
	g.next++
	g.mu.Unlock()
	return l
}

// Loops is every loop of the group.
func (g *Group) Loops() []*Loop { return g.loops }

// Close closes every loop.
func (g *Group) Close() {
	for _, l := range g.loops {
		l.Close()
	}
}
