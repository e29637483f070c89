package backend

import (
	"testing"

	"github.com/ldapmux/ldapmux/internal/evloop"
)

// TestReadyOpConnPrefersTheCallersLoop: a connection read by the caller's
// event loop is chosen while it carries less than the growth load, even
// when another loop's connection is less loaded; past that load the least
// loaded connection wins again.
func TestReadyOpConnPrefersTheCallersLoop(t *testing.T) {
	a, err := evloop.New()
	if err != nil {
		t.Skip("no event loops here:", err)
	}
	defer a.Close()
	b, err := evloop.New()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	onA := &Conn{pending: map[int32]pendingOp{}, events: &eventReader{loop: a}}
	onB := &Conn{pending: map[int32]pendingOp{}, events: &eventReader{loop: b}}
	p := NewPool(&Server{Name: "ds1"}, PoolConfig{Conns: 2, MaxConns: 2, GrowAt: 2})
	defer func() {
		p.ops.Store(&[]*Conn{}) // the fake connections have no socket to close
		p.Close()
	}()
	ops := []*Conn{onB, onA}
	p.ops.Store(&ops)

	onA.inflight.Store(1) // onB idle, onA below grow-at
	if c, err := p.ReadyOpConn(a); err != nil || c != onA {
		t.Fatalf("caller on loop a got %v (%v), want the connection read by a", c, err)
	}
	if c, _ := p.ReadyOpConn(nil); c != onB {
		t.Fatalf("caller on no loop got %v, want the least loaded", c)
	}
	onA.inflight.Store(2) // at grow-at: no longer preferred
	if c, _ := p.ReadyOpConn(a); c != onB {
		t.Fatalf("caller on loop a got %v with its loop's connection at grow-at, want the least loaded", c)
	}
}
