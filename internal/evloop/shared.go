package evloop

import (
	"os"
	"runtime"
	"strconv"
	"sync"
)

// EnvLoops names the environment variable that sets the number of shared
// loops: 0 turns them off (every socket then gets a goroutine of its
// own, as with net alone); unset or "auto" means one per GOMAXPROCS.
const EnvLoops = "LDAPMUX_EVENT_LOOPS"

var shared struct {
	once sync.Once
	g    *Group
}

// Shared is the process's group of loops, started on first use, or nil
// when loops are turned off or not supported here.
func Shared() *Group {
	shared.once.Do(func() {
		n := runtime.GOMAXPROCS(0)
		if v := os.Getenv(EnvLoops); v != "" && v != "auto" {
			parsed, err := strconv.Atoi(v)
			if err != nil || parsed < 0 {
				return // a value that is not a count: stay on the path every platform has
			}
			n = parsed
		}
		if n == 0 {
			return
		}
		if g, err := NewGroup(n); err == nil {
			shared.g = g
		}
	})
	return shared.g
}
