package proxy

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
)

// Leases are the server connections leased to one client session for the
// state a directory keeps per connection: paged-results cookies, VLV
// contexts, long-lived (sync and persistent) searches. Nobody else's
// operation is sent on a leased connection, and a cursor (a cookie or a
// context ID the server handed out) is only ever sent back on the
// connection that issued it.
//
// A session holds at most one lease per server. A lease ends — its
// connection, and whatever state the server kept on it, is closed — when no
// operation uses it and no cursor points at it, when its cursors stay unused
// for the idle limit, at the client's next bind (Retire) and when the client
// leaves (Close).
//
// The zero value is ready to use. Lock order: a call's mu may be held while
// Leases.mu is taken, never the reverse.
type Leases struct {
	mu      sync.Mutex // mu guards the fields below and those of every lease
	held    []*lease
	cursors map[string]*lease // cursor key → the lease whose server issued it
	closed  bool
	// boundGone: the connection the client was bound on (client-bind
	// mode) was lost; its operations fail until it binds again.
	boundGone *backend.Server
	// boundWhy, when set, explains boundGone (lostBinding).
	boundWhy string
	// bound is set, under mu, while the client is bound in client-bind
	// mode (a bound lease or boundGone): every operation asks, and a
	// session that never bound that way answers without the lock.
	bound atomic.Bool
}

// lease is one connection leased to a session.
type lease struct {
	srv     *backend.Server
	pool    *backend.Pool // the pool that leased conn
	conn    *backend.Conn
	users   int  // operations in flight on it, or about to be
	cursors int  // keys in Leases.cursors pointing at it
	retired bool // takes no new operation; ends once users is 0
	idle    *time.Timer
	// direct: in client-bind mode, the connection carries the client's own
	// identity (its bind, or none): operations go without a control.
	direct bool
	sticky bool // kept for the session: ends only at Retire, Close or failure
	bound  bool // the client's successful bind was performed on it
}

// live reports whether l takes new operations: not retired, connection
// open. Caller must hold Leases.mu.
func (l *lease) live() bool { return !l.retired && l.conn.Err() == nil }

// stopIdle cancels l's idle timer, if any. Caller must hold Leases.mu.
func (l *lease) stopIdle() {
	if l.idle != nil {
		l.idle.Stop()
		l.idle = nil
	}
}

// take reserves an operation on the session's live lease on srv, if any:
// a direct one (client-bind mode) or one bound as the service account.
func (ls *Leases) take(srv *backend.Server, direct bool) *lease {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, l := range ls.held {
		if l.srv == srv && l.direct == direct && l.live() {
			ls.use(l)
			return l
		}
	}
	return nil
}

// cursor finds the lease whose server issued key (each attempt reserves
// its use, leasedConn). It returns nil when no lease holds key; lost is
// true when one did but its connection is gone (the cursor went with it);
// clash is true when leases on two connections issued key (clashed).
func (ls *Leases) cursor(key string) (l *lease, lost, clash bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l = ls.cursors[key]
	switch {
	case l == nil:
		return nil, false, false
	case l == clashed:
		return nil, false, true
	case l.conn.Err() != nil:
		ls.dropCursorsLocked(l)
		return nil, true, false
	}
	return l, false, false
}

// clashed stands in Leases.cursors for a key that two of the session's
// leases issued while both were live: servers number their cookies per
// connection (389 Directory Server's are "0", "1", ...), so two servers
// may hand the same value to one client. Which search the client's cookie
// continues cannot be told, and a cursor is never sent to a connection that
// may not have issued it: both are refused until a server issues the value
// again.
var clashed = new(lease)

// cursorServer is the server of a live lease of the session that holds open
// cursors, or nil: new cursors go there first, so that one client's cookies
// come from one connection and cannot clash.
func (ls *Leases) cursorServer() *backend.Server {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, l := range ls.held {
		if l.cursors > 0 && l.live() {
			return l.srv
		}
	}
	return nil
}

// use counts one more operation on l. Caller must hold mu.
func (ls *Leases) use(l *lease) {
	l.users++
	l.stopIdle()
}

