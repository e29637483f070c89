//go:build linux

package dirtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/slapdrun"
)

// Paths of the 389 Directory Server installation (Debian 12 layout).
const (
	DscreatePath = "/usr/sbin/dscreate"
	DsconfPath   = "/usr/sbin/dsconf"
	NsSlapdPath  = "/usr/sbin/ns-slapd"
	dsShareDir   = "/usr/share/dirsrv"
	dsEtcDir     = "/etc/dirsrv"
	dsUser       = "dirsrv"
)

const (
	// start389Timeout bounds Start389 as a whole.
	start389Timeout = 3 * time.Minute
	// ready389Timeout bounds how long a starting ns-slapd may take to answer.
	ready389Timeout = 60 * time.Second
	// nsSlapdLogLevel is 389's default error log level
	// (SLAPD_DEFAULT_ERRORLOG_LEVEL, as dscontainer passes it): `-d` keeps
	// ns-slapd in the foreground and sets the level, and a lower one
	// silences even fatal startup errors.
	nsSlapdLogLevel = "266354688"
)

// instanceSeq makes instance names unique within the process; with the
// PID they are unique on the machine, which matters because ns-slapd keeps
// a semaphore named after the instance in /dev/shm.
var instanceSeq atomic.Int64

// DS389Cluster is one or two 389 Directory Server instances serving
// BaseDN with the sample data (ds389_data.go); two instances replicate to
// each other (supplier-supplier).
type DS389Cluster struct {
	Dir       string   // parent of the instances' prefixes (mode 0755)
	Instances []*DS389 // Instances[i].ID == i+1
}

// DS389 is one 389 Directory Server instance, installed with dscreate in
// its own prefix and run by the harness in the foreground as user dirsrv.
type DS389 struct {
	ID     int    // 1-based; the replica ID when replicating
	Name   string // instance name (serverid): files are named slapd-NAME
	Prefix string // private installation prefix
	Port   int    // LDAP port on 127.0.0.1
	Addr   string // "127.0.0.1:PORT"
	URL    string // "ldap://127.0.0.1:PORT"

	// ManagerDN and ManagerPassword are the Directory Manager's.
	ManagerDN, ManagerPassword string

	ConfigDir string // PREFIX/etc/dirsrv/slapd-NAME (dse.ldif)
	LogFile   string // ns-slapd's output: its error log since the harness started it
	ErrorLog  string // ns-slapd's errors log (dscreate's run included)
	AccessLog string // ns-slapd's access log (buffered)

	securePort int
	proc       proc
}

// Start389 starts n (1 or 2) 389 Directory Server instances on free ports of
// 127.0.0.1, loads the sample data and, with n == 2, sets up replication in
// both directions and initialises instance 2 from instance 1. Everything
// is stopped and removed in t.Cleanup (logs are shown if t failed). It
// needs root and the packages that `make deps-test` installs; without them
// it skips t, or fails it in CI (CI=true).
func Start389(t testing.TB, n int) *DS389Cluster {
	t.Helper()
	if n != 1 && n != 2 {
		t.Fatalf("dirtest: Start389 supports 1 or 2 instances, not %d", n)
	}
	cred, err := check389()
	if err != nil {
		fatalOrSkip(t, err)
	}
	dir, err := makeSearchableDir("ldapmux-389-")
	if err != nil {
		t.Fatal(err)
	}
	c := &DS389Cluster{Dir: dir}
	t.Cleanup(func() { c.cleanup(t) })
	ctx, cancel := testContext(t, start389Timeout)
	defer cancel()
	began := time.Now()
	if err := c.setup(ctx, n, cred); err != nil {
		t.Fatal(err)
	}
	t.Logf("dirtest: %d 389 instance(s) up in %v: %s", n, time.Since(began).Round(time.Millisecond), strings.Join(c.URLs(), " "))
	return c
}

// check389 fails unless 389 DS is installed, the test runs as root and
// the temporary directory is reachable by dirsrv; it returns dirsrv's
// credentials.
func check389() (*syscall.Credential, error) {
	for _, p := range []string{DscreatePath, DsconfPath, NsSlapdPath} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("dirtest: 389 Directory Server is %w (%v): run `make deps-test`", errUnavailable, err)
		}
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("dirtest: 389 Directory Server is %w: it needs root (dscreate, user dirsrv)", errUnavailable)
	}
	if err := checkTraversable(os.TempDir()); err != nil {
		return nil, err
	}
	u, err := user.Lookup(dsUser)
	if err != nil {
		return nil, fmt.Errorf("dirtest: %w", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// checkTraversable fails unless every directory from dir up to / may be
// traversed by other users.
func checkTraversable(dir string) error {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		info, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("dirtest: %w", err)
		}
		if info.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("dirtest: %s (mode %v) is not traversable by user %s: set TMPDIR to another directory", d, info.Mode().Perm(), dsUser)
		}
		if d == "/" {
			return nil
		}
	}
}

