//go:build !linux

package slapdtest

import "syscall"

// sysProcAttr puts slapd in its own process group.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// waitProcState is a no-op where /proc is not available.
func waitProcState(pid int, stopped bool) {}
