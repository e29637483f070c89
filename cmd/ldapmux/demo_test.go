package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// demoRun is a running `ldapmux demo` process and what it printed.
type demoRun struct {
	cmd   *exec.Cmd
	lines chan string
	out   []string
	exit  chan error
}

// buildLdapmux builds the binary into dir, as make build does.
func buildLdapmux(t *testing.T, dir string) string {
	bin := filepath.Join(dir, "ldapmux")
	if out, err := exec.Command(goTool(t), "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startDemo runs the demo from dir with its own temporary directory tmp,
// on free ports, and waits until it says it is ready.
func startDemo(t *testing.T, dir, tmp string) *demoRun {
	if _, err := os.Stat(slapdtest.SlapdPath); err != nil {
		t.Fatalf("slapd not installed (%v): run `make test`, which installs it", err)
	}
	cmd := exec.Command("./ldapmux", "demo", "-replicas", "1", "-backend-port", "0", "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &demoRun{cmd: cmd, lines: make(chan string, 1000), exit: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			d.lines <- sc.Text()
		}
		close(d.lines)
		d.exit <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		for range d.lines {
		}
	})
	d.waitFor(t, "Press Ctrl-C")
	return d
}

// waitFor reads output until a line containing s, for up to a minute.
func (d *demoRun) waitFor(t *testing.T, s string) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case line, ok := <-d.lines:
			if !ok {
				t.Fatalf("demo ended before printing %q:\n%s", s, strings.Join(d.out, "\n"))
			}
			d.out = append(d.out, line)
			if strings.Contains(line, s) {
				return
			}
		case <-timeout:
			t.Fatalf("demo did not print %q within a minute:\n%s", s, strings.Join(d.out, "\n"))
		}
	}
}

// find returns the first submatch of re in the output.
func (d *demoRun) find(t *testing.T, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(strings.Join(d.out, "\n"))
	if m == nil {
		t.Fatalf("demo output lacks %s:\n%s", re, strings.Join(d.out, "\n"))
	}
	return m[1]
}

func (d *demoRun) wait(t *testing.T) error {
	select {
	case err := <-d.exit:
		return err
	case <-time.After(time.Minute):
		t.Fatal("demo did not exit within a minute")
		return nil
	}
}

// TestDemoCommandsWorkAsPrinted builds ldapmux, runs the demo from the
// binary's directory and runs the ldapmux commands it prints, as printed, in
// a shell whose PATH has no ldapmux. It then kills the demo with SIGKILL,
// checks that the next demo removes the directory left behind, and that
// Ctrl-C (SIGINT) ends a demo with exit status 0, its directory removed.
func TestDemoCommandsWorkAsPrinted(t *testing.T) {
	dir, tmp := t.TempDir(), t.TempDir()
	buildLdapmux(t, dir)
	first := startDemo(t, dir, tmp)
	status := first.find(t, `(?m)^Status: +(\S.*)$`)
	reload := first.find(t, `(?m)^Reload: .*\n +(\S.*)$`)
	bench := first.find(t, `(?m)^Load: +(\S.*)$`)
	if status != "./ldapmux status -admin "+first.find(t, `Status page: http://([^/]+)/`) {
		t.Errorf("status command %q", status)
	}
	for _, c := range []struct{ command, want string }{
		{status, "ds1"},
		{reload, "reloaded"},
		{strings.Replace(bench, "-d 5s", "-d 300ms -warmup 0s -q", 1), " 0 errors"},
	} {
		sh := exec.Command("/bin/sh", "-c", c.command)
		sh.Dir, sh.Env = dir, []string{"PATH=/usr/bin:/bin"}
		out, err := sh.CombinedOutput()
		if err != nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%s: %v\n%s", c.command, err, out)
		}
	}

	firstDir := first.find(t, `their files in (\S+) are removed`)
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.wait(t)
	if _, err := os.Stat(firstDir); err != nil {
		t.Fatalf("after kill -9 the demo directory should still be there: %v", err)
	}

	second := startDemo(t, dir, tmp)
	if got := second.find(t, `Removed (\S+), left by a demo that was killed`); got != firstDir {
		t.Errorf("removed %q, want %q", got, firstDir)
	}
	if _, err := os.Stat(firstDir); !os.IsNotExist(err) {
		t.Errorf("stale demo directory still there: %v", err)
	}
	secondDir := second.find(t, `their files in (\S+) are removed`)
	second.cmd.Process.Signal(syscall.SIGINT)
	for range second.lines {
	}
	if err := second.wait(t); err != nil {
		t.Errorf("demo after SIGINT: %v, want exit status 0", err)
	}
	if _, err := os.Stat(secondDir); !os.IsNotExist(err) {
		t.Errorf("demo directory left after SIGINT: %v", err)
	}
}
