package e2e

import (
	"fmt"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// nslcdSession runs nslcd (the daemon behind Debian's libnss-ldapd and
// libpam-ldapd) against an LDAP server in a mount namespace of its own,
// where /etc/nslcd.conf, /etc/nsswitch.conf (users and groups from the
// local files, then LDAP), /etc/pam.d and /run are the test's, then looks
// users and groups up through NSS (getent, id) and logs them in through PAM
// (pamtester), as a Linux host does. It prints every command and what it
// answered (runHostSession).
const nslcdSession = `mount --bind "$dir/nslcd.conf" /etc/nslcd.conf
mount --bind "$dir/nsswitch.conf" /etc/nsswitch.conf
mount -t tmpfs tmpfs /etc/pam.d
cp "$dir/ldapmux-test" /etc/pam.d/ldapmux-test
mount -t tmpfs tmpfs /run
mkdir /run/nslcd
chown nslcd:nslcd /run/nslcd
nslcd -d 2>"$dir/nslcd.log" &
nslcd=$!
trap 'kill $nslcd 2>/dev/null; wait $nslcd 2>/dev/null || true' EXIT
for _ in $(seq 1 200); do [ -S /run/nslcd/socket ] && break; sleep 0.05; done
[ -S /run/nslcd/socket ] || { echo "nslcd did not start"; cat "$dir/nslcd.log"; exit 1; }
run getent passwd
run getent group
run getent passwd px1
run getent passwd 20003
run getent passwd nobody-here
run getent group px-staff
run getent initgroups px2
run id px1
run getent shadow px4
` + hostLogins

// posixEntries adds, as the writer, the POSIX users and groups nslcd serves.
func posixEntries(t *testing.T, addr string) {
	t.Helper()
	conn := bindAs(t, addr, slapdtest.WriterDN, slapdtest.WriterPassword)
	add := func(dn string, attrs map[string][]string) {
		t.Helper()
		req := ldap.NewAddRequest(dn, nil)
		for k, v := range attrs {
			req.Attribute(k, v)
		}
		if err := conn.Add(req); err != nil {
			t.Fatalf("add %s: %v", dn, err)
		}
	}
	for n := 1; n <= 5; n++ {
		uid := fmt.Sprintf("px%d", n)
		add("uid="+uid+","+slapdtest.ScratchDN, map[string][]string{
			"objectClass": {"inetOrgPerson", "posixAccount", "shadowAccount"},
			"uid":         {uid}, "cn": {"POSIX user " + uid}, "sn": {uid},
			"uidNumber": {fmt.Sprint(20000 + n)}, "gidNumber": {"20000"},
			"homeDirectory": {"/home/" + uid}, "loginShell": {"/bin/sh"},
			"userPassword": {fmt.Sprintf("secret-%d", n)},
		})
	}
	add("cn=px-staff,"+slapdtest.ScratchDN, map[string][]string{
		"objectClass": {"posixGroup"}, "cn": {"px-staff"}, "gidNumber": {"20000"}, "memberUid": {"px1", "px2", "px3"}})
	add("cn=px-ops,"+slapdtest.ScratchDN, map[string][]string{
		"objectClass": {"posixGroup"}, "cn": {"px-ops"}, "gidNumber": {"20010"}, "memberUid": {"px2", "px5"}})
}

// runNslcd runs nslcdSession with nslcd pointed at addr.
func runNslcd(t *testing.T, addr string) string {
	t.Helper()
	conf := fmt.Sprintf(`uid nslcd
gid nslcd
uri ldap://%s/
base %s
binddn %s
bindpw %s
pagesize 2
bind_timelimit 10
timelimit 20
reconnect_retrytime 1
`, addr, slapdtest.ScratchDN, slapdtest.AppDN, slapdtest.AppPassword)
	return runHostSession(t, "nslcd session against "+addr, nslcdSession,
		hostDaemon{confFile: "nslcd.conf", conf: conf, nss: "ldap", pam: "pam_ldap.so", log: "nslcd.log"})
}

// TestNslcdThroughProxy serves a Linux host's users, groups and logins
// from the directory with nslcd (NSS and PAM through libnss-ldapd and
// libpam-ldapd, nslcd bound as an application account, paging two entries
// at a time), once straight from slapd and once through ldapmux, and
// compares every lookup and login.
func TestNslcdThroughProxy(t *testing.T) {
	hostTools(t, "nslcd, libnss-ldapd, libpam-ldapd", "nslcd")
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: 3})
	_, addr := startProxy(t, cluster, "")
	direct := cluster.Replica(1).Addr
	posixEntries(t, direct)
	want := runNslcd(t, direct)
	sameHostSession(t, want, runNslcd(t, addr))
}
