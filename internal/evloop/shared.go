package evloop

import "sync"

var shared struct {
	mu     sync.Mutex
	groups map[int]*Group
}

// Shared returns the process's group of n loops, started on first use and
// kept for the life of the process (every ldapmux instance in a process
// with the same setting shares it), or nil when n is 0 or loops are not
// supported here: connections then get a goroutine each.
func Shared(n int) *Group {
	if n <= 0 {
		return nil
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if g, ok := shared.groups[n]; ok {
		return g
	}
	g, err := NewGroup(n)
	if err != nil {
		g = nil
	}
	if shared.groups == nil {
		shared.groups = make(map[int]*Group)
	}
	shared.groups[n] = g
	return g
}
