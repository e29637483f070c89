package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// TestMain lets tests run the real command as a child process.
func TestMain(m *testing.M) {
	if os.Getenv("LDAPMUX_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func writeFile(t *testing.T, text string) string {
	path := filepath.Join(t.TempDir(), "ldapmux.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckConfigListsEveryProblem(t *testing.T) {
	path := writeFile(t, `listen:
  - address: 127.0.0.1:1389
servers:
  - name: ds1
    address: 127.0.0.1:3891
  - name: ds2
    address: 127.0.0.1
service-account:
  bind-dn: cn=admin,dc=example,dc=com
  password: secret
pool:
  conect-timeout: 2s
  max-connection-age: 5 minutes
`)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check-config", "-config", path}, &stdout, &stderr); code != 2 {
		t.Fatalf("exit code %d, want 2; stderr:\n%s", code, stderr.String())
	}
	for _, want := range []string{"servers[1].address", "missing port", "pool.conect-timeout", "did you mean connect-timeout", "pool.max-connection-age"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "secret") {
		t.Errorf("the password leaked into the output:\n%s", stderr.String())
	}
}

func TestCheckConfigAcceptsTheExample(t *testing.T) {
	t.Setenv("LDAPMUX_SERVICE_PASSWORD", "x")
	var stdout, stderr bytes.Buffer
	run([]string{"example-config"}, &stdout, &stderr)
	path := writeFile(t, stdout.String())
	if code := run([]string{"check-config", "-config", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d:\n%s", code, stderr.String())
	}
}

// TestCheckConfigArguments: the file may be given as the argument or with
// -config; none or two are refused.
func TestCheckConfigArguments(t *testing.T) {
	t.Setenv("LDAPMUX_SERVICE_PASSWORD", "x")
	var example, stderr bytes.Buffer
	run([]string{"example-config"}, &example, &stderr)
	path := writeFile(t, example.String())
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{path}, 0, "valid"},
		{[]string{"-config", path}, 0, "valid"},
		{[]string{}, 2, "configuration file is required"},
		{[]string{path, path}, 2, "give one configuration file"},
		{[]string{"-config", path, path}, 2, "give one configuration file"},
		{[]string{filepath.Join(t.TempDir(), "missing.yaml")}, 2, "no such file"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"check-config"}, tt.args...), &stdout, &stderr)
		if code != tt.code || !strings.Contains(stdout.String()+stderr.String(), tt.want) {
			t.Errorf("check-config %q: exit %d, output %s%s; want exit %d and %q", tt.args, code, stdout.String(), stderr.String(), tt.code, tt.want)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"frobnicate"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "usage") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

// TestServeDrainsOnSIGTERM runs `ldapmux serve` as a process, sends it
// SIGTERM with a client connected, and expects a Notice of Disconnection
// and exit status 0.
func TestServeDrainsOnSIGTERM(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 2})
	pidFile := filepath.Join(t.TempDir(), "ldapmux.pid")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A port picked free may be taken before serve binds it: a start that
	// did not bind it (no pid file of its own) is tried on another port.
	var (
		cmd    *exec.Cmd
		exited chan error
		logs   *syncBuffer
		port   string
	)
	for attempt := 1; ; attempt++ {
		port = freePort(t)
		path := writeFile(t, "listen:\n  - address: 127.0.0.1:"+port+"\nservers:\n  - name: ds1\n    address: "+cluster.Replicas[0].Addr+
			"\nservice-account:\n  bind-dn: "+slapdtest.ServiceDN+"\n  password-env: SVC_PW\nshutdown-grace-period: 5s\n")
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
			t.Fatalf("ldapmux serve could not bind its port 5 times\n%s", logs.String())
		}
	}
	nc := dialUntilUp(t, "127.0.0.1:"+port)
	defer nc.Close()
	r := ldapwire.NewReader(bufio.NewReader(nc), 0)
	nc.Write(ldapwire.AppendRootDSEProbe(nil, 1))
	for final := false; !final; {
		frame, err := r.Next()
		if err != nil {
			t.Fatalf("search before shutdown: %v\n%s", err, logs.String())
		}
		msg, _ := ldapwire.Parse(frame)
		final = ldapwire.IsFinal(msg.OpTag)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	frame, err := r.Next()
	if err != nil {
		t.Fatalf("want a notice of disconnection: %v\n%s", err, logs.String())
	}
	msg, _ := ldapwire.Parse(frame)
	if res, _ := ldapwire.ParseResult(msg.Body); msg.ID != 0 || res.Code != ldapwire.Unavailable {
		t.Fatalf("want an unavailable notice, got id %d code %d", msg.ID, res.Code)
	}
	if err := <-exited; err != nil {
		t.Fatalf("exit: %v\n%s", err, logs.String())
	}
	if strings.Contains(logs.String(), slapdtest.ServicePassword) {
		t.Fatalf("the service password appears in the log:\n%s", logs.String())
	}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

func dialUntilUp(t *testing.T, addr string) net.Conn {
	deadline := time.Now().Add(20 * time.Second)
	for {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return nc
		}
		if time.Now().After(deadline) {
			t.Fatalf("ldapmux did not start listening on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
