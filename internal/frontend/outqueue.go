package frontend

import (
	"sync"
	"sync/atomic"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// outQueue holds the encoded responses for one client until they are
// written. Appending never blocks, so a backend connection shared by many
// clients never waits for a slow one; past limit bytes the client is dropped
// instead.
type outQueue struct {
	limit int
	wake  chan struct{} // capacity 1: the writer goroutine has work
	// high and low bound what a leased server connection adds to: past
	// high it waits until the backlog is under low (backend.Backlog).
	high, low int64
	// backlog counts the bytes queued and not yet written (queued or taken
	// by a writer).
	backlog atomic.Int64
	// waiting is set while drained has functions to call.
	waiting atomic.Bool

	mu      sync.Mutex // mu guards the fields below
	buf     []byte
	closed  bool
	drained []func() // called once backlog falls under low, or at close
}

// maxBacklog is the most a leased connection adds to a client's queue
// before it waits for the client; limit/4 when that is smaller.
const maxBacklog = 1 << 20

func newOutQueue(limit int) *outQueue {
	high := int64(maxBacklog)
	if limit > 0 && int64(limit/4) < high {
		high = int64(limit / 4)
	}
	return &outQueue{limit: limit, wake: make(chan struct{}, 1), high: high, low: high / 2}
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
	q.backlog.Add(int64(len(grown) - before))
	return true
}

// written counts n bytes written to the client, and calls the functions
// waiting for the backlog to fall under low once it has.
func (q *outQueue) written(n int) {
	if q.backlog.Add(-int64(n)) < q.low && q.waiting.Load() {
		q.release()
	}
}

// backlogged reports whether the backlog is past high.
func (q *outQueue) backlogged() bool { return q.backlog.Load() >= q.high }

// whenDrained calls f once the backlog is under low, at once when it is
// or the queue is closed. waiting is set before the backlog is read, so a
// writer that brings it under low after that read finds waiting set.
func (q *outQueue) whenDrained(f func()) {
	q.mu.Lock()
	q.waiting.Store(true)
	if q.closed || q.backlog.Load() < q.low {
		q.waiting.Store(len(q.drained) > 0)
		q.mu.Unlock()
		f()
		return
	}
	q.drained = append(q.drained, f)
	q.mu.Unlock()
}

// release calls and forgets the functions waiting in drained.
func (q *outQueue) release() {
	q.mu.Lock()
	fs := q.drained
	q.drained = nil
	q.waiting.Store(false)
	q.mu.Unlock()
	for _, f := range fs {
		f()
	}
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
	q.release() // a held connection reads on, and finds the client gone
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