// addLease records n, a connection just leased, and reserves an operation
// on it. When the session already got an equivalent lease meanwhile, that
// one is used and spare is n's connection, to be released; when the session
// is closed, l is nil and n's connection is spare. A direct sticky lease
// may be shared like any; a direct one for a bind (neither sticky nor
// shared) is always added.
func (ls *Leases) addLease(n *lease) (l *lease, spare *backend.Conn) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.closed {
		return nil, n.conn
	}
	for _, h := range ls.held {
		if (n.sticky || !n.direct) && h.srv == n.srv && h.direct == n.direct && h.live() {
			ls.use(h)
			return h, n.conn
		}
	}
	l = n
	l.users = 1
	ls.held = append(ls.held, l)
	return l, nil
}

// moveCursor records that the operation which continued cursor from (""
// for a new one) left the server's cursor at to ("" when the state ended).
func (ls *Leases) moveCursor(l *lease, from, to string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if from != "" && ls.cursors[from] == l {
		delete(ls.cursors, from)
		l.cursors--
	}
	if to == "" || l.retired {
		return
	}
	if ls.cursors == nil {
		ls.cursors = make(map[string]*lease)
	}
	if old := ls.cursors[to]; old != nil && old != clashed {
		old.cursors--
		if old != l && old.conn.Err() == nil { // another live connection issued the same value
			ls.cursors[to] = clashed
			return
		}
	}
	ls.cursors[to] = l
	l.cursors++
}

// release ends the reservation of one operation on l. A lease nobody uses
// ends at once when it holds no cursor, after idle otherwise.
func (ls *Leases) release(l *lease, idle time.Duration) {
	ls.mu.Lock()
	l.users--
	dead := l.conn.Err() != nil
	if dead && l.bound && !l.retired {
		ls.boundGone = l.srv
	}
	end := l.users == 0 && (l.cursors == 0 && !l.sticky || l.retired || dead)
	if end {
		ls.removeLocked(l)
	} else if l.users == 0 && idle > 0 && !l.sticky {
		l.idle = time.AfterFunc(idle, func() { ls.expire(l) })
	}
	ls.mu.Unlock()
	if end {
		l.pool.ReleaseLease(l.conn)
	}
}

// expire ends a lease whose cursors were not used for the idle limit.
func (ls *Leases) expire(l *lease) {
	ls.mu.Lock()
	end := l.users == 0 && ls.removeLocked(l)
	ls.mu.Unlock()
	if end {
		l.pool.ReleaseLease(l.conn)
	}
}

// removeLocked forgets l and its cursors; it reports whether l was held.
// Caller must hold mu.
func (ls *Leases) removeLocked(l *lease) bool {
	ls.dropCursorsLocked(l)
	l.stopIdle()
	for i, h := range ls.held {
		if h == l {
			ls.held = append(ls.held[:i], ls.held[i+1:]...)
			return true
		}
	}
	return false
}

// dropCursorsLocked forgets every cursor of l. Caller must hold mu.
func (ls *Leases) dropCursorsLocked(l *lease) {
	if l.cursors == 0 {
		return
	}
	for k, v := range ls.cursors {
		if v == l {
			delete(ls.cursors, k)
		}
	}
	l.cursors = 0
}

// Retire ends every cursor of the session, as its client binds again:
// leases in use end once their operations do, the others at once.
func (ls *Leases) Retire() { ls.end(false, false) }

// RetireForBind is Retire before a bind that a server answers, but for the
// client's own connections (client-bind mode, or a session of its own):
// the one it is bound on, or its unbound ones while it is anonymous, kept
// with their cursors. The bind goes to one of them when its server is a
// candidate (rebindOn), and the server then decides what becomes of the
// session, as on the client's own connection.
func (ls *Leases) RetireForBind() { ls.end(false, true) }

// Close ends every lease of a session whose client left; operations still
// using one are told their connection is lost.
func (ls *Leases) Close() { ls.end(true, false) }

