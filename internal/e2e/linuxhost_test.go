package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hostShell is what a Linux host session script starts with: the shell
// functions that run a command or a PAM login and print it with what it
// answered (sorted lines, then the exit status).
const hostShell = `set -eu
dir=$1
run() {
	echo "\$ $*"
	set +e
	out=$("$@" 2>&1)
	rc=$?
	set -e
	printf '%s\n' "$out" | sort
	echo "exit $rc"
}
login() { # user password
	echo "\$ pamtester ldapmux-test $1 authenticate acct_mgmt"
	set +e
	out=$(printf '%s\n' "$2" | pamtester ldapmux-test "$1" authenticate acct_mgmt 2>&1)
	rc=$?
	set -e
	printf '%s\n' "$out"
	echo "exit $rc"
}
`

// hostLogins are the PAM logins every host session tries, with the right
// password, a wrong one, and as a user nobody knows.
const hostLogins = `login px1 secret-1
login px2 wrong-password
login nobody-here secret-1
login px5 secret-5
`

// hostTools fails the test unless the host's tools are installed (the
// packages say where they come from) and the test runs as root, which a
// mount namespace takes.
func hostTools(t *testing.T, packages string, tools ...string) {
	t.Helper()
	for _, tool := range append(tools, "pamtester", "unshare") {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (packages %s, pamtester): run `make test`, which installs them", tool, packages)
		}
	}
	if os.Geteuid() != 0 {
		t.Fatal("the host's daemon runs in a mount namespace of its own, which takes root")
	}
}

// hostDaemon is what a host session's daemon is given: its configuration,
// the NSS and PAM modules that reach it, and where it logs.
type hostDaemon struct {
	confFile, conf string // written as confFile in the session's directory
	nss, pam       string // the nsswitch.conf source after "files", the PAM module
	log            string // the file in the session's directory it logs to
}

// runHostSession writes d's configuration, an nsswitch.conf and the PAM
// service ldapmux-test into a new directory and runs session (after
// hostShell) in a mount namespace of its own with that directory as $1; on
// failure it shows the daemon's log.
func runHostSession(t *testing.T, what, session string, d hostDaemon) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		d.confFile:      d.conf,
		"nsswitch.conf": fmt.Sprintf("passwd: files %[1]s\ngroup: files %[1]s\nshadow: files %[1]s\n", d.nss),
		"ldapmux-test":  fmt.Sprintf("auth required %[1]s\naccount required %[1]s\n", d.pam),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "sh", "-c", hostShell+session, "sh", dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		logged, _ := os.ReadFile(filepath.Join(dir, d.log))
		t.Fatalf("%s: %v\n%s\nits log:\n%s", what, err, out, logged)
	}
	return string(out)
}

// sameHostSession compares a host session through ldapmux with the one
// straight to the directory, and checks that it looked a user and a group
// up and saw a login succeed and one fail.
func sameHostSession(t *testing.T, want, got string) {
	t.Helper()
	if got != want {
		t.Fatalf("through ldapmux:\n%s\ndirectly:\n%s", got, want)
	}
	for _, seen := range []string{"px1:*:20001:20000:POSIX user px1:/home/px1:/bin/sh", "px-ops:*:20010:px2,px5",
		"successfully authenticated", "Authentication failure"} {
		if !strings.Contains(want, seen) {
			t.Fatalf("the session did not exercise %q:\n%s", seen, want)
		}
	}
}
