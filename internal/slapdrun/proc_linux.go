package slapdrun

import (
	"bytes"
	"errors"
	"fmt"
	"io"
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

// Whence values of lseek(2) for sparse files.
const (
	seekData = 3 // SEEK_DATA
	seekHole = 4 // SEEK_HOLE
)

// dataRegions returns the [start, end) byte ranges of f that hold data,
// using SEEK_DATA/SEEK_HOLE; if the file system does not support them, the
// whole file is one region.
func dataRegions(f *os.File, size int64) ([][2]int64, error) {
	var regions [][2]int64
	for off := int64(0); off < size; {
		start, err := f.Seek(off, seekData)
		if errors.Is(err, syscall.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			return [][2]int64{{0, size}}, nil
		}
		end, err := f.Seek(start, seekHole)
		if err != nil {
			return [][2]int64{{0, size}}, nil
		}
		regions = append(regions, [2]int64{start, end})
		off = end
	}
	_, err := f.Seek(0, io.SeekStart)
	return regions, err
}
