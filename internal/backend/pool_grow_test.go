package backend

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// sendHeld picks an operation connection and sends a search the fake holds.
func sendHeld(t *testing.T, p *Pool) {
	t.Helper()
	c, err := p.OpConn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(&probeHandler{done: make(chan error, 1)}, ldapwire.AppendRootDSEProbe, 0); err != nil {
		t.Fatal(err)
	}
}

// warm opens a pool's first operation connection (its dial reads the root
// DSE, which the fake must answer) before searches are held.
func warm(t *testing.T, p *Pool) {
	t.Helper()
	c, err := p.OpConn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(t, c); err != nil {
		t.Fatal(err)
	}
}

// loadUntil sends held searches until cond holds, failing after 5 seconds.
func loadUntil(t *testing.T, p *Pool, cond func(PoolStats) bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond(p.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %+v", msg, p.Stats())
		}
		sendHeld(t, p)
		time.Sleep(time.Millisecond)
	}
}

// markDown publishes the pool's server as unavailable (true) or available.
func markDown(p *Pool, down bool) {
	r := NewRegistry([]*Server{p.server}, nil)
	h := Health{State: Available, Score: 10}
	if down {
		h = Health{State: Unavailable, Score: 1, Reason: "test"}
	}
	r.SetHealth(0, h)
}

func TestPoolGrowsUnderQueuedLoadUpToItsMaximum(t *testing.T) {
	f := startFake(t)
	p, _ := testPool(t, f, PoolConfig{Conns: 1, MaxConns: 4, GrowAt: 2, MaxAge: time.Hour})
	warm(t, p)
	f.hold.Store(true)
	loadUntil(t, p, func(st PoolStats) bool { return st.OpenOps == 4 }, "the pool did not grow to 4 under load")
	for range 100 {
		sendHeld(t, p)
	}
	st := p.Stats()
	if st.OpenOps+st.DialingOps != 4 || f.accepted.Load() != 4 {
		t.Fatalf("past the maximum: %+v, %d accepted", st, f.accepted.Load())
	}
	if st.Grown[OpConn] != 3 {
		t.Fatalf("grown %d, want 3 (above the minimum of 1)", st.Grown[OpConn])
	}
	for _, c := range *p.ops.Load() {
		if c.Inflight() < 20 {
			t.Fatalf("load not spread: a connection carries %d of 104", c.Inflight())
		}
	}
}

func TestPoolDoesNotGrowBelowTheThreshold(t *testing.T) {
	f := startFake(t)
	p, _ := testPool(t, f, PoolConfig{Conns: 2, MaxConns: 8, GrowAt: 4, MaxAge: time.Hour})
	warm(t, p)
	f.hold.Store(true)
	for range 6 { // at most 3 per connection once both are open
		sendHeld(t, p)
		waitFor(t, func() bool { return p.Stats().DialingOps == 0 }, "dial never ended")
	}
	if st := p.Stats(); st.OpenOps != 2 {
		t.Fatalf("grew below the threshold: %+v", st)
	}
}

func TestPoolShrinksToItsMinimumWhenIdle(t *testing.T) {
	f := startFake(t)
	p, clock := testPool(t, f, PoolConfig{Conns: 2, MaxConns: 5, GrowAt: 1, MaxAge: time.Hour, IdleCheck: time.Second})
	warm(t, p)
	f.hold.Store(true)
	loadUntil(t, p, func(st PoolStats) bool { return st.OpenOps == 5 }, "the pool did not grow to 5")
	f.answerHeld()
	ops := append([]*Conn(nil), *p.ops.Load()...)
	waitFor(t, func() bool {
		for _, c := range ops {
			if c.Inflight() > 0 {
				return false
			}
		}
		return true
	}, "held searches never ended")
	p.Tick() // not idle long enough yet
	if st := p.Stats(); st.OpenOps != 5 {
		t.Fatalf("shrank before idle-check: %+v", st)
	}
	clock.Set(time.Now().Add(2 * time.Second)) // idle times are taken from the real clock
	p.Tick()
	if st := p.Stats(); st.OpenOps != 2 || st.Shrunk[OpConn] != 3 {
		t.Fatalf("want 2 open, 3 shrunk: %+v", st)
	}
	for _, c := range ops[2:] { // the newest went
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a connection above the minimum was not closed")
		}
	}
	for _, c := range ops[:2] {
		if c.Err() != nil {
			t.Fatalf("an oldest connection was closed: %v", c.Err())
		}
	}
}

