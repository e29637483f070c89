package config

import (
	"runtime"
	"strconv"
)

// Event loops: where plain client and server connections wait for data
// (internal/evloop). "auto" is one loop per GOMAXPROCS; "off" (or 0)
// gives every connection a goroutine of its own instead.
const (
	EventLoopsAuto = "auto"
	EventLoopsOff  = "off"
	maxEventLoops  = 1024
)

// EventLoopCount is the number of event loops to run; 0 when off.
func (c *Config) EventLoopCount() int {
	switch c.EventLoops {
	case "", EventLoopsAuto:
		return runtime.GOMAXPROCS(0)
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
