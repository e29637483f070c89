package slapdrun

import (
	"context"
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

	"github.com/go-ldap/ldap/v3"
)

const (
	// readyTimeout bounds how long a starting slapd may take to answer.
	readyTimeout = 15 * time.Second
	// pollInterval is the pause between readiness/replication polls.
	pollInterval = 25 * time.Millisecond
	// stopTimeout bounds how long Stop waits after SIGTERM before SIGKILL.
	stopTimeout = 10 * time.Second
	// dialTimeout is the connect and request timeout of Dial.
	dialTimeout = 5 * time.Second
	// logTailLines is how many log lines error messages include.
	logTailLines = 20
)

// errAddrInUse reports that slapd could not bind its port.
var errAddrInUse = errors.New("address already in use")

// Replica is one slapd server of a Cluster.
type Replica struct {
	ID   int    // 1-based, also slapd's serverID
	Port int    // TCP port on 127.0.0.1
	Addr string // "127.0.0.1:PORT"
	URL  string // "ldap://127.0.0.1:PORT"

	// LDAPSPort, LDAPSAddr and LDAPSURL are set with Options.LDAPS (tls.go).
	LDAPSPort int
	LDAPSAddr string // "127.0.0.1:PORT"
	LDAPSURL  string // "ldaps://127.0.0.1:PORT"
	tls       *tlsConf

	Dir        string // replica directory (slapd.conf, db/, pid/args, log)
	ConfigFile string // Dir/slapd.conf
	LogFile    string // Dir/slapd.log: slapd's stdout and stderr (appended)

	logf func(format string, args ...any)

	mu       sync.Mutex
	cmd      *exec.Cmd     // current or last process
	done     chan struct{} // closed when cmd has exited
	waitErr  error         // cmd.Wait result, valid once done is closed
	logStart int64         // size of LogFile when cmd was started
	paused   bool

	replicationURL string // where the others replicate it from, when not URL (relay.go)
}

// newReplica returns replica id (not started) in dir with the given port.
func newReplica(id int, dir string, port int, logf func(string, ...any)) *Replica {
	r := &Replica{ID: id, Dir: dir, logf: logf}
	r.ConfigFile = filepath.Join(dir, "slapd.conf")
	r.LogFile = filepath.Join(dir, "slapd.log")
	r.setPort(port)
	return r
}

// setPort sets Port, Addr and URL.
func (r *Replica) setPort(port int) {
	r.Port = port
	r.Addr = "127.0.0.1:" + strconv.Itoa(port)
	r.URL = "ldap://" + r.Addr
}

// dbDir is the mdb database directory.
func (r *Replica) dbDir() string { return filepath.Join(r.Dir, "db") }

