package config

import (
	"runtime"
	"strconv"
)

// Event loops: where plain client and server connections wait for data
// (internal/evloop). "auto" is one loop per two GOMAXPROCS (at least one):
// on a 2-CPU machine one loop cost 10-20 % less CPU per search than two,
// which wake each other for every operation whose client and server
// connection they split (docs/performance.md), and half the CPUs leaves
// the others to the goroutines that binds, dials and the runtime need.
// "off" (or 0) gives every connection a goroutine of its own instead.
const (
	EventLoopsAuto = "auto"
	EventLoopsOff  = "off"
	maxEventLoops  = 1024
)

// EventLoopCount is the number of event loops to run; 0 when off.
func (c *Config) EventLoopCount() int {
	switch c.EventLoops {
	case "", EventLoopsAuto:
		return AutoEventLoops(runtime.GOMAXPROCS(0))
	case EventLoopsOff:
		return 0
	}
	n, _ := strconv.Atoi(c.EventLoops) // validated
	return n
}

func (c *Config) validateEventLoops(v *validator) {
	switch c.EventLoops {
	case "", EventLoopsAuto, EventLoopsOff:
		return
	}
	n, err := strconv.Atoi(c.EventLoops)
	if err != nil || n < 0 || n > maxEventLoops {
		v.add("event-loops", "must be auto, off or a number of loops from 0 to %d, not %q", maxEventLoops, c.EventLoops)
	}
}

// AutoEventLoops is the number of loops "auto" gives for procs GOMAXPROCS.
func AutoEventLoops(procs int) int { return max(1, (procs+1)/2) }