func TestPoolDoesNotGrowWhileTheServerIsUnavailable(t *testing.T) {
	f := startFake(t)
	p, _ := testPool(t, f, PoolConfig{Conns: 1, MaxConns: 4, GrowAt: 1, MaxAge: time.Hour})
	warm(t, p)
	f.hold.Store(true)
	markDown(p, true)
	for range 20 {
		sendHeld(t, p)
	}
	if st := p.Stats(); st.OpenOps+st.DialingOps != 1 || f.accepted.Load() != 1 {
		t.Fatalf("grew while unavailable: %+v", st)
	}
	markDown(p, false)
	loadUntil(t, p, func(st PoolStats) bool { return st.OpenOps == 4 }, "did not grow once available")
}

func TestPoolGrowthPausesAfterAFailedDial(t *testing.T) {
	f := startFake(t)
	p, clock := testPool(t, f, PoolConfig{Conns: 1, MaxConns: 8, GrowAt: 1, MaxAge: time.Hour})
	warm(t, p)
	f.hold.Store(true)
	f.refuse.Store(true) // later dials fail their service bind
	loadUntil(t, p, func(st PoolStats) bool { return st.Failed[OpConn] > 0 }, "no failed dial")
	waitFor(t, func() bool { return p.Stats().DialingOps == 0 }, "dials never ended")
	tried := f.accepted.Load()
	for range 50 {
		sendHeld(t, p)
	}
	if st := p.Stats(); st.DialingOps != 0 || f.accepted.Load() != tried {
		t.Fatalf("dialed again during the pause: %d connections, %+v", f.accepted.Load(), st)
	}
	// One failure pauses growth for growBackoffMin; two dials that failed
	// together (two may run at once) for twice that. Past the pause set:
	pause := time.Unix(0, p.growPause.Load()).Sub(clock.Now())
	if pause < growBackoffMin/2 || pause > 2*growBackoffMin {
		t.Fatalf("growth paused for %s after %d failed dials, want %s to %s", pause, p.Stats().Failed[OpConn], growBackoffMin, 2*growBackoffMin)
	}
	clock.Advance(pause + time.Millisecond)
	f.refuse.Store(false)
	loadUntil(t, p, func(st PoolStats) bool { return st.OpenOps >= 2 }, "growth did not resume after the pause")
}

