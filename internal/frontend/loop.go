package frontend

import (
	"errors"
	"io"
	"sync"
	"time"

	"github.com/ldapmux/ldapmux/internal/evloop"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// A plain session waits for its requests parked in an event loop, with no
// goroutine of its own: the loop reads the socket once per readiness event
// and handles every whole request in it on the loop's goroutine, as the
// read loop would (handling never waits: see proxy.Start). A session goes
// back to a goroutine of its own for whatever may wait: a request behind a
// bind in progress, StartTLS, a request that has not wholly arrived (the
// request timeout), the end of the session; it parks again once nothing is
// half-read or waiting. TLS sessions always have a goroutine.
//
// Who owns the read side (reader, frame, deadlines): the loop while parked,
// the goroutine otherwise. Every change of owner happens on the loop's
// goroutine (enterLoop, leaveLoop) or is handed over through Loop.Post.
type parking struct {
	home   *parkedSet           // nil: the session never parks
	reg    *evloop.Registration // loop only: set while parked
	nowait bool                 // owner only: reads do not wait (parked)
	onLoop bool                 // loop only: a request is being handled in a batch
}

// parkedSet is the sessions parked in one loop; only that loop's goroutine
// touches it.
type parkedSet struct {
	loop     *evloop.Loop
	sessions map[*Session]struct{}
}

// loops are the server's parked sets, one per shared event loop; nil when
// the loops are off.
type loops struct {
	sets  map[*evloop.Loop]*parkedSet
	group *evloop.Group

	mu      sync.Mutex // mu guards sweeper
	sweeper *time.Timer
	stopped bool
}

func (s *Server) initLoops(g *evloop.Group) {
	if g == nil {
		return
	}
	s.loops.group = g
	s.loops.sets = make(map[*evloop.Loop]*parkedSet)
	for _, l := range g.Loops() {
		s.loops.sets[l] = &parkedSet{loop: l, sessions: make(map[*Session]struct{})}
	}
	s.loops.mu.Lock()
	s.loops.sweeper = time.AfterFunc(s.sweepInterval(), s.sweepParked)
	s.loops.mu.Unlock()
}

// stopLoops stops the idle sweep (Shutdown); the loops are shared.
func (s *Server) stopLoops() {
	s.loops.mu.Lock()
	defer s.loops.mu.Unlock()
	s.loops.stopped = true
	if s.loops.sweeper != nil {
		s.loops.sweeper.Stop()
	}
}

// sweepInterval is how often parked sessions are checked for idleness: a
// quarter of the idle timeout, between 10 ms and 1 s.
func (s *Server) sweepInterval() time.Duration {
	idle := s.conf().IdleTimeout
	if idle <= 0 {
		return time.Second
	}
	return min(max(idle/4, 10*time.Millisecond), time.Second)
}

// sweepParked has every loop look for idle parked sessions.
func (s *Server) sweepParked() {
	for _, set := range s.loops.sets {
		set.loop.Post(set.sweep)
	}
	s.loops.mu.Lock()
	if !s.loops.stopped {
		s.loops.sweeper.Reset(s.sweepInterval())
	}
	s.loops.mu.Unlock()
}

// sweep ends idle parked sessions (and any that was closed). Loop only.
func (p *parkedSet) sweep() {
	for sess := range p.sessions {
		switch {
		case sess.ctx.Err() != nil:
		case sess.idleExpired():
			sess.idleDisconnect()
		default:
			continue
		}
		sess.leaveLoop()
		go sess.finish()
	}
}

func (s *Session) initParking() {
	if s.direct == nil || s.srv.loops.sets == nil {
		return
	}
	s.home = s.srv.loops.sets[s.srv.loops.group.Pick()]
}

// mayPark reports whether the read side may move to the loop: a plain
// stream, nothing half-read, no bind to wait for.
func (s *Session) mayPark() bool {
	return s.home != nil && !s.secured && s.reader.Buffered() == 0 && !s.bindPending()
}

// park hands the read side to the loop; false when the loop is closed (the
// goroutine keeps it).
func (s *Session) park() bool {
	if !s.armed.IsZero() {
		s.setReadDeadline(time.Time{}) // the loop's reads never wait; idleness is swept
	}
	s.inRequest = false
	s.nowait = true
	s.reader.Release()
	if s.home.loop.Post(s.enterLoop) {
		return true
	}
	s.nowait = false
	return false
}

// enterLoop parks the session. Loop only.
func (s *Session) enterLoop() {
	if s.ctx.Err() == nil {
		if reg, err := s.home.loop.Add(s.direct.RawConn(), s); err == nil {
			s.reg = reg
			s.home.sessions[s] = struct{}{}
			return
		}
	}
	s.nowait = false // closed meanwhile: the goroutine finds out and ends the session
	go s.readRequests()
}

// leaveLoop unparks the session; the caller hands the read side to a
// goroutine. Loop only.
func (s *Session) leaveLoop() {
	s.reg.Remove()
	s.reg = nil
	delete(s.home.sessions, s)
	s.nowait = false
}

// wake has the loop look at a parked session that was closed or told to
// disconnect by another goroutine: nothing would come to read.
func (s *Session) wake() {
	if s.home != nil {
		s.home.loop.Post(s.woken)
	}
}

func (s *Session) woken() {
	if s.reg != nil {
		s.leaveLoop()
		go s.readRequests()
	}
}

// Readable reads what came and handles every whole request in it
// (evloop.Handler): one read, unless it filled the buffer. Loop only.
func (s *Session) Readable() {
	if s.reg == nil {
		return
	}
	for {
		more, err := s.reader.Fill()
		if errors.Is(err, evloop.ErrWouldBlock) {
			s.reader.Release()
			return
		}
		if !s.handleBuffered() {
			return
		}
		switch {
		case err != nil:
			s.leaveLoop()
			if s.reader.Buffered() > 0 {
				err = io.ErrUnexpectedEOF
			}
			s.readFailed(err)
			go s.finish()
			return
		case s.reader.Buffered() > 0 || s.ctx.Err() != nil:
			s.leaveLoop() // a request half-arrived: the goroutine applies the request timeout
			go s.readRequests()
			return
		case !more:
			s.reader.Release() // nothing half-read: a parked session holds no read buffer
			return
		}
	}
}

// handleBuffered handles the whole requests in the read buffer; false
// when it handed the session to a goroutine. Loop only.
func (s *Session) handleBuffered() bool {
	for s.reader.Ready() && s.ctx.Err() == nil {
		frame, _ := s.reader.Next() // whole in the buffer: no read
		s.touch()
		msg, ok := s.accept(frame)
		if !ok {
			s.leaveLoop()
			go s.finish()
			return false
		}
		if s.bindPending() || isStartTLS(msg) {
			s.leaveLoop()
			go s.resume(msg)
			return false
		}
		s.onLoop = true
		ok = s.dispatch(msg)
		s.onLoop = false
		if !ok {
			s.leaveLoop()
			go s.finish()
			return false
		}
	}
	return true
}

// resume handles, on the session's goroutine, a request the loop could
// not (it has to wait), then goes on reading.
func (s *Session) resume(msg ldapwire.Message) {
	s.awaitBind()
	if !s.dispatch(msg) {
		s.finish()
		return
	}
	s.readRequests()
}

func isStartTLS(msg ldapwire.Message) bool {
	return msg.OpTag == ldapwire.OpExtendedRequest && string(msg.ExtendedOID()) == ldapwire.OIDStartTLS
}
