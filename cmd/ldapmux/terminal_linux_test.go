package main

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// openPTY opens a pseudo-terminal pair: the master, and the slave a child
// takes as its controlling terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatalf("unlock pty: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatalf("pty number: %v", e)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return master, slave
}

// TestDemoCtrlCInTerminal runs the demo in a terminal under a shell without
// job control, the way make runs it, and types Ctrl-C: the demo alone gets
// the interrupt, stops cleanly and exits 0, and the shell that started it
// goes on (make would report no error).
func TestDemoCtrlCInTerminal(t *testing.T) {
	dir, tmp := t.TempDir(), t.TempDir()
	buildLdapmux(t, dir)
	master, slave := openPTY(t)
	defer master.Close()
	sh := exec.Command("/bin/sh", "-c", "./ldapmux demo -replicas 1 -backend-port 0 -listen 127.0.0.1:0 -admin 127.0.0.1:0; echo shell-after-demo exit=$?")
	sh.Dir, sh.Env = dir, append(os.Environ(), "TMPDIR="+tmp)
	sh.Stdin, sh.Stdout, sh.Stderr = slave, slave, slave
	sh.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	t.Cleanup(func() { sh.Process.Kill(); sh.Wait() })

	out := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			if n > 0 {
				out <- string(buf[:n])
			}
			if err != nil {
				close(out)
				return
			}
		}
	}()
	var seen strings.Builder
	waitFor := func(s string) {
		t.Helper()
		re := regexp.MustCompile(s)
		timeout := time.After(time.Minute)
		for !re.MatchString(seen.String()) {
			select {
			case chunk, ok := <-out:
				if !ok {
					t.Fatalf("terminal closed before %q:\n%s", s, seen.String())
				}
				seen.WriteString(chunk)
			case <-timeout:
				t.Fatalf("no %q within a minute:\n%s", s, seen.String())
			}
		}
	}
	waitFor("Press Ctrl-C")
	master.Write([]byte{3}) // what the terminal sends for Ctrl-C
	waitFor(`shell-after-demo exit=\d+`)
	if !strings.Contains(seen.String(), "shell-after-demo exit=0") {
		t.Errorf("after Ctrl-C the demo did not exit 0:\n%s", seen.String())
	}
}
