package benchrun

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// proc is a server process the benchmark starts: ldapmux or HAProxy.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// startProc runs args[0] with its output in logPath. The process dies with
// the benchmark (Pdeathsig) and has its own process group.
func startProc(name, logPath string, env []string, args ...string) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("benchrun: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("benchrun: start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and, after timeout, SIGKILL; it waits for the exit.
func (p *proc) stop(timeout time.Duration) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// waitLDAP polls addr with a root DSE search until it succeeds, the
// process exits or timeout passes.
func (p *proc) waitLDAP(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := probe(addr)
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("benchrun: %s exited (see %s)", p.name, p.log)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("benchrun: %s not answering on %s after %s: %w (see %s)", p.name, addr, timeout, err, p.log)
		}
	}
}

// probe searches the root DSE at addr once.
func probe(addr string) error {
	nc, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	res, err := rootDSE(nc, 2*time.Second)
	if err == nil && res.Code != ldapwire.Success {
		err = fmt.Errorf("root DSE search: result %d %s", res.Code, res.Diagnostic)
	}
	return err
}

// rootDSE searches the root DSE on nc within timeout and returns the result
// of the search (the deadline is cleared afterwards).
func rootDSE(nc net.Conn, timeout time.Duration) (ldapwire.Result, error) {
	nc.SetDeadline(time.Now().Add(timeout))
	defer nc.SetDeadline(time.Time{})
	if _, err := nc.Write(ldapwire.AppendRootDSEProbe(nil, 1)); err != nil {
		return ldapwire.Result{}, err
	}
	r := ldapwire.NewReader(nc, 0)
	for {
		frame, err := r.Next()
		if err != nil {
			return ldapwire.Result{}, err
		}
		msg, err := ldapwire.Parse(frame)
		if err != nil || msg.OpTag != ldapwire.OpSearchResultDone {
			continue
		}
		return ldapwire.ParseResult(msg.Body)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