// launch starts slapd in the foreground (-d keeps it from forking) with its
// output appended to LogFile. `-d none` logs only the messages slapd always
// logs (startup, bind failures, syncrepl errors...) instead of nothing.
func (r *Replica) launch() error {
	if r.Running() {
		return fmt.Errorf("slapdrun: replica %d is already running (pid %d)", r.ID, r.PID())
	}
	log, err := os.OpenFile(r.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the child has its own copy
	start, _ := log.Seek(0, io.SeekEnd)
	fmt.Fprintf(log, "=== slapdrun: starting replica %d on %s at %s\n", r.ID, r.Addr, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(SlapdPath, "-d", "none", "-f", r.ConfigFile, "-h", r.listenURLs())
	cmd.Dir = r.Dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("slapdrun: start slapd for replica %d: %w", r.ID, err)
	}
	done := make(chan struct{})
	r.mu.Lock()
	r.cmd, r.done, r.waitErr, r.logStart, r.paused = cmd, done, nil, start, false
	r.mu.Unlock()
	go r.reap(cmd, done)
	return nil
}

// reap waits for cmd to exit and records the result.
func (r *Replica) reap(cmd *exec.Cmd, done chan struct{}) {
	err := cmd.Wait()
	r.mu.Lock()
	if r.cmd == cmd {
		r.waitErr = err
		r.paused = false
	}
	r.mu.Unlock()
	close(done)
}

// proc returns the current process and its exit channel (nil if never
// started).
func (r *Replica) proc() (*exec.Cmd, chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd, r.done
}

// Running reports whether the slapd process exists (it may be paused).
func (r *Replica) Running() bool {
	_, done := r.proc()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Paused reports whether the replica is running but stopped by Pause.
func (r *Replica) Paused() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.paused
}

// PID returns the process id of the running slapd, or 0.
func (r *Replica) PID() int {
	cmd, _ := r.proc()
	if cmd == nil || !r.Running() {
		return 0
	}
	return cmd.Process.Pid
}

// signal sends sig to the running process; it reports false if there is
// none.
func (r *Replica) signal(sig syscall.Signal) (bool, error) {
	cmd, _ := r.proc()
	if cmd == nil || !r.Running() {
		return false, nil
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return true, fmt.Errorf("slapdrun: replica %d: send %v: %w", r.ID, sig, err)
	}
	return true, nil
}

// waitExit waits up to timeout for the current process to exit.
func (r *Replica) waitExit(timeout time.Duration) bool {
	_, done := r.proc()
	if done == nil {
		return true
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// Kill sends SIGKILL and waits for the process to exit. It is a no-op if
// the replica is not running.
func (r *Replica) Kill() error {
	if ok, err := r.signal(syscall.SIGKILL); !ok || err != nil {
		return err
	}
	if !r.waitExit(stopTimeout) {
		return fmt.Errorf("slapdrun: replica %d (pid %d) did not exit after SIGKILL", r.ID, r.PID())
	}
	return nil
}

// Stop sends SIGTERM (and SIGCONT, in case it is paused) and waits for a
// clean shutdown, falling back to Kill after 10s. It is a no-op if the
// replica is not running.
func (r *Replica) Stop() error {
	if ok, err := r.signal(syscall.SIGTERM); !ok || err != nil {
		return err
	}
	if _, err := r.signal(syscall.SIGCONT); err != nil {
		return err
	}
	if r.waitExit(stopTimeout) {
		return nil
	}
	r.logf("slapdrun: replica %d did not stop within %v, killing it", r.ID, stopTimeout)
	return r.Kill()
}

// Pause stops the process with SIGSTOP, simulating a hung server: the
// kernel still accepts TCP connections but nothing is answered.
func (r *Replica) Pause() error {
	ok, err := r.signal(syscall.SIGSTOP)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("slapdrun: replica %d is not running", r.ID)
	}
	r.mu.Lock()
	r.paused = true
	r.mu.Unlock()
	waitProcState(r.PID(), true)
	return nil
}

// Resume continues a paused process with SIGCONT.
func (r *Replica) Resume() error {
	ok, err := r.signal(syscall.SIGCONT)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("slapdrun: replica %d is not running", r.ID)
	}
	r.mu.Lock()
	r.paused = false
	r.mu.Unlock()
	waitProcState(r.PID(), false)
	return nil
}

// Restart starts the replica again with the same port, configuration and
// database (stopping it first if it is still running) and returns once it
// answers LDAP requests.
func (r *Replica) Restart(ctx context.Context) error {
	if err := r.Stop(); err != nil {
		return err
	}
	if err := r.launch(); err != nil {
		return err
	}
	if err := r.waitReady(ctx); err != nil {
		_ = r.Kill()
		return err
	}
	r.logf("slapdrun: replica %d restarted on %s (pid %d)", r.ID, r.Addr, r.PID())
	return nil
}

// waitReady polls until slapd has written its pid file (which it does only
// after binding its port, so we are not fooled by another server that owns
// the port) and a root DSE search as the admin succeeds (bound, so that
// it works under any Options.Require). It fails when the
// process exits (wrapping errAddrInUse if the port was taken), ctx is done
// or readyTimeout has passed.
func (r *Replica) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	cmd, done := r.proc()
	var lastErr error
	for {
		if lastErr = r.checkPIDFile(cmd.Process.Pid); lastErr == nil {
			if lastErr = r.ping(); lastErr == nil {
				return nil
			}
		}
		select {
		case <-done:
			return r.exitError()
		case <-ctx.Done():
			return fmt.Errorf("slapdrun: replica %d on %s not ready: %v (last error: %v)\n%s",
				r.ID, r.Addr, ctx.Err(), lastErr, r.logTail())
		case <-time.After(pollInterval):
		}
	}
}

// exitError describes an unexpected exit of slapd during startup.
func (r *Replica) exitError() error {
	r.mu.Lock()
	waitErr := r.waitErr
	r.mu.Unlock()
	tail := r.logTail()
	err := fmt.Errorf("slapdrun: slapd of replica %d on %s exited during startup (%v); log %s:\n%s",
		r.ID, r.Addr, waitErr, r.LogFile, tail)
	if containsAddrInUse(tail) {
		return fmt.Errorf("%w: %w", errAddrInUse, err)
	}
	return err
}

// checkPIDFile fails unless slapd.pid contains pid.
func (r *Replica) checkPIDFile(pid int) error {
	data, err := os.ReadFile(filepath.Join(r.Dir, "slapd.pid"))
	if err != nil {
		return err
	}
	if got := strings.TrimSpace(string(data)); got != strconv.Itoa(pid) {
		return fmt.Errorf("pid file has %q, want %d", got, pid)
	}
	return nil
}

// ping does an anonymous base search of the root DSE.
func (r *Replica) ping() error {
	conn, err := ldap.DialURL(r.URL, ldap.DialWithDialer(dialer(time.Second)))
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetTimeout(time.Second)
	if err := conn.Bind(AdminDN, AdminPassword); err != nil {
		return err
	}
	_, err = conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		0, 1, false, "(objectClass=*)", []string{"namingContexts"}, nil))
	return err
}

// FullLogTail returns the last lines of the replica's log file, across
// restarts (what a failed test logs).
func (r *Replica) FullLogTail() string { return readTail(r.LogFile, 0, logTailLines) }

// logTail returns the last lines slapd wrote since its last start.
func (r *Replica) logTail() string {
	r.mu.Lock()
	start := r.logStart
	r.mu.Unlock()
	return readTail(r.LogFile, start, logTailLines)
}