// setup creates, starts and seeds the instances, then sets up replication.
func (c *DS389Cluster) setup(ctx context.Context, n int, cred *syscall.Credential) error {
	ports, err := slapdrun.FreePorts(2 * n)
	if err != nil {
		return err
	}
	for id := 1; id <= n; id++ {
		c.Instances = append(c.Instances, newDS389(c.Dir, id, ports[2*id-2], ports[2*id-1], cred))
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, d := range c.Instances {
		wg.Go(func() { errs[i] = d.create(ctx, n > 1) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := c.Instances[0].seed(ctx); err != nil {
		return err
	}
	for _, d := range c.Instances { // cn=config is not replicated
		if err := d.allowReplicationStateReads(ctx); err != nil {
			return err
		}
	}
	if n > 1 {
		return c.setupReplication(ctx)
	}
	return nil
}

// newDS389 returns instance id (not created) with its prefix in dir.
func newDS389(dir string, id, port, securePort int, cred *syscall.Credential) *DS389 {
	name := fmt.Sprintf("lmx%d_%d", os.Getpid(), instanceSeq.Add(1))
	prefix := filepath.Join(dir, "ds"+strconv.Itoa(id))
	d := &DS389{
		ID: id, Name: name, Prefix: prefix, Port: port, securePort: securePort,
		Addr:      "127.0.0.1:" + strconv.Itoa(port),
		ManagerDN: DirectoryManagerDN, ManagerPassword: DirectoryManagerPassword,
		ConfigDir: filepath.Join(prefix, "etc/dirsrv/slapd-"+name),
		ErrorLog:  filepath.Join(prefix, "var/log/dirsrv/slapd-"+name, "errors"),
		AccessLog: filepath.Join(prefix, "var/log/dirsrv/slapd-"+name, "access"),
	}
	d.URL = "ldap://" + d.Addr
	d.LogFile = filepath.Join(prefix, "ns-slapd.log")
	d.proc = proc{name: fmt.Sprintf("389 instance %d (%s)", id, d.Addr), logFile: d.LogFile, cred: cred}
	return d
}

// create installs the instance with dscreate, starts it and, if
// replicated, enables replication on BaseDN.
func (d *DS389) create(ctx context.Context, replicated bool) error {
	if err := d.makePrefix(); err != nil {
		return err
	}
	inf := filepath.Join(d.Prefix, "instance.inf")
	if err := os.WriteFile(inf, []byte(d.inf()), 0o600); err != nil {
		return fmt.Errorf("dirtest: %w", err)
	}
	if _, err := runCommand(ctx, d.env(), DscreatePath, "from-file", inf); err != nil {
		return fmt.Errorf("%w\n%s errors log:\n%s", err, d.proc.name, readTail(d.ErrorLog, 0, logTailLines))
	}
	if err := d.disableLDAPI(); err != nil {
		return err
	}
	if err := d.Start(ctx); err != nil {
		return err
	}
	if !replicated {
		return nil
	}
	_, err := d.dsconf(ctx, "replication", "enable", "--suffix", BaseDN, "--role", "supplier",
		"--replica-id", strconv.Itoa(d.ID), "--bind-dn", ReplicationManagerDN, "--bind-passwd", replicationManagerPassword)
	return err
}

// env is the environment that points dscreate and dsconf at the prefix.
func (d *DS389) env() []string { return []string{"PREFIX=" + d.Prefix, "INSTALL_PREFIX=" + d.Prefix} }

// dsconf runs dsconf against the instance as Directory Manager.
func (d *DS389) dsconf(ctx context.Context, args ...string) (string, error) {
	args = append([]string{"-D", d.ManagerDN, "-w", d.ManagerPassword, d.URL}, args...)
	return runCommand(ctx, d.env(), DsconfPath, args...)
}

// inf is dscreate's input. The instance is left stopped: the harness runs
// it itself.
func (d *DS389) inf() string {
	return fmt.Sprintf(`[general]
full_machine_name = localhost
strict_host_checking = False
start = False

[slapd]
instance_name = %s
port = %d
secure_port = %d
root_dn = %s
root_password = %s
self_sign_cert = False

[backend-userroot]
suffix = %s
create_suffix_entry = True
`, d.Name, d.Port, d.securePort, d.ManagerDN, d.ManagerPassword, BaseDN)
}

// makePrefix lays out the private prefix: a copy of the system's data and
// configuration templates, a defaults.inf pointing into the prefix and
// templates that listen on 127.0.0.1 only.
func (d *DS389) makePrefix() error {
	share := filepath.Join(d.Prefix, "share/dirsrv")
	steps := []func() error{
		func() error { return os.CopyFS(share, os.DirFS(dsShareDir)) },
		func() error {
			return os.CopyFS(filepath.Join(d.Prefix, "etc/dirsrv/config"), os.DirFS(dsEtcDir+"/config"))
		},
		func() error {
			return os.CopyFS(filepath.Join(d.Prefix, "etc/dirsrv/schema"), os.DirFS(dsEtcDir+"/schema"))
		},
		func() error { return writeDefaultsInf(filepath.Join(share, "inf/defaults.inf"), d.Prefix) },
		func() error { return listenOnLoopback(filepath.Join(share, "data")) },
		d.makeOwnedDirs,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("dirtest: prepare prefix %s: %w", d.Prefix, err)
		}
	}
	return nil
}

// makeOwnedDirs creates the directories ns-slapd writes to, owned by dirsrv.
func (d *DS389) makeOwnedDirs() error {
	for _, sub := range []string{"run/dirsrv", "run/lock/dirsrv", "var/log/dirsrv", "var/lib/dirsrv", "dev/shm", "tmp"} {
		dir := filepath.Join(d.Prefix, sub)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.Chown(dir, int(d.proc.cred.Uid), int(d.proc.cred.Gid)); err != nil {
			return err
		}
	}
	return nil
}

// systemPathKeys are the defaults.inf paths that stay the system's: the
// binaries and plugins.
var systemPathKeys = map[string]bool{"bin_dir": true, "sbin_dir": true, "lib_dir": true, "plugin_dir": true}

// writeDefaultsInf writes the prefix's defaults.inf from the system's:
// no systemd or SELinux, and every path except the binaries' under prefix.
func writeDefaultsInf(path, prefix string) error {
	f, err := os.Open(filepath.Join(dsShareDir, "inf/defaults.inf"))
	if err != nil {
		return err
	}
	defer f.Close()
	var b strings.Builder
	scan := bufio.NewScanner(f)
	for scan.Scan() {
		b.WriteString(defaultsLine(scan.Text(), prefix) + "\n")
	}
	if err := scan.Err(); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// defaultsLine rewrites one "key = value" line of defaults.inf.
func defaultsLine(line, prefix string) string {
	key, value, ok := strings.Cut(line, " = ")
	if !ok || strings.HasPrefix(key, ";") || strings.HasPrefix(key, "#") {
		return line
	}
	switch {
	case key == "with_systemd":
		value = "0"
	case key == "with_selinux":
		value = "no"
	case key == "prefix":
		value = prefix
	case key == "data_dir":
		value = filepath.Join(prefix, "share")
	case key == "inst_dir":
		value = filepath.Join(prefix, "lib/dirsrv/slapd-{instance_name}")
	case key == "system_schema_dir":
		value = filepath.Join(prefix, "share/dirsrv/schema")
	case strings.HasPrefix(value, "/") && !systemPathKeys[key]:
		value = prefix + value
	}
	return key + " = " + value
}

// portLine matches the port setting of the dse.ldif templates.
var portLine = regexp.MustCompile(`(?m)^nsslapd-port: %ds_port%$`)

// listenOnLoopback makes the dse.ldif templates in dir listen on 127.0.0.1
// only.
func listenOnLoopback(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "template-dse*.ldif"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no dse.ldif templates in %s (%v)", dir, err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		out := portLine.ReplaceAllString(string(data), "$0\nnsslapd-listenhost: 127.0.0.1\nnsslapd-securelistenhost: 127.0.0.1")
		if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// disableLDAPI turns the LDAPI socket off in dse.ldif (the instance is
// stopped): dscreate ran it as root, which left a socket file that ns-slapd
// running as dirsrv cannot replace, and the tests want TCP only.
func (d *DS389) disableLDAPI() error {
	file := filepath.Join(d.ConfigDir, "dse.ldif")
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("dirtest: %w", err)
	}
	out := strings.Replace(string(data), "\nnsslapd-ldapilisten: on\n", "\nnsslapd-ldapilisten: off\n", 1)
	if out == string(data) {
		return fmt.Errorf("dirtest: no nsslapd-ldapilisten: on in %s", file)
	}
	return os.WriteFile(file, []byte(out), 0o600)
}

// pidFile is where ns-slapd writes its PID.
func (d *DS389) pidFile() string {
	return filepath.Join(d.Prefix, "run/dirsrv/slapd-"+d.Name+".pid")
}

// semaphore is the POSIX semaphore ns-slapd creates for its statistics; a
// killed ns-slapd leaves it behind.
func (d *DS389) semaphore() string { return "/dev/shm/sem.slapd-" + d.Name + ".stats" }

// Start runs ns-slapd in the foreground and waits until it answers; it
// fails if the instance is already running.
func (d *DS389) Start(ctx context.Context) error {
	if err := d.proc.start(d.Prefix, NsSlapdPath, "-D", d.ConfigDir, "-i", d.pidFile(), "-d", nsSlapdLogLevel); err != nil {
		return err
	}
	if err := d.waitReady(ctx); err != nil {
		return errors.Join(err, d.Kill())
	}
	return nil
}

// waitReady polls the root DSE until it names BaseDN, failing if ns-slapd
// exits.
func (d *DS389) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ready389Timeout)
	defer cancel()
	err := waitFor(ctx, d.proc.name+" not ready", d.proc.exited(), func() error {
		e, err := rootDSE(d.URL, "namingContexts")
		if err != nil {
			return err
		}
		if !hasValue(e.GetAttributeValues("namingContexts"), BaseDN) {
			return fmt.Errorf("namingContexts %v lack %s", e.GetAttributeValues("namingContexts"), BaseDN)
		}
		return nil
	})
	if err != nil && !d.proc.running() {
		return d.proc.exitError()
	}
	if err != nil {
		return fmt.Errorf("%w; log %s:\n%s", err, d.LogFile, d.proc.logTail())
	}
	return nil
}

// hasValue reports whether vals contains v, ignoring case.
func hasValue(vals []string, v string) bool {
	for _, x := range vals {
		if strings.EqualFold(x, v) {
			return true
		}
	}
	return false
}

// PID returns the process id of the running ns-slapd, or 0.
func (d *DS389) PID() int { return d.proc.pid() }

// Running reports whether ns-slapd is running.
func (d *DS389) Running() bool { return d.proc.running() }

// Stop shuts ns-slapd down cleanly (SIGTERM), killing it after 20 s. It is
// a no-op if the instance is not running.
func (d *DS389) Stop() error {
	return errors.Join(d.proc.stop(stopTimeout), d.removeSemaphore())
}

// Kill kills ns-slapd (SIGKILL); the next Start recovers the database.
func (d *DS389) Kill() error {
	return errors.Join(d.proc.kill(), d.removeSemaphore())
}

// removeSemaphore removes the instance's semaphore once ns-slapd is gone.
func (d *DS389) removeSemaphore() error {
	if d.proc.running() {
		return nil
	}
	if err := os.Remove(d.semaphore()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("dirtest: %w", err)
	}
	return nil
}

// URLs returns the ldap:// URLs of all instances.
func (c *DS389Cluster) URLs() []string {
	urls := make([]string, len(c.Instances))
	for i, d := range c.Instances {
		urls[i] = d.URL
	}
	return urls
}

// Instance returns the instance with the given 1-based id.
func (c *DS389Cluster) Instance(id int) *DS389 { return c.Instances[id-1] }

// cleanup kills every instance (the data is thrown away, so there is no
// need for a clean shutdown), shows the logs if t failed and removes Dir.
func (c *DS389Cluster) cleanup(t testing.TB) {
	for _, d := range c.Instances {
		if t.Failed() {
			t.Logf("dirtest: %s: last lines of %s:\n%s", d.proc.name, d.LogFile, readTail(d.LogFile, 0, logTailLines))
		}
		if err := d.Kill(); err != nil {
			t.Errorf("dirtest: stop %s: %v", d.proc.name, err)
		}
	}
	if err := removeAll(c.Dir); err != nil {
		t.Errorf("dirtest: %v", err)
	}
}

// seed loads the sample data as Directory Manager.
// allowReplicationStateReads adds replicationStateACI to d's configuration.
func (d *DS389) allowReplicationStateReads(ctx context.Context) error {
	return withBind(ctx, d.URL, d.ManagerDN, d.ManagerPassword, func(conn *ldap.Conn) error {
		if err := conn.Modify(replicationStateACI()); err != nil {
			return fmt.Errorf("dirtest: add the replication state ACI to %s: %w", d.proc.name, err)
		}
		return nil
	})
}

func (d *DS389) seed(ctx context.Context) error {
	mod, adds := seedRequests()
	return withBind(ctx, d.URL, d.ManagerDN, d.ManagerPassword, func(conn *ldap.Conn) error {
		if err := conn.Modify(mod); err != nil {
			return fmt.Errorf("dirtest: add ACIs to %s: %w", d.proc.name, err)
		}
		for _, add := range adds {
			if err := conn.Add(add); err != nil {
				return fmt.Errorf("dirtest: add %s to %s: %w", add.DN, d.proc.name, err)
			}
		}
		return nil
	})
}
