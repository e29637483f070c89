package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/ldapmux/ldapmux/internal/app"
	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/slapdrun"
)

// demo starts three slapd replicas and the proxy in front of them, prints
// commands to try, and cleans up on Ctrl-C.
func demo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:1389", "address the proxy listens on")
	firstPort := fs.Int("backend-port", 3891, "port of the first slapd replica (the others follow; 0: free ports)")
	replicas := fs.Int("replicas", 3, "number of slapd replicas")
	adminAddr := fs.String("admin", "127.0.0.1:8389", "admin listener: status page, metrics, reload")
	if err := fs.Parse(args); err != nil {
		return parseFailed(err)
	}
	defer takeTerminal()()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	removeStaleDemoDirs(os.TempDir(), stdout)
	dir, err := makeDemoDir(os.TempDir())
	if err != nil {
		fmt.Fprintf(stderr, "ldapmux demo: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)

	fmt.Fprintf(stdout, "Starting %d OpenLDAP slapd replicas on 127.0.0.1...\n", *replicas)
	cluster, err := startDemoCluster(ctx, dir, *replicas, *firstPort)
	if err != nil {
		fmt.Fprintf(stderr, "ldapmux demo: %v\n", err)
		return 1
	}
	defer cluster.Close()

	cfgPath := filepath.Join(cluster.Dir, "ldapmux.yaml")
	a, err := startDemoProxy(ctx, cluster, *listen, *adminAddr, cfgPath, log)
	if err != nil {
		fmt.Fprintf(stderr, "ldapmux demo: %v (choose other addresses with -listen and -admin)\n", err)
		return 1
	}
	printDemoHelp(stdout, cluster, a, cfgPath)
	<-ctx.Done()
	fmt.Fprintln(stdout, "\nStopping ldapmux and the replicas...")
	drain, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a.Shutdown(drain)
	return 0
}

// startDemoCluster starts the replicas in dir on fixed ports, or on free
// ones when those are taken (or firstPort is 0).
func startDemoCluster(ctx context.Context, dir string, n, firstPort int) (*slapdrun.Cluster, error) {
	opts := slapdrun.Options{Replicas: n, Users: demoUsers, Dir: dir}
	if firstPort > 0 {
		for i := range n {
			opts.Ports = append(opts.Ports, firstPort+i)
		}
	}
	c, err := slapdrun.Start(ctx, opts)
	if err != nil && ctx.Err() == nil && opts.Ports != nil {
		opts.Ports = nil
		c, err = slapdrun.Start(ctx, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("start slapd replicas: %w (is the slapd package installed? `make demo` installs it)", err)
	}
	return c, nil
}

// demoConfig is the configuration the demo runs with; it is also written
// to disk so that it can be read and reused.
const demoConfig = `# ldapmux demo configuration (written by ldapmux demo)
listen:
  - address: {{.Listen}}
servers:
{{- range .Replicas}}
  - name: ds{{.ID}}
    address: {{.Addr}}
{{- end}}
service-account:
  bind-dn: {{.ServiceDN}}
  password: {{.ServicePassword}}
pool:
  connections-per-server: 8
  bind-connections-per-server: 2
  max-connection-age: 5m
  idle-check-interval: 10s
  connect-timeout: 2s
  operation-timeout: 5s
load-balancing:
  algorithm: failover
admin:
  address: {{.Admin}}
monitor:
  admin-dns: ["{{.AdminDN}}"]
`

func startDemoProxy(ctx context.Context, c *slapdrun.Cluster, listen, adminAddr, path string, log *slog.Logger) (*app.App, error) {
	var b strings.Builder
	data := map[string]any{"Listen": listen, "Replicas": c.Replicas, "ServiceDN": slapdrun.ServiceDN, "ServicePassword": slapdrun.ServicePassword,
		"Admin": adminAddr, "AdminDN": slapdrun.AdminDN}
	if err := template.Must(template.New("cfg").Parse(demoConfig)).Execute(&b, data); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	a, err := app.New(cfg, log)
	if err != nil {
		return nil, err
	}
	a.SetConfigFile(path, nil)
	return a, a.Start(ctx)
}

const demoHelp = `
ldapmux is listening on {{.Addr}} in front of:
{{- range .Replicas}}
  ds{{.ID}}  {{.URL}}  (pid {{.PID}})
{{- end}}
Configuration: {{.Config}}

Try it (users uid=user.1 .. uid=user.100, password password.N):

  ldapsearch -x -H ldap://{{.Addr}} -b ou=people,dc=example,dc=com "(uid=user.1)"
  ldapwhoami -x -H ldap://{{.Addr}} -D uid=user.1,ou=people,dc=example,dc=com -w password.1
  ldapwhoami -H ldap://{{.Addr}} -Y SCRAM-SHA-256 -U user.1 -w password.1     # SASL
  ldapsearch -x -H ldap://{{.Addr}} -D uid=user.1,ou=people,dc=example,dc=com -w password.1 \
      -b ou=people,dc=example,dc=com -E pr=10/noprompt "(uid=*)" mail
  printf 'dn: cn=hello,ou=scratch,dc=example,dc=com\nobjectClass: organizationalRole\ncn: hello\n' | \
      ldapadd -x -H ldap://{{.Addr}} -D {{.WriterDN}} -w {{.WriterPassword}}

Status page: http://{{.Admin}}/
Status:      {{.Self}} status -admin {{.Admin}}
Metrics:     http://{{.Admin}}/metrics
cn=monitor:  ldapsearch -x -H ldap://{{.Addr}} -D {{.AdminDN}} -w {{.AdminPassword}} -b cn=monitor
Reload:      edit {{.Config}}, then:
             {{.Self}} reload -admin {{.Admin}}
Load:        {{.Self}} bench -H ldap://{{.Addr}} -d 5s

Watch failover: stop the primary, keep searching, then bring it back
(traffic returns to ds1 by itself):

  kill -STOP {{.PrimaryPID}}    # hung server: reads move on within the operation timeout (5s)
  kill -CONT {{.PrimaryPID}}    # back: traffic returns to ds1

Press Ctrl-C to stop ldapmux and the replicas (their files in {{.Dir}} are removed).
`

func printDemoHelp(w io.Writer, c *slapdrun.Cluster, a *app.App, cfgPath string) {
	data := map[string]any{"Self": selfCommand(), "Addr": a.Addrs()[0], "Admin": a.AdminAddr(), "AdminDN": slapdrun.AdminDN, "AdminPassword": slapdrun.AdminPassword,
		"Replicas": c.Replicas, "Config": cfgPath, "Dir": c.Dir,
		"PrimaryPID": c.Replicas[0].PID(), "WriterDN": slapdrun.WriterDN, "WriterPassword": slapdrun.WriterPassword}
	template.Must(template.New("help").Parse(demoHelp)).Execute(w, data)
}

// selfCommand is how to run this ldapmux from the demo's working directory:
// "ldapmux" when that is what PATH finds, a path relative to the working
// directory when below it (./bin/ldapmux after make demo), the absolute path
// otherwise, and "go run ./cmd/ldapmux" for a binary go run built (it is
// deleted when go run exits).
func selfCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "ldapmux"
	}
	exe, _ = filepath.EvalSymlinks(exe)
	if onPath, err := exec.LookPath("ldapmux"); err == nil {
		if p, _ := filepath.EvalSymlinks(onPath); p == exe {
			return "ldapmux"
		}
	}
	wd, _ := os.Getwd()
	if strings.Contains(exe, string(filepath.Separator)+"go-build") {
		if _, err := os.Stat(filepath.Join(wd, "cmd", "ldapmux")); err == nil {
			return "go run ./cmd/ldapmux"
		}
	}
	if rel, err := filepath.Rel(wd, exe); err == nil && filepath.IsLocal(rel) {
		return "./" + rel
	}
	return exe
}

// A demo keeps its files in a directory named demoDirPrefix* in the
// temporary directory, with its process ID in demoPIDFile. A demo that was
// killed (kill -9) cannot remove its directory (its slapd replicas die with
// it: the kernel kills them when their parent dies), so each demo removes,
// when it starts, the directories of demos whose process is gone.
const (
	demoDirPrefix = "ldapmux-demo-"
	demoPIDFile   = "ldapmux-demo.pid"
)

func makeDemoDir(tmp string) (string, error) {
	dir, err := os.MkdirTemp(tmp, demoDirPrefix)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, demoPIDFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// removeStaleDemoDirs removes the directories of demos that are no longer
// running. A directory without a readable PID file is left alone: it may
// belong to a demo that is starting.
func removeStaleDemoDirs(tmp string, w io.Writer) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, demoDirPrefix+"*"))
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, demoPIDFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid <= 0 || processExists(pid) {
			continue
		}
		if err := os.RemoveAll(dir); err == nil {
			fmt.Fprintf(w, "Removed %s, left by a demo that was killed (pid %d).\n", dir, pid)
		}
	}
}

// processExists says whether a process with this ID exists (signal 0
// checks without sending anything; EPERM means it exists as another user).
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
