//go:build linux

package dirtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Paths of the Samba installation (Debian 12 layout).
const (
	SambaPath     = "/usr/sbin/samba"
	SambaToolPath = "/usr/bin/samba-tool"
)

// The Samba AD domain.
const (
	// ADRealm is the Kerberos realm, also the suffix of user principal
	// names (UPN).
	ADRealm = "EXAMPLE.TEST"
	// ADDomain is the NetBIOS domain of down-level logon names
	// (DOMAIN\user).
	ADDomain = "EXAMPLE"
	// ADBaseDN is the domain's naming context.
	ADBaseDN = "DC=example,DC=test"
	// ADAddr is where Samba's LDAP server listens: a fixed port, hence one
	// AD at a time on a machine.
	ADAddr = "127.0.0.1:389"
	// ADAdminDN is the domain's Administrator.
	ADAdminDN = "CN=Administrator,CN=Users," + ADBaseDN
	// ADAdminPassword is the password of ADAdminDN.
	ADAdminPassword = "Admin-secret-1"
)

// adPorts are the TCP ports Samba's LDAP service listens on (LDAP, LDAPS,
// global catalog and its TLS variant).
var adPorts = []int{389, 636, 3268, 3269}

// adUsers are the users StartAD creates, with their passwords.
var adUsers = map[string]string{
	"alice": "Alice-secret-1",
	"bob":   "Bob-secret-1",
}

const (
	// startADTimeout bounds StartAD as a whole, waiting for the lock
	// included.
	startADTimeout = 4 * time.Minute
	// readyADTimeout bounds how long a starting samba may take to answer.
	readyADTimeout = 2 * time.Minute
	// adLockName is the lock file, in os.TempDir, that serialises ADs
	// across processes.
	adLockName = "ldapmux-samba-ad.lock"
)

// AD is a Samba Active Directory domain controller that serves LDAP on
// ADAddr, provisioned into a temporary directory and run by the harness
// in the foreground (samba -i).
type AD struct {
	Addr   string // ADAddr
	URL    string // "ldap://127.0.0.1:389"
	BaseDN string // ADBaseDN
	Realm  string // ADRealm
	Domain string // ADDomain

	// AdminDN and AdminPassword are the domain Administrator's.
	AdminDN, AdminPassword string

	Dir        string // provision directory
	ConfigFile string // Dir/etc/smb.conf
	LogFile    string // samba's output

	proc     proc
	lock     *os.File
	stopOnce sync.Once
	stopErr  error
}

// UserDN returns the DN of a user StartAD created: "CN=alice,CN=Users,DC=example,DC=test".
func (a *AD) UserDN(name string) string { return "CN=" + name + ",CN=Users," + a.BaseDN }

// UPN returns the user principal name of a user: "alice@EXAMPLE.TEST".
func (a *AD) UPN(name string) string { return name + "@" + a.Realm }

