package backend

import "time"

// StartOp counts an operation as outstanding unless limit (> 0) operations
// already are: it returns the start time to give to EndOp, or false at the
// limit.
func (s *Server) StartOp(limit int64) (started int64, ok bool) {
	for {
		n := s.outstanding.Load()
		if limit > 0 && n >= limit {
			return 0, false
		}
		if s.outstanding.CompareAndSwap(n, n+1) {
			return nanotime(), true
		}
	}
}

// EndOp ends an operation counted by StartOp; call it exactly once.
func (s *Server) EndOp(started int64) {
	s.outstanding.Add(-1)
	s.busyNanos.Add(nanotime() - started)
	s.completed.Add(1)
}

// CancelOp undoes StartOp for an operation that was not sent.
func (s *Server) CancelOp() { s.outstanding.Add(-1) }

// nanotime is the monotonic clock in nanoseconds since the process started.
func nanotime() int64 { return int64(time.Since(processStart)) }

var processStart = time.Now()
