package backend

import (
	"context"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// bindAs lends a bind connection of p and binds it as dn on the fake.
func bindAs(t *testing.T, p *Pool, dn string) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := p.BindConn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := &probeHandler{done: make(chan error, 1)}
	encode := func(dst []byte, id int32) []byte { return ldapwire.AppendSimpleBind(dst, id, dn, "secret") }
	if _, err := c.Send(h, encode, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := <-h.done; err != nil {
		t.Fatal(err)
	}
	return c
}

// A bind connection a client's bind left bound is kept for the clients
// bound as the same DN once its session passed the check: it leaves the
// bind connections (its slot freed), changes kind, and serves that DN only.
func TestBindConnectionIsKeptBoundForItsDN(t *testing.T) {
	f := startFake(t)
	p, _ := testPool(t, f, PoolConfig{Conns: 1, BindConns: 1, MaxBound: 4})
	c := bindAs(t, p, "uid=a")
	p.ReleaseBindAs(c, "uid=a")
	waitFor(t, func() bool { return p.BoundConn("uid=a") == c }, "the bind connection was not kept bound as uid=a")
	if c.Kind() != BoundConn {
		t.Errorf("kind %v, want %v", c.Kind(), BoundConn)
	}
	if p.BoundConn("uid=b") != nil || p.BoundConn("") != nil {
		t.Error("a connection bound as uid=a was offered to another DN")
	}
	if err := roundTrip(t, c); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.OpenBound != 1 || st.OpenBinds != 0 || st.Opened[BoundConn] != 1 {
		t.Errorf("stats %+v: want 1 bound connection, its bind slot freed", st)
	}
	// The clients bound as uid=a have one connection with room (Conns 1):
	// the next bind's connection goes back to the bind connections.
	c2 := bindAs(t, p, "uid=a")
	p.ReleaseBindAs(c2, "uid=a")
	if got := p.IdleBindConn(); got != c2 {
		t.Fatalf("IdleBindConn = %p, want the second bind's connection %p back", got, c2)
	}
	p.ReleaseBind(c2)
	p.Close()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the bound connection outlived its pool")
	}
	if p.Stats().OpenBound != 0 {
		t.Error("bound connections still counted after Close")
	}
}

// A session the server restricts (a password that must be changed) fails
// the check: the connection goes back to the bind connections, where the
// next bind resets it, and no client is sent there.
func TestRestrictedSessionIsNotKeptBound(t *testing.T) {
	f := startFake(t)
	f.restrictClients.Store(true)
	p, _ := testPool(t, f, PoolConfig{BindConns: 1, MaxBound: 4})
	c := bindAs(t, p, "uid=a")
	p.ReleaseBindAs(c, "uid=a")
	waitFor(t, func() bool { return p.Stats().IdleBinds == 1 }, "the restricted connection did not go back to the bind connections")
	if p.BoundConn("uid=a") != nil || p.Stats().OpenBound != 0 || c.Kind() != BindConn {
		t.Fatalf("a restricted session was kept bound: stats %+v", p.Stats())
	}
}

// At most MaxBound are kept (none with 0); the others go back to the bind
// connections.
func TestBoundConnectionsAreCapped(t *testing.T) {
	for _, max := range []int{0, 1} {
		f := startFake(t)
		p, _ := testPool(t, f, PoolConfig{BindConns: 2, MaxBound: max})
		a := bindAs(t, p, "uid=a")
		b := bindAs(t, p, "uid=b")
		p.ReleaseBindAs(a, "uid=a")
		if max > 0 {
			waitFor(t, func() bool { return p.BoundConn("uid=a") == a }, "uid=a not kept")
		}
		p.ReleaseBindAs(b, "uid=b")
		waitFor(t, func() bool { return p.Stats().IdleBinds == 2-max }, "the connection over the cap was not given back")
		if p.BoundConn("uid=b") != nil || p.Stats().OpenBound != max {
			t.Fatalf("MaxBound %d: stats %+v", max, p.Stats())
		}
	}
}

