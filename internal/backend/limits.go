package backend

import (
	"sync/atomic"
	"time"
)

// TryBegin counts an operation as outstanding unless limit (> 0) operations
// already are. It returns the function that ends it (as Begin does), or
// false at the limit.
func (s *Server) TryBegin(limit int64) (end func(), ok bool) {
	if limit <= 0 {
		return s.Begin(), true
	}
	for {
		n := s.outstanding.Load()
		if n >= limit {
			return nil, false
		}
		if s.outstanding.CompareAndSwap(n, n+1) {
			return s.ender(), true
		}
	}
}

// ender is Begin's end function for an operation already counted.
func (s *Server) ender() func() {
	start := time.Now()
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			s.outstanding.Add(-1)
			s.busyNanos.Add(int64(time.Since(start)))
			s.completed.Add(1)
		}
	}
}
