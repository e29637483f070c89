package frontend

import (
	"sync"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// outQueue holds the encoded responses for one client until they are
// written. Appending never blocks, so a backend connection shared by many
// clients never waits for a slow one; past limit bytes the client is dropped
// instead.
type outQueue struct {
	limit int
	wake  chan struct{} // capacity 1: the writer goroutine has work

	mu     sync.Mutex // mu guards the fields below
	buf    []byte
	closed bool
}

func newOutQueue(limit int) *outQueue {
	return &outQueue{limit: limit, wake: make(chan struct{}, 1)}
}

// push appends a copy of frame. It reports false when the queue is closed
// or the frame would take it past its limit (the frame is then dropped).
func (q *outQueue) push(frame []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	return q.fits(len(q.buf), append(q.buf, frame...))
}

// pushMessage appends msg encoded with message ID id, as push does.
func (q *outQueue) pushMessage(msg ldapwire.Message, id int32) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	return q.fits(len(q.buf), msg.WithID(q.buf, id))
}

// fits keeps grown as the buffer unless it is over the limit, in which case
// the buffer goes back to its length before the append. Caller holds mu.
func (q *outQueue) fits(before int, grown []byte) bool {
	if q.limit > 0 && len(grown) > q.limit {
		q.buf = grown[:before]
		return false
	}
	q.buf = grown
	return true
}

// take returns what is queued and installs spare, emptied, in its place.
func (q *outQueue) take(spare []byte) []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	b := q.buf
	q.buf = spare[:0]
	return b
}

// signal wakes the writer goroutine.
func (q *outQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// close refuses further frames; queued ones may still be taken.
func (q *outQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

// isClosed reports whether close was called.
func (q *outQueue) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// reusable returns b emptied for reuse, or nil when it is too big to keep
// for a connection that may go idle.
func reusable(b []byte) []byte {
	if cap(b) > maxKeptBuffer {
		return nil
	}
	return b[:0]
}

// maxKeptBuffer bounds the output buffers a session keeps between batches.
const maxKeptBuffer = 16 << 10
