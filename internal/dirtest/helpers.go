//go:build linux

package dirtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

const (
	// pollInterval is the pause between readiness and replication polls.
	pollInterval = 50 * time.Millisecond
	// stopTimeout bounds a clean shutdown before the process is killed.
	stopTimeout = 20 * time.Second
	// dialTimeout is the connect and request timeout of LDAP connections.
	dialTimeout = 5 * time.Second
	// logTailLines is how many log lines error messages include.
	logTailLines = 30
)

// testContext returns a context that ends at t's deadline (if any), after
// limit, or when t ends, whichever comes first.
func testContext(t testing.TB, limit time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	d, ok := t.(interface{ Deadline() (time.Time, bool) })
	if !ok {
		return ctx, cancel
	}
	deadline, ok := d.Deadline()
	if !ok {
		return ctx, cancel
	}
	ctx2, cancel2 := context.WithDeadline(ctx, deadline)
	return ctx2, func() { cancel2(); cancel() }
}

// errUnavailable marks a missing prerequisite: a package or root.
var errUnavailable = errors.New("unavailable")

// fatalOrSkip fails t with err; for a missing prerequisite outside CI
// (CI=true) it skips t instead.
func fatalOrSkip(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, errUnavailable) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	t.Fatal(err)
}

// errGiveUp marks an error after which waitFor stops polling.
var errGiveUp = errors.New("giving up")

// waitFor calls check every pollInterval until it succeeds, fails with
// errGiveUp, stop is closed or ctx is done; the error names what and the
// last failure.
func waitFor(ctx context.Context, what string, stop <-chan struct{}, check func() error) error {
	var last error
	for {
		if last = check(); last == nil {
			return nil
		}
		if errors.Is(last, errGiveUp) {
			return fmt.Errorf("dirtest: %s: %w", what, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dirtest: %s: %w (last error: %v)", what, ctx.Err(), last)
		case <-stop:
			return fmt.Errorf("dirtest: %s: gave up (last error: %v)", what, last)
		case <-time.After(pollInterval):
		}
	}
}

// runCommand runs a tool with extra environment variables and returns its
// combined output; the error includes the output.
func runCommand(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	text := strings.TrimSpace(string(out))
	if err != nil {
		return text, fmt.Errorf("dirtest: %s %s: %w\n%s", name, strings.Join(redact(args), " "), errors.Join(err, ctx.Err()), text)
	}
	return text, nil
}

// redact hides the values of password arguments in messages.
func redact(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if i > 0 && (args[i-1] == "-w" || strings.HasSuffix(args[i-1], "passwd")) {
			out[i] = "***"
		}
	}
	return out
}

// readTail returns the last n lines of file from offset on, indented.
func readTail(file string, offset int64, n int) string {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Sprintf("\t(cannot read log: %v)", err)
	}
	defer f.Close()
	if size, err := f.Seek(0, io.SeekEnd); err == nil && size-offset > 1<<20 {
		offset = size - 1<<20
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return fmt.Sprintf("\t(cannot read log: %v)", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("\t(cannot read log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\t" + strings.Join(lines, "\n\t")
}

// dial opens an LDAP connection to url with dialTimeout.
func dial(url string) (*ldap.Conn, error) {
	conn, err := ldap.DialURL(url, ldap.DialWithDialer(&net.Dialer{Timeout: dialTimeout}))
	if err != nil {
		return nil, err
	}
	conn.SetTimeout(dialTimeout)
	return conn, nil
}

// withBind runs fn on a connection to url bound as dn. The connection is
// closed when ctx ends, which aborts a pending request.
func withBind(ctx context.Context, url, dn, password string, fn func(*ldap.Conn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	conn, err := dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := conn.Bind(dn, password); err != nil {
		return fmt.Errorf("bind as %s: %w", dn, errors.Join(err, ctx.Err()))
	}
	if err := fn(conn); err != nil {
		return errors.Join(err, ctx.Err())
	}
	return nil
}

// rootDSE reads attrs of the root DSE anonymously.
func rootDSE(url string, attrs ...string) (*ldap.Entry, error) {
	conn, err := dial(url)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	res, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		0, 0, false, "(objectClass=*)", attrs, nil))
	if err != nil {
		return nil, err
	}
	if len(res.Entries) != 1 {
		return nil, fmt.Errorf("root DSE: %d entries", len(res.Entries))
	}
	return res.Entries[0], nil
}

// makeSearchableDir creates a new temporary directory that other users
// (dirsrv) may traverse, unlike t.TempDir's.
func makeSearchableDir(pattern string) (string, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", fmt.Errorf("dirtest: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", errors.Join(fmt.Errorf("dirtest: %w", err), os.RemoveAll(dir))
	}
	return dir, nil
}

// removeAll removes dir, trying again for a few seconds while a process
// that just exited leaves files behind (ENOTEMPTY).
func removeAll(dir string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := os.RemoveAll(dir)
		if err == nil || !errors.Is(err, syscall.ENOTEMPTY) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
