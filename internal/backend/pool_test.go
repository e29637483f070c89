package backend

import (
	"context"
	"github.com/ldapmux/ldapmux/internal/evloop/evlooptest"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// fakeServer is a tiny LDAP server: it accepts binds, answers searches of
// the root DSE at once unless told to hang, and records abandons.
type fakeServer struct {
	l        net.Listener
	accepted atomic.Int64
	abandons atomic.Int64
	hang     atomic.Bool // stop answering searches
	hold     atomic.Bool // keep searches unanswered until answerHeld
	refuse   atomic.Bool // refuse binds (invalidCredentials)
	// refuseAnon answers searches on connections that never bound with
	// unwillingToPerform, as slapd's `require authc` does
	refuseAnon atomic.Bool
	// restrictClients answers searches on connections bound as anyone but
	// the service account with insufficientAccess, as slapd's password
	// policy does to a session whose password must be changed
	restrictClients atomic.Bool
	mu              sync.Mutex
	conns           []net.Conn
	held            []heldSearch
}

// heldSearch is a search the fake answers when told to.
type heldSearch struct {
	nc net.Conn
	id int32
}

func startFake(t *testing.T) *fakeServer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{l: l}
	t.Cleanup(f.close)
	go f.accept()
	return f
}

func (f *fakeServer) accept() {
	for {
		nc, err := f.l.Accept()
		if err != nil {
			return
		}
		f.accepted.Add(1)
		f.mu.Lock()
		f.conns = append(f.conns, nc)
		f.mu.Unlock()
		go f.serve(nc)
	}
}

func (f *fakeServer) serve(nc net.Conn) {
	r := ldapwire.NewReader(nc, 0)
	bound, client := false, false
	for {
		frame, err := r.Next()
		if err != nil {
			return
		}
		msg, _ := ldapwire.Parse(frame)
		switch msg.OpTag {
		case ldapwire.OpBindRequest:
			code := 0
			if f.refuse.Load() {
				code = 49
			}
			bound = code == 0
			br, _ := ldapwire.ParseBind(msg.Body)
			client = bound && string(br.Name) != "cn=service"
			nc.Write(ldapwire.AppendResult(nil, msg.ID, ldapwire.OpBindResponse, code, ""))
		case ldapwire.OpSearchRequest:
			if f.refuseAnon.Load() && !bound {
				nc.Write(ldapwire.AppendResult(nil, msg.ID, ldapwire.OpSearchResultDone, ldapwire.UnwillingToPerform, "authentication required"))
			} else if f.restrictClients.Load() && client {
				nc.Write(ldapwire.AppendResult(nil, msg.ID, ldapwire.OpSearchResultDone, ldapwire.InsufficientAccessRights, "Operations are restricted to bind/unbind/abandon/StartTLS/modify password"))
			} else if f.hold.Load() {
				f.mu.Lock()
				f.held = append(f.held, heldSearch{nc, msg.ID})
				f.mu.Unlock()
			} else if !f.hang.Load() {
				nc.Write(ldapwire.AppendResult(nil, msg.ID, ldapwire.OpSearchResultDone, 0, ""))
			}
		case ldapwire.OpAbandonRequest:
			f.abandons.Add(1)
		}
	}
}

// answerHeld answers the searches held so far and stops holding.
func (f *fakeServer) answerHeld() {
	f.hold.Store(false)
	f.mu.Lock()
	held := f.held
	f.held = nil
	f.mu.Unlock()
	for _, h := range held {
		h.nc.Write(ldapwire.AppendResult(nil, h.id, ldapwire.OpSearchResultDone, 0, ""))
	}
}

// heldCount is the number of searches held unanswered.
func (f *fakeServer) heldCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.held)
}

// dropAll closes every accepted connection (a server restart).
func (f *fakeServer) dropAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

func (f *fakeServer) close() {
	f.l.Close()
	f.dropAll()
}

