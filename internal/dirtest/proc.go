//go:build linux

package dirtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a server process run in the foreground, in its own process group,
// with its output appended to a log file. The kernel kills it if the test
// binary dies (Pdeathsig, which survives the credential change because Go
// sets it after switching user).
type proc struct {
	name    string              // for messages, e.g. "389 instance 1"
	logFile string              // stdout and stderr of the process
	cred    *syscall.Credential // user to run as; nil: the test's user

	mu       sync.Mutex
	cmd      *exec.Cmd     // current or last process
	done     chan struct{} // closed when cmd has exited
	waitErr  error         // cmd.Wait's result once done is closed
	logStart int64         // size of logFile when cmd started
}

// start launches path with args; it fails if the process is running.
func (p *proc) start(dir, path string, args ...string) error {
	if p.running() {
		return fmt.Errorf("dirtest: %s is already running (pid %d)", p.name, p.pid())
	}
	log, err := os.OpenFile(p.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("dirtest: %w", err)
	}
	defer log.Close() // the child has its own copy
	offset, _ := log.Seek(0, io.SeekEnd)
	fmt.Fprintf(log, "=== dirtest: starting %s at %s\n", p.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: p.cred}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dirtest: start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.waitErr, p.logStart = cmd, done, nil, offset
	p.mu.Unlock()
	go p.reap(cmd, done)
	return nil
}

// reap waits for cmd to exit and records the result.
func (p *proc) reap(cmd *exec.Cmd, done chan struct{}) {
	err := cmd.Wait()
	p.mu.Lock()
	if p.cmd == cmd {
		p.waitErr = err
	}
	p.mu.Unlock()
	close(done)
}

// current returns the current process and its exit channel (nil if never
// started).
func (p *proc) current() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.done
}

// exited returns a channel closed when the current process has exited.
func (p *proc) exited() <-chan struct{} {
	_, done := p.current()
	if done == nil {
		closed := make(chan struct{})
		close(closed)
		return closed
	}
	return done
}

// running reports whether the process exists.
func (p *proc) running() bool {
	select {
	case <-p.exited():
		return false
	default:
		return true
	}
}

// pid returns the process id of the running process, or 0.
func (p *proc) pid() int {
	cmd, _ := p.current()
	if cmd == nil || !p.running() {
		return 0
	}
	return cmd.Process.Pid
}

// signalGroup sends sig to the process group of the running process; it
// reports false if there is none.
func (p *proc) signalGroup(sig syscall.Signal) (bool, error) {
	pid := p.pid()
	if pid == 0 {
		return false, nil
	}
	if err := syscall.Kill(-pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return true, fmt.Errorf("dirtest: %s: send %v: %w", p.name, sig, err)
	}
	return true, nil
}

// waitExit waits up to timeout for the process to exit.
func (p *proc) waitExit(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.exited():
		return true
	case <-t.C:
		return false
	}
}

// kill sends SIGKILL to the process group and waits for the exit. It is a
// no-op if the process is not running.
func (p *proc) kill() error {
	if ok, err := p.signalGroup(syscall.SIGKILL); !ok || err != nil {
		return err
	}
	if !p.waitExit(stopTimeout) {
		return fmt.Errorf("dirtest: %s (pid %d) did not exit after SIGKILL", p.name, p.pid())
	}
	return nil
}

// stop sends SIGTERM to the process group and waits for a clean shutdown,
// killing it after timeout. It is a no-op if the process is not running.
func (p *proc) stop(timeout time.Duration) error {
	pgid := p.pid()
	if ok, err := p.signalGroup(syscall.SIGTERM); !ok || err != nil {
		return err
	}
	if p.waitExit(timeout) {
		return p.waitGroupGone(pgid)
	}
	return errors.Join(fmt.Errorf("dirtest: %s did not stop within %v, killed it", p.name, timeout), p.kill(), p.waitGroupGone(pgid))
}

// waitGroupGone waits for the other processes of the group (samba's
// children outlive its main process by a moment, still writing in its
// directory) to exit, killing those left after stopTimeout.
func (p *proc) waitGroupGone(pgid int) error {
	if pgid == 0 {
		return nil
	}
	gone := func(d time.Duration) bool {
		for deadline := time.Now().Add(d); ; {
			if !groupRunning(pgid) {
				return true
			}
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if gone(stopTimeout) {
		return nil
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
	if gone(stopTimeout) {
		return nil
	}
	return fmt.Errorf("dirtest: processes of %s (group %d) still running after SIGKILL", p.name, pgid)
}

// exitError describes an unexpected exit, with the end of the log.
func (p *proc) exitError() error {
	p.mu.Lock()
	waitErr := p.waitErr
	p.mu.Unlock()
	return fmt.Errorf("dirtest: %s exited (%v); log %s:\n%s", p.name, waitErr, p.logFile, p.logTail())
}

// logTail returns the last lines the process wrote since its last start.
func (p *proc) logTail() string {
	p.mu.Lock()
	offset := p.logStart
	p.mu.Unlock()
	return readTail(p.logFile, offset, logTailLines)
}

// groupRunning reports whether a process of group pgid is still running
// (zombies, which write nothing, do not count).
func groupRunning(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces, not ")".
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) >= 3 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}
