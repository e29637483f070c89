package e2e

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// ldapTool runs an OpenLDAP client against the proxy and returns its output.
func ldapTool(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not installed (package ldap-utils): run `make test`, which installs it", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if name == "ldapcompare" && errors.As(err, &exit) && (exit.ExitCode() == 5 || exit.ExitCode() == 6) {
		err = nil // compareFalse / compareTrue
	}
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestOpenLDAPClients drives every operation with OpenLDAP's own tools.
func TestOpenLDAPClients(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: 30})
	_, addr := startProxy(t, cluster, "")
	uri := "ldap://" + addr
	writer := []string{"-x", "-H", uri, "-D", slapdtest.WriterDN, "-w", slapdtest.WriterPassword}
	expect := func(out, want string) {
		t.Helper()
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}

	out := ldapTool(t, "", "ldapsearch", "-x", "-H", uri, "-b", slapdtest.PeopleDN, "-E", "pr=7/noprompt", "(uid=*)", "uid")
	expect(out, "numEntries: 30")
	expect(out, "dn: "+slapdtest.UserDN(30))

	expect(ldapTool(t, "", "ldapwhoami", "-x", "-H", uri, "-D", slapdtest.UserDN(2), "-w", slapdtest.UserPassword(2)), "dn:"+slapdtest.UserDN(2))
	expect(ldapTool(t, "", "ldapwhoami", "-x", "-H", uri), "anonymous")

	entry := "cn=cli-test," + slapdtest.ScratchDN
	ldif := "dn: " + entry + "\nchangetype: add\nobjectClass: organizationalRole\ncn: cli-test\n\n" +
		"dn: " + entry + "\nchangetype: modify\nreplace: description\ndescription: from ldapmodify\n"
	expect(ldapTool(t, ldif, "ldapmodify", writer...), "modifying entry")
	expect(ldapTool(t, "", "ldapcompare", append(writer, entry, "description:from ldapmodify")...), "TRUE")
	ldapTool(t, "", "ldapmodrdn", append(writer, "-r", entry, "cn=cli-renamed")...)
	renamed := "cn=cli-renamed," + slapdtest.ScratchDN
	expect(ldapTool(t, "", "ldapsearch", append(writer, "-b", renamed, "-s", "base", "description")...), "description: from ldapmodify")
	ldapTool(t, "", "ldapdelete", append(writer, renamed)...)
	out = ldapTool(t, "", "ldapsearch", "-x", "-H", uri, "-b", slapdtest.ScratchDN, "-s", "one", "(cn=cli-*)", "cn")
	expect(out, "numResponses: 1") // only the done message: no entry left
	if strings.Contains(out, "numEntries:") {
		t.Fatalf("deleted entry still found:\n%s", out)
	}

	// transactions are refused: ldapmodify says so and applies the changes one by one
	inTxn := "cn=cli-txn," + slapdtest.ScratchDN
	out = ldapTool(t, "dn: "+inTxn+"\nchangetype: add\nobjectClass: organizationalRole\ncn: cli-txn\n",
		"ldapmodify", append(writer, "-E", "txn=commit")...)
	expect(out, "ldap_txn_start_s: Server is unwilling to perform (53)")
	expect(ldapTool(t, "", "ldapsearch", append(writer, "-b", inTxn, "-s", "base", "creatorsName")...), "creatorsName: "+slapdtest.WriterDN)

	ldapTool(t, "", "ldappasswd", "-x", "-H", uri, "-D", slapdtest.UserDN(3), "-w", slapdtest.UserPassword(3), "-s", "changed-by-ldappasswd")
	expect(ldapTool(t, "", "ldapwhoami", "-x", "-H", uri, "-D", slapdtest.UserDN(3), "-w", "changed-by-ldappasswd"), "dn:"+slapdtest.UserDN(3))
}