func testPool(t *testing.T, f *fakeServer, cfg PoolConfig) (*Pool, *fakeClock) {
	clock := &fakeClock{now: time.Now()}
	s := &Server{Name: "fake", Address: f.l.Addr().String(), Loops: evlooptest.Loops()}
	cfg.ConnectTimeout, cfg.OperationTimeout = time.Second, time.Second
	cfg.BindDN, cfg.Password = "cn=service", "secret" // the bind round trip also means the fake has registered the connection
	if cfg.Conns == 0 {
		cfg.Conns = 2
	}
	cfg.BindConns = max(cfg.BindConns, 1)
	p := NewPool(s, cfg)
	p.now, p.anon.now = clock.Now, clock.Now
	t.Cleanup(p.Close)
	return p, clock
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// roundTrip sends a root DSE probe and waits for its answer.
func roundTrip(t *testing.T, c *Conn) error {
	h := &probeHandler{done: make(chan error, 1)}
	if _, err := c.Send(h, ldapwire.AppendRootDSEProbe, 0); err != nil {
		return err
	}
	select {
	case err := <-h.done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("no answer from the fake server")
		return nil
	}
}

func TestPoolReusesConnections(t *testing.T) {
	f := startFake(t)
	p, _ := testPool(t, f, PoolConfig{Conns: 2, MaxAge: time.Hour})
	for i := 0; i < 50; i++ {
		c, err := p.OpConn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := roundTrip(t, c); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.accepted.Load(); n > 2 {
		t.Fatalf("%d connections opened for sequential operations, want at most 2", n)
	}
}

func TestPoolRecyclesOldConnections(t *testing.T) {
	f := startFake(t)
	p, clock := testPool(t, f, PoolConfig{Conns: 1, MaxAge: time.Minute})
	first, err := p.OpConn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute)
	p.Tick()
	select {
	case <-first.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the expired connection was not closed")
	}
	second, err := p.OpConn(context.Background())
	if err != nil || second == first {
		t.Fatalf("want a new connection, got %v %v", second == first, err)
	}
	if st := p.Stats(); st.Recycled[OpConn] != 1 || st.Opened[OpConn] != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPoolReplacesConnectionsThatFailTheIdleProbe(t *testing.T) {
	f := startFake(t)
	p, clock := testPool(t, f, PoolConfig{Conns: 1, MaxAge: time.Hour, IdleCheck: time.Second})
	c, err := p.OpConn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.hang.Store(true)
	c.lastUsed.Store(clock.Now().Add(-time.Minute).UnixNano())
	p.Tick()
	if c.Err() == nil {
		t.Fatal("a connection that did not answer its idle probe is still open")
	}
	f.hang.Store(false)
	c2, err := p.OpConn(context.Background())
	if err != nil || c2 == c {
		t.Fatalf("want a replacement connection: %v", err)
	}
	if err := roundTrip(t, c2); err != nil {
		t.Fatal(err)
	}
}

// hungConn opens the only operation connection of a pool configured as cfg
// on a fake server that then stops answering searches.
func hungConn(t *testing.T, cfg PoolConfig) (*fakeServer, *Pool, *Conn) {
	t.Helper()
	f := startFake(t)
	p, _ := testPool(t, f, cfg)
	c, err := p.OpConn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.hang.Store(true)
	return f, p, c
}

func TestAbandonUsesTheBackendMessageID(t *testing.T) {
	f, _, c := hungConn(t, PoolConfig{Conns: 1})
	id, err := c.Send(&probeHandler{done: make(chan error, 1)}, ldapwire.AppendRootDSEProbe, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Abandon(id) {
		t.Fatal("operation was not pending")
	}
	if c.Abandon(id) {
		t.Fatal("abandoned twice")
	}
	waitFor(t, func() bool { return f.abandons.Load() > 0 }, "the server never received the abandon")
	if c.Inflight() != 0 {
		t.Fatalf("in flight %d after abandon", c.Inflight())
	}
}

func TestLostConnectionFailsPendingOperations(t *testing.T) {
	f, _, c := hungConn(t, PoolConfig{Conns: 1})
	h := sendProbe(t, c, 0)
	f.dropAll()
	select {
	case err := <-h.done:
		if err == nil {
			t.Fatal("want an error for the lost operation")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pending operation never failed")
	}
}

func TestBindConnectionsAreLentOneAtATime(t *testing.T) {
	f := startFake(t)
	p, _ := testPool(t, f, PoolConfig{BindConns: 1})
	c, err := p.BindConn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.BindConn(ctx); err == nil {
		t.Fatal("a second bind connection was lent beyond the limit")
	}
	p.ReleaseBind(c)
	c2, err := p.BindConn(context.Background())
	if err != nil || c2 != c {
		t.Fatalf("want the released connection back: %v", err)
	}
	p.ReleaseBind(c2)
}

func TestMessageIDsSkipOutstandingOnes(t *testing.T) {
	_, _, c := hungConn(t, PoolConfig{Conns: 1})
	c.mu.Lock()
	c.nextID = ldapwire.MaxMessageID - 1
	c.mu.Unlock()
	seen := map[int32]bool{}
	for i := 0; i < 4; i++ {
		id, err := c.Send(&probeHandler{done: make(chan error, 1)}, ldapwire.AppendRootDSEProbe, 0)
		if err != nil {
			t.Fatal(err)
		}
		if id <= 0 || seen[id] {
			t.Fatalf("bad or repeated message ID %d", id)
		}
		seen[id] = true
	}
}

// waitFor polls cond until it holds, failing with msg after 5 seconds.
func waitFor(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Anonymous clients' operations get connections of their own that are
// never bound: they open where the service account is refused, are counted
// as kind anonymous, and close with the pool.
func TestAnonymousConnectionsAreNeverBound(t *testing.T) {
	f := startFake(t)
	f.refuse.Store(true)
	p, _ := testPool(t, f, PoolConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := p.OpConn(ctx); err == nil {
		t.Fatal("an operation connection opened though the service bind is refused")
	}
	c, err := p.Anonymous().OpConn(ctx)
	if err != nil {
		t.Fatalf("anonymous connection: %v", err)
	}
	if c.Kind() != AnonConn {
		t.Errorf("kind %v, want %v", c.Kind(), AnonConn)
	}
	if err := roundTrip(t, c); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.OpenAnon != 1 || st.OpenOps != 0 || st.Opened[AnonConn] != 1 || st.Opened[OpConn] != 0 || st.Failed[OpConn] == 0 {
		t.Errorf("stats %+v: want 1 anonymous connection open and opened, no operation connection, a failed one", st)
	}
	p.Close()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the anonymous connection outlived its pool")
	}
}

// IdleBindConn lends an idle bind connection without waiting, each one
// once, never one past its age (that one is closed and its slot freed).
func TestIdleBindConnLendsWithoutWaiting(t *testing.T) {
	f := startFake(t)
	p, clock := testPool(t, f, PoolConfig{BindConns: 1, MaxBindConns: 2, MaxAge: time.Minute})
	if c := p.IdleBindConn(); c != nil {
		t.Fatal("lent a bind connection before any was opened")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := p.BindConn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.ReleaseBind(c)
	if got := p.IdleBindConn(); got != c {
		t.Fatalf("IdleBindConn = %p, want the idle connection %p", got, c)
	}
	if p.IdleBindConn() != nil {
		t.Fatal("lent a connection already lent")
	}
	p.ReleaseBind(c)
	clock.Advance(2 * time.Minute)
	if p.IdleBindConn() != nil {
		t.Fatal("lent a connection past its age")
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the expired bind connection was not closed")
	}
	waitFor(t, func() bool { return p.Stats().OpenBinds == 0 }, "the expired connection's slot freed")
}

// A bind connection that the server closes while it waits in the pool (its
// idle timeout) is no longer counted open after the next maintenance pass,
// long before the idle check would probe it, and the next bind gets a new one.
func TestIdleBindConnClosedByTheServerIsLetGo(t *testing.T) {
	f := startFake(t)
	p, _ := testPool(t, f, PoolConfig{BindConns: 1, MaxBindConns: 2, IdleCheck: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := p.BindConn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(t, c); err != nil { // the fake has registered the connection once it answers
		t.Fatal(err)
	}
	p.ReleaseBind(c)
	f.dropAll()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the event loop did not see the server close the idle bind connection")
	}
	if got := p.Stats().OpenBinds; got != 1 {
		t.Fatalf("before the maintenance pass: %d open bind connections, want the closed one still counted", got)
	}
	p.Tick()
	if st := p.Stats(); st.OpenBinds != 0 || st.IdleBinds != 0 {
		t.Fatalf("after the maintenance pass: %d open, %d idle bind connections, want none", st.OpenBinds, st.IdleBinds)
	}
	if next, err := p.BindConn(ctx); err != nil || next == c {
		t.Fatalf("next bind connection: %p, %v; want a new one", next, err)
	} else {
		p.ReleaseBind(next)
	}
}

// The idle probe of an unbound connection takes any answer: a server that
// refuses anonymous clients answers it with an error, and the connection
// is alive. One that does not answer at all is closed.
func TestAnonymousProbeTakesAnyAnswer(t *testing.T) {
	f := startFake(t)
	p, clock := testPool(t, f, PoolConfig{Conns: 1, MaxAge: time.Hour, IdleCheck: time.Second})
	anon := p.Anonymous()
	c, err := anon.OpConn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.refuseAnon.Store(true)
	c.lastUsed.Store(clock.Now().Add(-time.Minute).UnixNano())
	anon.Tick()
	if c.Err() != nil {
		t.Fatalf("an unbound connection whose probe was refused was closed: %v", c.Err())
	}
	if st := p.Stats(); st.Failed[AnonConn] != 0 {
		t.Fatalf("a refused probe counted as a failure: %+v", st)
	}
	f.refuseAnon.Store(false)
	f.hang.Store(true)
	c.lastUsed.Store(clock.Now().Add(-time.Minute).UnixNano())
	anon.Tick()
	if c.Err() == nil {
		t.Fatal("an unbound connection that did not answer its probe is still open")
	}
}
