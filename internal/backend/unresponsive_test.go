package backend

import (
	"errors"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// TestGiveUpInFlightTakesWhatCanLeave: on a server found not answering, the
// reads that have had no response and the operations without a timeout are
// ended at once with ErrUnresponsive and abandoned upstream; a write and a
// read already part answered keep waiting, and so does an operation on
// another server.
func TestGiveUpInFlightTakesWhatCanLeave(t *testing.T) {
	f, _, c := hungConn(t, PoolConfig{Conns: 1})
	_, _, other := hungConn(t, PoolConfig{Conns: 1})
	const long = time.Minute
	read := sendTimed(t, c, Timing{Silence: long, Movable: true})
	longLived := sendTimed(t, c, Timing{Movable: true})
	write := sendTimed(t, c, Timing{Silence: long})
	partial := sendTimed(t, c, Timing{Silence: long, Movable: true})
	elsewhere := sendTimed(t, other, Timing{Silence: long, Movable: true})
	if _, err := c.dispatch(ldapwire.AppendSearchEntry(nil, partial.id, "cn=one", nil, false)); err != nil {
		t.Fatal(err)
	}

	if n := c.server.GiveUpInFlight("health check timed out"); n != 2 {
		t.Fatalf("GiveUpInFlight ended %d operations, want 2 (the unanswered read and the long-lived one)", n)
	}
	for name, h := range map[string]*sentOp{"read": read, "long-lived search": longLived} {
		select {
		case err := <-h.done:
			if !errors.Is(err, ErrUnresponsive) {
				t.Fatalf("%s ended with %v, want ErrUnresponsive", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s was not ended", name)
		}
	}
	waitFor(t, func() bool { return f.abandons.Load() == 2 }, "the two operations were not abandoned upstream")
	for name, h := range map[string]*sentOp{"write": write, "part-answered read": partial, "operation on another server": elsewhere} {
		select {
		case err := <-h.done:
			t.Fatalf("%s ended: %v", name, err)
		default:
		}
	}
	if c.Inflight() != 2 || c.Err() != nil {
		t.Fatalf("connection in flight %d, err %v; want 2 and open", c.Inflight(), c.Err())
	}
}

// sentOp is an operation sent with sendTimed.
type sentOp struct {
	*probeHandler
	id int32
}

func sendTimed(t *testing.T, c *Conn, timing Timing) *sentOp {
	t.Helper()
	h := &probeHandler{done: make(chan error, 1)}
	id, err := c.SendTimed(h, ldapwire.AppendRootDSEProbe, timing)
	if err != nil {
		t.Fatal(err)
	}
	return &sentOp{probeHandler: h, id: id}
}