func TestBindConnectionsGrowWhileBindsWaitAndShrinkWhenIdle(t *testing.T) {
	f := startFake(t)
	p, clock := testPool(t, f, PoolConfig{BindConns: 1, MaxBindConns: 3, IdleCheck: time.Second, MaxAge: time.Hour})
	var lent []*Conn
	for range 3 {
		c, err := p.BindConn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		lent = append(lent, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.BindConn(ctx); err == nil {
		t.Fatal("a bind connection was lent beyond the maximum")
	}
	if st := p.Stats(); st.OpenBinds != 3 || st.Grown[BindConn] != 2 {
		t.Fatalf("want 3 open, 2 grown: %+v", st)
	}
	got := make(chan *Conn)
	go func() {
		c, _ := p.BindConn(context.Background())
		got <- c
	}()
	p.ReleaseBind(lent[0])
	if c := <-got; c != lent[0] {
		t.Fatal("a waiting bind did not get the released connection")
	}
	for _, c := range lent {
		p.ReleaseBind(c)
	}
	clock.Set(time.Now().Add(2 * time.Second))
	p.Tick()
	if st := p.Stats(); st.OpenBinds != 1 || st.IdleBinds != 1 || st.Shrunk[BindConn] != 2 {
		t.Fatalf("want 1 bind connection left: %+v", st)
	}
}

func TestBindConnectionsDoNotGrowWhileTheServerIsUnavailable(t *testing.T) {
	f := startFake(t)
	p, _ := testPool(t, f, PoolConfig{BindConns: 1, MaxBindConns: 3})
	c, err := p.BindConn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	markDown(p, true)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.BindConn(ctx); err == nil {
		t.Fatal("grew while the server is unavailable")
	}
	markDown(p, false)
	c2, err := p.BindConn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p.ReleaseBind(c)
	p.ReleaseBind(c2)
}

func TestBindGrowthDialsAFewAtATime(t *testing.T) {
	f := startFake(t)
	p, _ := testPool(t, f, PoolConfig{BindConns: 1, MaxBindConns: 8})
	if ok, growing := p.takeBindSlot(); !ok || growing {
		t.Fatalf("the minimum: ok %v growing %v", ok, growing)
	}
	for i := range maxGrowDials {
		if ok, growing := p.takeBindSlot(); !ok || !growing {
			t.Fatalf("growth dial %d refused", i+1)
		}
	}
	if ok, _ := p.takeBindSlot(); ok {
		t.Fatalf("more than %d growth dials at once", maxGrowDials)
	}
	p.bindDialing.Add(-1) // one growth dial ended
	if ok, growing := p.takeBindSlot(); !ok || !growing {
		t.Fatal("growth did not resume once a dial ended")
	}
	if st := p.Stats(); st.OpenBinds != 2+maxGrowDials || st.Grown[BindConn] != 1+maxGrowDials {
		t.Fatalf("stats %+v", st)
	}
}

// An unbound connection carries at most AnonMaxPerConn operations, even
// when the configured cap is higher: OpenLDAP closes an anonymous session
// with more queued. Past it, with no room to grow, the pool is busy.
func TestAnonymousConnectionsCarryAtMostTheirCap(t *testing.T) {
	f := startFake(t)
	p, _ := testPool(t, f, PoolConfig{Conns: 1, MaxConns: 1, MaxPerConn: 500, MaxAge: time.Hour})
	anon := p.Anonymous()
	warm(t, p)
	warm(t, anon)
	f.hold.Store(true)
	for range AnonMaxPerConn {
		sendHeld(t, anon)
	}
	if _, err := anon.ReadyOpConn(nil); !errors.Is(err, ErrBusy) {
		t.Fatalf("operation %d on the one unbound connection: %v, want ErrBusy", AnonMaxPerConn+1, err)
	}
	c, err := p.ReadyOpConn(nil) // the service-bound connections keep their own cap
	if err != nil || c == nil {
		t.Fatalf("service-bound connection: %v, %v", c, err)
	}
}

// Senders that picked the same connection at once never take it past its
// cap together: each is checked as it sends, and those that come too late
// are busy. The server sees no more than the cap, however many raced.
func TestConcurrentSendersStayWithinTheConnectionCap(t *testing.T) {
	const limit, senders = 10, 64
	f := startFake(t)
	p, _ := testPool(t, f, PoolConfig{Conns: 1, MaxConns: 1, MaxPerConn: limit, MaxAge: time.Hour})
	warm(t, p)
	c, err := p.ReadyOpConn(nil)
	if err != nil || c == nil {
		t.Fatalf("connection: %v, %v", c, err)
	}
	f.hold.Store(true)
	var sent, busy atomic.Int32
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			<-start
			_, err := c.Send(&probeHandler{done: make(chan error, 1)}, ldapwire.AppendRootDSEProbe, 0)
			switch {
			case err == nil:
				sent.Add(1)
			case errors.Is(err, ErrBusy):
				busy.Add(1)
			default:
				t.Errorf("send: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if sent.Load() != limit || busy.Load() != senders-limit || c.Load() != limit {
		t.Fatalf("%d sent, %d busy, load %d; want %d sent, the others busy", sent.Load(), busy.Load(), c.Load(), limit)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.heldCount() < limit && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := f.heldCount(); got != limit {
		t.Fatalf("the server holds %d requests, want %d", got, limit)
	}
}