// DownLevel returns the down-level logon name of a user: `EXAMPLE\alice`.
func (a *AD) DownLevel(name string) string { return a.Domain + `\` + name }

// UserPassword returns the password of a user StartAD created.
func (a *AD) UserPassword(name string) string { return adUsers[name] }

// UserMail returns the mail attribute of a user: "alice@example.test".
func (a *AD) UserMail(name string) string { return name + "@example.test" }

// Users returns the names of the users StartAD created: alice and bob.
func (a *AD) Users() []string { return []string{"alice", "bob"} }

// PID returns the process id of the running samba, or 0.
func (a *AD) PID() int { return a.proc.pid() }

// adSlot serialises ADs within the process (the lock file does across
// processes); shared is the instance of SharedAD.
var (
	adSlot = make(chan struct{}, 1)
	shared struct {
		sync.Mutex
		ad  *AD
		err error
	}
)

// StartAD provisions and starts a Samba AD DC for t and stops it in
// t.Cleanup. As its LDAP port is fixed, it waits while another AD runs
// (in this process or another) and fails at once if this process runs the
// shared one (use SharedAD) or another program holds the ports. It needs
// root and the packages that `make deps-test` installs; without them it
// skips t, or fails it in CI (CI=true).
func StartAD(t testing.TB) *AD {
	t.Helper()
	shared.Lock()
	running := shared.ad != nil
	shared.Unlock()
	if running {
		t.Fatal("dirtest: the shared AD is running; use SharedAD")
	}
	if err := checkAD(); err != nil {
		fatalOrSkip(t, err)
	}
	ctx, cancel := testContext(t, startADTimeout)
	defer cancel()
	a, err := startAD(ctx, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dirtest: last lines of %s:\n%s", a.LogFile, readTail(a.LogFile, 0, logTailLines))
		}
		if err := a.Stop(); err != nil {
			t.Errorf("dirtest: %v", err)
		}
	})
	return a
}

// SharedAD returns the process's shared AD, starting it on the first call
// (a failed start fails every caller). It outlives the test: the package's
// TestMain must call StopShared after m.Run, for example
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		if err := dirtest.StopShared(); err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			code = 1
//		}
//		os.Exit(code)
//	}
//
// Should the test binary die first, the kernel kills samba (its
// provision directory stays behind). Tests must not change what others
// rely on (the users, their passwords) without restoring it.
func SharedAD(t testing.TB) *AD {
	t.Helper()
	if err := checkAD(); err != nil {
		fatalOrSkip(t, err)
	}
	shared.Lock()
	defer shared.Unlock()
	if shared.ad == nil && shared.err == nil {
		ctx, cancel := testContext(t, startADTimeout)
		defer cancel()
		shared.ad, shared.err = startAD(ctx, t.Logf)
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.ad
}

// StopShared stops the shared AD, if SharedAD started one, and removes
// its directory.
func StopShared() error {
	shared.Lock()
	defer shared.Unlock()
	a := shared.ad
	shared.ad, shared.err = nil, nil
	if a == nil {
		return nil
	}
	return a.Stop()
}

// Stop stops samba (SIGTERM to its process group, SIGKILL after 20 s),
// removes Dir and lets the next AD start. It is safe to call more than
// once.
func (a *AD) Stop() error {
	a.stopOnce.Do(func() {
		a.stopErr = errors.Join(a.proc.stop(stopTimeout), removeAll(a.Dir))
		a.unlock()
	})
	return a.stopErr
}

// checkAD fails with errUnavailable unless Samba is installed and the test
// runs as root.
func checkAD() error {
	for _, p := range []string{SambaPath, SambaToolPath} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("dirtest: Samba is %w (%v): run `make deps-test`", errUnavailable, err)
		}
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("dirtest: a Samba AD DC is %w: it needs root", errUnavailable)
	}
	return nil
}

// startAD takes the AD lock, provisions the domain into a new directory,
// starts samba and waits until LDAP answers. On error nothing is left.
func startAD(ctx context.Context, logf func(string, ...any)) (*AD, error) {
	began := time.Now()
	a := &AD{Addr: ADAddr, URL: "ldap://" + ADAddr, BaseDN: ADBaseDN, Realm: ADRealm, Domain: ADDomain,
		AdminDN: ADAdminDN, AdminPassword: ADAdminPassword}
	if err := a.takeLock(ctx); err != nil {
		return nil, err
	}
	if err := a.setup(ctx); err != nil {
		return nil, errors.Join(err, a.Stop())
	}
	logf("dirtest: Samba AD DC up in %v on %s (pid %d, %s)", time.Since(began).Round(time.Millisecond), a.URL, a.PID(), a.Dir)
	return a, nil
}

// setup does the work of startAD once the lock is held.
func (a *AD) setup(ctx context.Context) error {
	if err := checkPortsFree(adPorts); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "ldapmux-ad-")
	if err != nil {
		return fmt.Errorf("dirtest: %w", err)
	}
	a.Dir, a.ConfigFile, a.LogFile = dir, filepath.Join(dir, "etc/smb.conf"), filepath.Join(dir, "samba.log")
	a.proc = proc{name: "samba AD DC (" + a.Addr + ")", logFile: a.LogFile}
	steps := []func(context.Context) error{a.provision, a.configure, a.createUsers, a.start}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// takeLock waits until this process holds adSlot and the lock file.
func (a *AD) takeLock(ctx context.Context) error {
	select {
	case adSlot <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("dirtest: wait for another AD of this process to stop: %w", ctx.Err())
	}
	path := filepath.Join(os.TempDir(), adLockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		<-adSlot
		return fmt.Errorf("dirtest: %w", err)
	}
	err = waitFor(ctx, "wait for the AD lock "+path+" (another process runs an AD)", nil, func() error {
		return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	})
	if err != nil {
		f.Close()
		<-adSlot
		return err
	}
	a.lock = f
	return nil
}

// unlock releases the lock file and adSlot.
func (a *AD) unlock() {
	if a.lock == nil {
		return
	}
	a.lock.Close() // releases the flock
	a.lock = nil
	<-adSlot
}

// checkPortsFree fails if another program listens on one of ports on
// 127.0.0.1.
func checkPortsFree(ports []int) error {
	for _, port := range ports {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return fmt.Errorf("dirtest: Samba's LDAP service needs 127.0.0.1:%d, which another program holds: %w", port, err)
		}
		l.Close()
	}
	return nil
}

// provision creates the domain in Dir (smb.conf, sam.ldb, ...).
func (a *AD) provision(ctx context.Context) error {
	_, err := runCommand(ctx, nil, SambaToolPath, "domain", "provision",
		"--targetdir="+a.Dir, "--realm="+a.Realm, "--domain="+a.Domain,
		"--server-role=dc", "--dns-backend=NONE", "--host-name=dc1",
		"--adminpass="+a.AdminPassword,
		"--option=interfaces=lo", "--option=bind interfaces only=yes")
	return err
}

// configure sets what the tests need in smb.conf's [global] section.
func (a *AD) configure(context.Context) error {
	settings := []string{
		"server services = ldap",
		"ldap server require strong auth = no", // simple binds without TLS
		"ntlm auth = yes",                      // NTLMv1 too: Cyrus SASL's NTLM client (ldapsearch -Y NTLM) sends nothing else
		"log file = " + filepath.Join(a.Dir, "log/samba.log"),
		"pid directory = " + filepath.Join(a.Dir, "run"),
		"ncalrpc dir = " + filepath.Join(a.Dir, "ncalrpc"),
		"winbindd socket directory = " + filepath.Join(a.Dir, "winbindd"),
	}
	data, err := os.ReadFile(a.ConfigFile)
	if err != nil {
		return fmt.Errorf("dirtest: %w", err)
	}
	conf, err := setGlobals(string(data), settings)
	if err != nil {
		return fmt.Errorf("dirtest: %s: %w", a.ConfigFile, err)
	}
	return os.WriteFile(a.ConfigFile, []byte(conf), 0o644)
}

// sectionHeader matches an smb.conf section header.
var sectionHeader = regexp.MustCompile(`(?m)^[ \t]*\[[^\]]*\][ \t]*$`)

// setGlobals returns conf with the "name = value" settings in its [global]
// section, replacing the lines that set the same names.
func setGlobals(conf string, settings []string) (string, error) {
	start := strings.Index(conf, "[global]")
	if start < 0 {
		return "", errors.New("no [global] section")
	}
	body := start + len("[global]")
	end := len(conf)
	if loc := sectionHeader.FindStringIndex(conf[body:]); loc != nil {
		end = body + loc[0]
	}
	lines := strings.Split(conf[body:end], "\n")
	for _, s := range settings {
		name, _, _ := strings.Cut(s, "=")
		lines = withoutSetting(lines, strings.TrimSpace(name))
	}
	var b strings.Builder
	b.WriteString(conf[:body])
	b.WriteString(strings.TrimRight(strings.Join(lines, "\n"), "\n") + "\n")
	for _, s := range settings {
		b.WriteString("\t" + s + "\n")
	}
	b.WriteString("\n" + conf[end:])
	return b.String(), nil
}

// withoutSetting removes the lines that set name.
func withoutSetting(lines []string, name string) []string {
	out := lines[:0]
	for _, l := range lines {
		n, _, ok := strings.Cut(l, "=")
		if ok && strings.EqualFold(strings.TrimSpace(n), name) {
			continue
		}
		out = append(out, l)
	}
	return out
}

// createUsers adds the users (samba is not running yet: samba-tool writes
// sam.ldb directly).
func (a *AD) createUsers(ctx context.Context) error {
	for _, name := range a.Users() {
		_, err := runCommand(ctx, nil, SambaToolPath, "user", "create", name, a.UserPassword(name),
			"--mail-address="+a.UserMail(name), "-s", a.ConfigFile)
		if err != nil {
			return err
		}
	}
	return nil
}

// start runs samba in the foreground and waits until its LDAP service
// answers binds.
func (a *AD) start(ctx context.Context) error {
	for _, sub := range []string{"log", "run", "ncalrpc", "winbindd"} {
		if err := os.MkdirAll(filepath.Join(a.Dir, sub), 0o755); err != nil {
			return fmt.Errorf("dirtest: %w", err)
		}
	}
	if err := a.proc.start(a.Dir, SambaPath, "-i", "-s", a.ConfigFile); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, readyADTimeout)
	defer cancel()
	err := waitFor(ctx, a.proc.name+" not ready", a.proc.exited(), a.ready)
	if err != nil && !a.proc.running() {
		return a.proc.exitError()
	}
	if err != nil {
		return fmt.Errorf("%w; log %s:\n%s", err, a.LogFile, a.proc.logTail())
	}
	return nil
}

// ready checks that the root DSE names the domain and Administrator can
// bind; it gives up if samba could not listen.
func (a *AD) ready() error {
	if tail := a.proc.logTail(); strings.Contains(tail, "Failed to listen on") {
		return fmt.Errorf("%w: samba could not listen:\n%s", errGiveUp, tail)
	}
	e, err := rootDSE(a.URL, "defaultNamingContext")
	if err != nil {
		return err
	}
	if got := e.GetAttributeValue("defaultNamingContext"); !strings.EqualFold(got, a.BaseDN) {
		return fmt.Errorf("defaultNamingContext %q, want %s (another server?)", got, a.BaseDN)
	}
	return withBind(context.Background(), a.URL, a.AdminDN, a.AdminPassword, func(*ldap.Conn) error { return nil })
}
