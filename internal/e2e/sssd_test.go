package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// sssdSession runs SSSD with an LDAP domain in a mount namespace of its own,
// where /etc/sssd, /var/lib/sss (its cache, sockets and memory cache), its
// logs, /etc/nsswitch.conf (local files, then SSSD), /etc/pam.d and /run are
// the test's, then looks users and groups up through NSS and logs them in
// through PAM, as an enrolled Linux host does. It prints every command and
// what it answered.
const sssdSession = `mount -t tmpfs tmpfs /etc/sssd
install -m 0600 "$dir/sssd.conf" /etc/sssd/sssd.conf
mount --bind "$dir/nsswitch.conf" /etc/nsswitch.conf
mount -t tmpfs tmpfs /etc/pam.d
cp "$dir/ldapmux-test" /etc/pam.d/ldapmux-test
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var/lib/sss
mkdir -p /var/lib/sss/db /var/lib/sss/pipes/private /var/lib/sss/mc /var/lib/sss/pubconf /var/lib/sss/gpo_cache
chmod 0700 /var/lib/sss/pipes/private
mount -t tmpfs tmpfs /var/log/sssd
sssd -i --logger=stderr -d 2 2>"$dir/sssd.log" &
sssd=$!
trap 'kill $sssd 2>/dev/null; wait $sssd 2>/dev/null || true' EXIT
for _ in $(seq 1 400); do [ -S /var/lib/sss/pipes/nss ] && [ -S /var/lib/sss/pipes/pam ] && break; sleep 0.05; done
[ -S /var/lib/sss/pipes/nss ] || { echo "sssd did not start"; exit 1; }
run getent passwd px1
run getent passwd 20003
run getent passwd nobody-here
run getent group px-staff
run getent group 20010
run getent initgroups px2
run id px1
run id px5
` + hostLogins

// sortGroupMembers sorts the members of each group line (name:password:
// gid:members) of out: SSSD lists them in the order of its cache.
func sortGroupMembers(out string) string {
	lines := strings.Split(out, "\n")
	for i, line := range lines {
		f := strings.Split(line, ":")
		if len(f) != 4 || strings.HasPrefix(line, "$") {
			continue
		}
		members := strings.Split(f[3], ",")
		slices.Sort(members)
		f[3] = strings.Join(members, ",")
		lines[i] = strings.Join(f, ":")
	}
	return strings.Join(lines, "\n")
}

// runSSSD runs sssdSession with SSSD's LDAP domain pointed at addr; tls is
// how it secures the connection (sssd.conf lines).
func runSSSD(t *testing.T, addr, tls string) string {
	t.Helper()
	conf := fmt.Sprintf(`[sssd]
services = nss, pam
domains = ldap

[nss]

[pam]

[domain/ldap]
id_provider = ldap
auth_provider = ldap
ldap_uri = ldap://%s
ldap_search_base = %s
ldap_default_bind_dn = %s
ldap_default_authtok = %s
ldap_schema = rfc2307
ldap_page_size = 2
ldap_network_timeout = 10
ldap_search_timeout = 20
cache_credentials = false
%s`, addr, slapdtest.ScratchDN, slapdtest.AppDN, slapdtest.AppPassword, tls)
	return runHostSession(t, "SSSD session against "+addr, sssdSession,
		hostDaemon{confFile: "sssd.conf", conf: conf, nss: "sss", pam: "pam_sss.so", log: "sssd.log"})
}

// TestSSSDThroughProxy serves a Linux host's users, groups and logins from
// the directory with SSSD (its LDAP provider bound as an application
// account, paging two entries at a time; NSS and PAM through libnss-sss and
// libpam-sss), once straight from slapd and once through ldapmux, and
// compares every lookup and login: over plain LDAP, and as SSSD is deployed,
// with StartTLS and the server's certificate checked, to a proxy that takes
// passwords only over TLS.
func TestSSSDThroughProxy(t *testing.T) {
	hostTools(t, "sssd-ldap, libnss-sss, libpam-sss", "sssd")
	t.Run("plain", func(t *testing.T) {
		cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: 3})
		_, addr := startProxy(t, cluster, "")
		sameSSSD(t, cluster.Replica(1).Addr, addr, "ldap_auth_disable_tls_never_use_in_production = true\n")
	})
	t.Run("StartTLS", func(t *testing.T) {
		ca := newTestCA(t, "directory")
		cluster := tlsCluster(t, ca, slapdtest.Options{Replicas: 2, Users: 3})
		cert := ca.server("proxy", "127.0.0.1", "localhost")
		a, _, _ := startLoggedProxy(t, listenTLS(cert, "")+tlsServers(cluster, false, "")+"require-secure-bind: true\n")
		sameSSSD(t, cluster.Replica(1).Addr, a.Addrs()[0],
			"ldap_id_use_start_tls = true\nldap_tls_reqcert = demand\nldap_tls_cacert = "+ca.File+"\n")
	})
}

// sameSSSD adds the POSIX entries on direct, runs the SSSD session against
// direct and against proxied, and compares them.
func sameSSSD(t *testing.T, direct, proxied, tls string) {
	t.Helper()
	posixEntries(t, direct)
	want := sortGroupMembers(runSSSD(t, direct, tls))
	sameHostSession(t, want, sortGroupMembers(runSSSD(t, proxied, tls)))
}
