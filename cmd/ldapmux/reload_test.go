package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
	"github.com/ldapmux/ldapmux/internal/status"
)

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveConfig renders a configuration for some replicas with an admin listener.
func serveConfig(c *slapdtest.Cluster, ldapPort, adminPort string, ids ...int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen:\n  - address: 127.0.0.1:%s\nadmin:\n  address: 127.0.0.1:%s\nservers:\n", ldapPort, adminPort)
	for _, id := range ids {
		fmt.Fprintf(&b, "  - name: ds%d\n    address: %s\n", id, c.Replica(id).Addr)
	}
	fmt.Fprintf(&b, "service-account:\n  bind-dn: %s\n  password-env: SVC_PW\n", slapdtest.ServiceDN)
	return b.String()
}

// adminStatus reads /api/status, or nil while the listener is not up.
func adminStatus(addr string) *status.Status {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/api/status")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var st status.Status
	if json.NewDecoder(resp.Body).Decode(&st) != nil {
		return nil
	}
	return &st
}

func waitFor(t *testing.T, what string, logs *syncBuffer, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\n%s", what, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// listening waits until the serve process cmd, started, has written its
// own PID to pidFile (it is listening) and reports true, or until it
// exited and reports false. exited receives cmd.Wait's result.
func listening(t *testing.T, cmd *exec.Cmd, pidFile string, logs *syncBuffer) (ok bool, exited chan error) {
	t.Helper()
	exited = make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	want := strconv.Itoa(cmd.Process.Pid)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(pidFile); err == nil && strings.TrimSpace(string(b)) == want {
			return true, exited
		}
		select {
		case err := <-exited:
			exited <- err
			return false, exited
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("ldapmux serve wrote no pid file within 30s\n%s", logs.String())
		}
	}
}

func servers(st *status.Status) string {
	if st == nil {
		return ""
	}
	var names []string
	for _, s := range st.Servers {
		names = append(names, s.Name+"="+s.State)
	}
	return strings.Join(names, ",")
}

// TestServeReloadsOnSIGHUP runs `ldapmux serve` as a process and reloads it
// with `ldapmux reload -pid-file` (SIGHUP) and `ldapmux reload -admin`: a
// server is added, a broken file is refused with its problems logged while
// the old configuration keeps serving, and `ldapmux status` shows it all.
func TestServeReloadsOnSIGHUP(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: 2})
	dir := t.TempDir()
	path, pidFile := filepath.Join(dir, "ldapmux.yaml"), filepath.Join(dir, "ldapmux.pid")
	write := func(text string) {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The ports are picked free, then bound by the process: another may
	// take them in between, so a start that did not bind them (no pid file
	// of its own: serve writes it once listening) is tried on other ports.
	var (
		cmd                 *exec.Cmd
		exited              chan error
		logs                *syncBuffer
		ldapPort, adminPort string
	)
	for attempt := 1; ; attempt++ {
		ldapPort, adminPort = freePort(t), freePort(t)
		write(serveConfig(cluster, ldapPort, adminPort, 1))
		cmd = exec.CommandContext(ctx, os.Args[0], "serve", "-config", path, "-pid-file", pidFile)
		cmd.Env = append(os.Environ(), "LDAPMUX_RUN_MAIN=1", "SVC_PW="+slapdtest.ServicePassword)
		logs = &syncBuffer{}
		cmd.Stderr = logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var ok bool
		if ok, exited = listening(t, cmd, pidFile, logs); ok {
			break
		}
		if attempt == 5 {
			t.Fatalf("ldapmux serve could not bind its ports 5 times\n%s", logs.String())
		}
	}
	adminAddr := "127.0.0.1:" + adminPort
	waitFor(t, "ds1 available", logs, func() bool { return servers(adminStatus(adminAddr)) == "ds1=available" })

	write(serveConfig(cluster, ldapPort, adminPort, 1, 2) + "log:\n  level: debug\n")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"reload", "-pid-file", pidFile}, &stdout, &stderr); code != 0 {
		t.Fatalf("reload -pid-file: exit %d: %s", code, stderr.String())
	}
	waitFor(t, "ds2 added", logs, func() bool { return servers(adminStatus(adminAddr)) == "ds1=available,ds2=available" })

	write(strings.Replace(serveConfig(cluster, ldapPort, adminPort, 1), cluster.Replica(1).Addr, "127.0.0.1", 1))
	if code := run([]string{"reload", "-admin", adminAddr}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "missing port") {
		t.Fatalf("reload -admin of a broken file: exit %d: %s", code, stderr.String())
	}
	if code := run([]string{"reload", "-pid-file", pidFile}, &stdout, &stderr); code != 0 {
		t.Fatalf("reload -pid-file: exit %d", code)
	}
	waitFor(t, "the refusal logged twice", logs, func() bool { return strings.Count(logs.String(), "reload refused") == 2 })
	stdout.Reset()
	if code := run([]string{"status", "-admin", adminAddr}, &stdout, &stderr); code != 0 {
		t.Fatalf("status: exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"READY", "ds1", "ds2", cluster.Replica(2).Addr} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, stdout.String())
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Fatalf("exit: %v\n%s", err, logs.String())
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
	for _, want := range []string{"configuration reloaded", "servers[0].address", `level=DEBUG msg="reloading the configuration"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(logs.String(), slapdtest.ServicePassword) {
		t.Errorf("the service password appears in the log")
	}
}