func (ls *Leases) end(closing, keepOwn bool) {
	ls.mu.Lock()
	ls.closed = ls.closed || closing
	keepOwn = keepOwn && ls.boundGone == nil
	if !keepOwn || ls.liveBindingLocked() == nil {
		ls.boundGone, ls.boundWhy = nil, ""
		ls.bound.Store(false)
	}
	var ended []*lease
	kept := ls.held[:0]
	for _, l := range ls.held {
		switch {
		case keepOwn && l.own():
			kept = append(kept, l)
			continue
		case l.users == 0 || closing:
			ended = append(ended, l)
		default:
			kept = append(kept, l)
		}
		l.retired, l.cursors = true, 0
		l.stopIdle()
	}
	clear(ls.held[len(kept):])
	ls.held = kept
	for k, v := range ls.cursors {
		if v == clashed || !v.own() || !keepOwn {
			delete(ls.cursors, k)
		}
	}
	ls.mu.Unlock()
	for _, l := range ended {
		l.pool.ReleaseLease(l.conn)
	}
}

// liveBindingLocked is the live lease the client is bound on, or nil.
// Caller must hold mu.
func (ls *Leases) liveBindingLocked() *lease {
	if ls.boundGone != nil {
		return nil
	}
	for _, h := range ls.held {
		if h.bound && h.live() {
			return h
		}
	}
	return nil
}

// own reports whether l is one of the client's own connections, kept for
// the session: the one it is bound on, or an unbound one of an anonymous
// client in client-bind mode. Caller must hold mu.
func (l *lease) own() bool { return l.direct && l.sticky && l.live() }

// rebindOn is the client's own connection for its next bind (RetireForBind
// kept it): the one it is bound on, or else an unbound one; the bind goes
// there, where the server decides what becomes of the session as on the
// client's own connection (a failed bind leaves Samba's session as it was,
// slapd's anonymous), when its server is among the bind's candidates.
// Otherwise the client's own connections end and the bind goes to a new
// one; nil then.
func (ls *Leases) rebindOn(candidate func(*backend.Server) bool) *lease {
	ls.mu.Lock()
	var found *lease
	bound := ls.liveBindingLocked()
	if bound != nil && candidate(bound.srv) {
		found = bound
	}
	if bound == nil {
		for _, h := range ls.held {
			if h.own() && candidate(h.srv) {
				found = h
				break
			}
		}
	}
	hasOwn := bound != nil || ls.bound.Load() || slices.ContainsFunc(ls.held, (*lease).own)
	ls.mu.Unlock()
	if found == nil && hasOwn {
		ls.Retire()
	}
	return found
}

// bindResult records the end of a client's bind performed on l (client-bind
// mode): on success l becomes the connection the client is bound on, kept
// for the session, and the session's other direct leases (anonymous) end.
func (ls *Leases) bindResult(l *lease, ok bool) {
	ls.mu.Lock()
	var ended []*lease
	if ok && !l.retired {
		l.bound, l.sticky = true, true
		ls.boundGone, ls.boundWhy = nil, ""
		ls.bound.Store(true)
		for _, h := range ls.held {
			if h != l && h.direct {
				h.retired = true
				if h.users == 0 {
					ended = append(ended, h)
				}
			}
		}
		for _, h := range ended {
			ls.removeLocked(h)
		}
	}
	ls.mu.Unlock()
	for _, h := range ended {
		h.pool.ReleaseLease(h.conn)
	}
}

// lostBinding records that the connection the client is bound on could
// not be kept on srv: its operations fail until it binds again.
func (ls *Leases) lostBinding(srv *backend.Server, why string) {
	ls.mu.Lock()
	ls.boundGone, ls.boundWhy = srv, why
	ls.bound.Store(true)
	ls.mu.Unlock()
}

// binding is the live connection the client is bound on (client-bind
// mode, or a session the server restricts), or nil; gone names the server
// when that connection was lost, or could not be kept (why says why; ""
// when it was lost).
func (ls *Leases) binding() (l *lease, gone *backend.Server, why string) {
	if !ls.bound.Load() {
		return nil, nil, ""
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.boundGone != nil {
		return nil, ls.boundGone, ls.boundWhy
	}
	for _, h := range ls.held {
		if h.bound && !h.retired {
			if h.conn.Err() != nil {
				ls.boundGone = h.srv
				return nil, h.srv, ""
			}
			return h, nil, ""
		}
	}
	return nil, nil, ""
}

// Count is the number of leases the session holds.
func (ls *Leases) Count() int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return len(ls.held)
}
