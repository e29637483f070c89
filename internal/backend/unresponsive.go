package backend

import (
	"errors"
	"fmt"
)

// ErrUnresponsive is wrapped by the error Lost receives for an operation
// taken off a server that stopped answering (Server.GiveUpInFlight).
var ErrUnresponsive = errors.New("server stopped answering")

// GiveUpInFlight ends, on every open connection to s, the operations that
// would otherwise go on waiting for a server found not answering (its
// health check timed out or could not connect): those that may go to
// another server and have had no response yet (Timing.Movable), and those
// without any timeout (long-lived searches), which would wait forever.
// Each is abandoned upstream, as at a timeout, and its handler hears Lost
// with an error wrapping ErrUnresponsive and reason. Other operations
// (writes, reads part answered) keep their own timeout: the server may
// still answer them. It returns how many operations it ended.
func (s *Server) GiveUpInFlight(reason string) int {
	var stranded []expiredOp
	for _, c := range sweep.connsOf(s) {
		stranded = c.takeStranded(stranded)
	}
	err := fmt.Errorf("%w: %s", ErrUnresponsive, reason)
	for _, e := range stranded {
		e.conn.inflight.Add(-1)
		go e.end(err) // abandoning writes to a hung server: never one after the other
	}
	return len(stranded)
}

// connsOf returns the open connections to s.
func (sw *sweeper) connsOf(s *Server) []*Conn {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	var conns []*Conn
	for c := range sw.conns {
		if c.server == s {
			conns = append(conns, c)
		}
	}
	return conns
}

// takeStranded moves into dst the operations of c that GiveUpInFlight
// ends.
func (c *Conn) takeStranded(dst []expiredOp) []expiredOp {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, op := range c.pending {
		if op.deadline == 0 || op.movable && !op.answered {
			c.take(id)
			dst = append(dst, expiredOp{conn: c, id: id, op: op})
		}
	}
	return dst
}
