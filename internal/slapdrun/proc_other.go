//go:build !linux

package slapdrun

import (
	"os"
	"syscall"
)

// sysProcAttr puts slapd in its own process group.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// waitProcState is a no-op where /proc is not available.
func waitProcState(pid int, stopped bool) {}

// dataRegions returns the whole file as one data region.
func dataRegions(f *os.File, size int64) ([][2]int64, error) {
	return [][2]int64{{0, size}}, nil
}
