package frontend

import "sync"

// outQueue holds response frames for one client until its writer sends them.
// Pushing never blocks, so a backend connection shared by many clients never
// waits for a slow one; past limit bytes the client is dropped instead.
type outQueue struct {
	limit int
	wake  chan struct{}

	mu     sync.Mutex // mu guards the fields below
	frames [][]byte
	bytes  int
	closed bool
}

func newOutQueue(limit int) *outQueue {
	return &outQueue{limit: limit, wake: make(chan struct{}, 1)}
}

// push queues a frame. It reports false when the queue is closed or the frame
// would take it past its limit (the frame is then dropped).
func (q *outQueue) push(frame []byte) bool {
	q.mu.Lock()
	if q.closed || (q.limit > 0 && q.bytes+len(frame) > q.limit) {
		q.mu.Unlock()
		return false
	}
	q.frames = append(q.frames, frame)
	q.bytes += len(frame)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// take moves every queued frame into dst and returns it.
func (q *outQueue) take(dst [][]byte) [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	dst = append(dst, q.frames...)
	clear(q.frames)
	q.frames = q.frames[:0]
	q.bytes = 0
	return dst
}

// close refuses further frames; queued ones may still be taken.
func (q *outQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// isClosed reports whether close was called.
func (q *outQueue) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}
