package backend

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// TestTimeoutAbandonsAndTellsTheHandler: an operation with no answer within
// its timeout is taken from the connection, abandoned on the server and
// reported as ErrTimeout, while one without a timeout keeps waiting and the
// connection stays usable.
func TestTimeoutAbandonsAndTellsTheHandler(t *testing.T) {
	f, _, c := hungConn(t, PoolConfig{Conns: 1})
	sent := time.Now()
	timed := sendProbe(t, c, 50*time.Millisecond)
	patient := sendProbe(t, c, 0)
	expectTimeout(t, timed, "the timeout never fired")
	if waited := time.Since(sent); waited < 50*time.Millisecond {
		t.Fatalf("timed out after %s, before its timeout", waited)
	}
	waitFor(t, func() bool { return f.abandons.Load() == 1 }, "the server never received the abandon")
	select {
	case err := <-patient.done:
		t.Fatalf("operation without a timeout ended: %v", err)
	default:
	}
	if c.Err() != nil || c.Inflight() != 1 {
		t.Fatalf("connection err %v, in flight %d; want open with 1", c.Err(), c.Inflight())
	}
}

// TestTimeoutClosesABindConnection: a bind cannot be abandoned, so its
// connection is closed.
func TestTimeoutClosesABindConnection(t *testing.T) {
	f := startFake(t)
	p, _ := testPool(t, f, PoolConfig{Conns: 1, BindConns: 1})
	c, err := p.BindConn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.hang.Store(true)
	expectTimeout(t, sendProbe(t, c, 20*time.Millisecond), "the timeout never fired")
	waitFor(t, func() bool { return c.Err() != nil }, "the bind connection stayed open")
	p.ReleaseBind(c)
}

// TestSweeperSleepsAndWakes: once no operation has a deadline the sweeper
// parks, and a new operation with one wakes it.
func TestSweeperSleepsAndWakes(t *testing.T) {
	_, _, c := hungConn(t, PoolConfig{Conns: 1})
	waitFor(t, sweep.parked.Load, "the sweeper never parked with nothing to watch")
	for range 3 {
		expectTimeout(t, sendProbe(t, c, 10*time.Millisecond), "a parked sweeper missed the operation")
		waitFor(t, sweep.parked.Load, "the sweeper never parked again")
	}
}

// sendProbe sends a root DSE probe on c with timeout and returns its handler.
func sendProbe(t *testing.T, c *Conn, timeout time.Duration) *probeHandler {
	t.Helper()
	h := &probeHandler{done: make(chan error, 1)}
	if _, err := c.Send(h, ldapwire.AppendRootDSEProbe, timeout); err != nil {
		t.Fatal(err)
	}
	return h
}

// expectTimeout waits for h to be told ErrTimeout; missed says what went
// wrong when it is not told within 5 seconds.
func expectTimeout(t *testing.T, h *probeHandler, missed string) {
	t.Helper()
	select {
	case err := <-h.done:
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("got %v, want ErrTimeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal(missed)
	}
}

// TestHeldConnectionIsNotSilent: while a connection is held for its client
// (Backlog), its operations' silence timeout does not fire: the server is
// not silent, ldapmux does not read it. Once the hold ends, it fires again.
func TestHeldConnectionIsNotSilent(t *testing.T) {
	_, _, c := hungConn(t, PoolConfig{Conns: 1})
	c.held.Store(true)
	h := sendProbe(t, c, 20*time.Millisecond)
	now := nanotime()
	c.mu.Lock()
	for id, op := range c.pending { // as if its silence had run out long ago
		op.deadline = now - int64(time.Second)
		c.pending[id] = op
	}
	c.mu.Unlock()
	if expired, _ := c.takeExpired(now, nil); len(expired) != 0 {
		t.Fatalf("%d operations timed out on a held connection", len(expired))
	}
	select {
	case err := <-h.done:
		t.Fatalf("operation ended while its connection was held: %v", err)
	default:
	}
	c.held.Store(false)
	expectTimeout(t, h, "the timeout did not fire once the hold ended")
}
