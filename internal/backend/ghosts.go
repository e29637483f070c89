package backend

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// ErrBusy is returned by Pool.OpConn when every operation connection is at
// PoolConfig.MaxPerConn: the operation should be answered busy, not queued.
var ErrBusy = errors.New("backend: every connection is at its limit of operations in flight")

// ghostWeight is what an abandoned operation counts for until the server
// has surely read its abandon: the operation itself, which may still sit in
// the server's queue, and the abandon request behind it.
const ghostWeight = 2

// ghosts tracks abandoned operations on a connection. Servers queue requests
// per connection and some close a connection whose queue grows too long
// (OpenLDAP: conn_max_pending_auth, 1000 by default); an abandon frees the
// proxy's slot at once but the server's only once it has processed it. A
// ghost is let go when a response arrives to a request sent after its
// abandon: the server reads a connection in order.
type ghosts struct {
	mu  sync.Mutex   // mu guards ids
	ids []int32      // message IDs of abandon requests, oldest first
	n   atomic.Int32 // len(ids), read without the lock at every pick
}

// addGhost counts an abandon sent with message ID id.
func (c *Conn) addGhost(id int32) {
	c.ghosts.mu.Lock()
	c.ghosts.ids = append(c.ghosts.ids, id)
	c.ghosts.n.Store(int32(len(c.ghosts.ids)))
	c.ghosts.mu.Unlock()
}

// releaseGhosts lets go of the abandons sent before the request answered
// with message ID id.
func (c *Conn) releaseGhosts(id int32) {
	if c.ghosts.n.Load() == 0 {
		return
	}
	c.ghosts.mu.Lock()
	defer c.ghosts.mu.Unlock()
	n := 0
	for n < len(c.ghosts.ids) && sentBefore(c.ghosts.ids[n], id) {
		n++
	}
	if n > 0 {
		c.ghosts.ids = append(c.ghosts.ids[:0], c.ghosts.ids[n:]...)
		c.ghosts.n.Store(int32(len(c.ghosts.ids)))
	}
}

// sentBefore reports whether message ID a was allocated before b, allowing
// for IDs wrapping around at MaxMessageID.
func sentBefore(a, b int32) bool {
	d := int64(b) - int64(a)
	return d > 0 && d < 1<<30 || d < -(1<<30)
}

// Load is the connection's weight on the server: operations in flight plus
// abandoned ones the server may not have dropped yet.
func (c *Conn) Load() int {
	return c.Inflight() + ghostWeight*int(c.ghosts.n.Load())
}

// busyError says which limit refused an operation.
func (p *Pool) busyError() error {
	return fmt.Errorf("backend %s: %w (limits.max-operations-per-server-connection %d)", p.server.Name, ErrBusy, p.cfg.MaxPerConn)
}
