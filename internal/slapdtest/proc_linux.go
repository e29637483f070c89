package slapdtest

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
	"time"
)

// sysProcAttr puts slapd in its own process group (a Ctrl-C in the demo's
// terminal reaches only ldapmux, which then calls Close) and asks the
// kernel to SIGKILL it if the parent dies, so a crashed test binary does
// not leak servers.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// waitProcState waits briefly until /proc reports the process as stopped
// (stopped=true) or not stopped, because signal delivery is asynchronous.
func waitProcState(pid int, stopped bool) {
	if pid == 0 {
		return
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		// Format: pid (comm) state ...; comm may contain spaces.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 || i+2 >= len(stat) {
			return
		}
		if state := stat[i+2]; (state == 'T') == stopped {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