// Bound connections are never bound again: idle for IdleCheck, or past
// their age, they leave service and close.
func TestBoundConnectionsRetire(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   PoolConfig
		delay time.Duration
	}{
		{"idle", PoolConfig{IdleCheck: time.Minute, MaxAge: time.Hour}, 2 * time.Minute},
		{"old", PoolConfig{MaxAge: time.Hour}, 2 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t)
			tc.cfg.MaxBound = 4
			p, clock := testPool(t, f, tc.cfg)
			c := bindAs(t, p, "uid=a")
			p.ReleaseBindAs(c, "uid=a")
			waitFor(t, func() bool { return p.BoundConn("uid=a") == c }, "not kept")
			p.Tick()
			if p.BoundConn("uid=a") != c {
				t.Fatal("retired too early")
			}
			clock.Advance(tc.delay)
			p.Tick()
			if p.BoundConn("uid=a") != nil {
				t.Fatal("still in service")
			}
			select {
			case <-c.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("not closed")
			}
			if st := p.Stats(); st.OpenBound != 0 || st.Recycled[BoundConn] != 1 {
				t.Errorf("stats %+v: want none open, one recycled", st)
			}
		})
	}
}

// Below the pool's minimum every bind as one DN keeps its connection, all
// checked at once, so that the operations in flight of the clients bound as
// that DN each have a connection, as operation connections do; the bind
// past the minimum goes back to the bind connections.
func TestBindsAsOneDNKeepAConnectionEachUpToTheMinimum(t *testing.T) {
	f := startFake(t)
	f.hold.Store(true) // the checks wait until answerHeld
	p, _ := testPool(t, f, PoolConfig{Conns: 2, BindConns: 3, MaxBound: 4})
	a, b, c := bindAs(t, p, "uid=a"), bindAs(t, p, "uid=a"), bindAs(t, p, "uid=a")
	p.ReleaseBindAs(a, "uid=a")
	p.ReleaseBindAs(b, "uid=a")
	p.ReleaseBindAs(c, "uid=a")
	if got := p.IdleBindConn(); got != c {
		t.Fatalf("IdleBindConn = %p, want the third connection %p back at once", got, c)
	}
	p.ReleaseBind(c)
	waitFor(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.held) == 2 }, "the two checks not sent at once")
	f.answerHeld()
	waitFor(t, func() bool { m := p.bound.Load(); return m != nil && len((*m)["uid=a"]) == 2 }, "the two connections not kept")
	f.hold.Store(true)
	first, second := sendHeldBound(t, p, "uid=a"), sendHeldBound(t, p, "uid=a")
	if first == second {
		t.Fatalf("two operations in flight share bound connection %p while another is idle", first)
	}
	if st := p.Stats(); st.OpenBound != 2 || st.IdleBinds != 1 {
		t.Errorf("stats %+v: want two bound connections, one idle bind connection", st)
	}
}

// sendHeldBound sends a search the fake holds on the bound connection that
// an operation of a client bound as dn would take, and returns it.
func sendHeldBound(t *testing.T, p *Pool, dn string) *Conn {
	t.Helper()
	c := p.BoundConn(dn)
	if c == nil {
		t.Fatalf("no bound connection for %s", dn)
	}
	if _, err := c.Send(&probeHandler{done: make(chan error, 1)}, ldapwire.AppendRootDSEProbe, 0); err != nil {
		t.Fatal(err)
	}
	return c
}

// Binds as one DN at once, above the pool's minimum: while the first one's
// connection is checked, the others go back to the bind connections, so
// that a burst of logins of one application does not take a connection each.
func TestOneBoundConnectionCheckedAtATimePerDN(t *testing.T) {
	f := startFake(t)
	f.hold.Store(true) // the check waits until answerHeld
	p, _ := testPool(t, f, PoolConfig{Conns: 1, BindConns: 2, MaxBound: 4})
	a, b := bindAs(t, p, "uid=a"), bindAs(t, p, "uid=a")
	p.ReleaseBindAs(a, "uid=a")
	p.ReleaseBindAs(b, "uid=a")
	if got := p.IdleBindConn(); got != b {
		t.Fatalf("IdleBindConn = %p, want the second connection %p back at once", got, b)
	}
	p.ReleaseBind(b)
	waitFor(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.held) == 1 }, "the first connection's check not sent")
	f.answerHeld()
	waitFor(t, func() bool { return p.BoundConn("uid=a") == a }, "the first connection not kept")
	if st := p.Stats(); st.OpenBound != 1 || st.IdleBinds != 1 {
		t.Errorf("stats %+v: want one bound connection, one idle bind connection", st)
	}
}
