package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/app"
	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// logBuffer collects the proxy's log for inspection (and echoes it to the
// test output with LDAPMUX_TEST_LOG=1).
type logBuffer struct {
	t  *testing.T
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if os.Getenv("LDAPMUX_TEST_LOG") != "" {
		l.t.Log(strings.TrimSpace(string(p)))
	}
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startLoggedProxy runs ldapmux with a complete configuration and a debug
// log kept in memory.
func startLoggedProxy(t *testing.T, yaml string) (*app.App, *config.Config, *logBuffer) {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := &logBuffer{t: t}
	a := runApp(t, cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	return a, cfg, logs
}

// resultCode is the LDAP result code of err, or -1 for other errors.
func resultCode(err error) int {
	var lerr *ldap.Error
	if errors.As(err, &lerr) {
		return int(lerr.ResultCode)
	}
	return -1
}

// runTool runs an OpenLDAP client with extra environment variables and
// returns its combined output and error.
func runTool(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not installed (package ldap-utils): run `make test`, which installs it", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(append(os.Environ(), "LDAPCONF=/dev/null", "LDAPRC=/dev/null"), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// heapInUse is the heap in use after a collection, in bytes.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// tlsServers renders the servers of c with a TLS block for each.
func tlsServers(c *slapdtest.Cluster, ldaps bool, tlsYAML string) string {
	var b strings.Builder
	b.WriteString("servers:\n")
	for _, r := range c.Replicas {
		addr := r.Addr
		if ldaps {
			addr = r.LDAPSAddr
		}
		fmt.Fprintf(&b, "  - name: ds%d\n    address: %s\n", r.ID, addr)
		if tlsYAML != "" {
			fmt.Fprintf(&b, "    tls: %s\n", tlsYAML)
		}
	}
	fmt.Fprintf(&b, "service-account:\n  bind-dn: %s\n  password: %s\n", slapdtest.ServiceDN, slapdtest.ServicePassword)
	return b.String()
}

// whoAmI returns the authzId the proxy applies to conn's operations.
func whoAmI(t *testing.T, conn *ldap.Conn) string {
	t.Helper()
	res, err := conn.WhoAmI(nil)
	if err != nil {
		t.Fatalf("WhoAmI: %v", err)
	}
	return res.AuthzID
}

// expectUID finds user n with any identity (anonymous clients cannot read
// mail, which expectUser checks).
func expectUID(conn *ldap.Conn, n int) error {
	entries, err := searchDNs(conn, slapdtest.PeopleDN, fmt.Sprintf("(uid=user.%d)", n), "uid")
	if err != nil {
		return err
	}
	if len(entries) != 1 || entries[0].DN != slapdtest.UserDN(n) {
		return fmt.Errorf("user %d: got %d entries", n, len(entries))
	}
	return nil
}
