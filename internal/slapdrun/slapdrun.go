// Package slapdrun starts a small cluster of real OpenLDAP slapd servers on
// 127.0.0.1, configured as multi-provider syncrepl replicas of each other.
//
// It is used by the `ldapmux demo` command and, through internal/slapdtest
// (which adds ForTest), by integration tests; it does not import package
// testing, so the ldapmux binary does not link it.
//
// Every replica serves the same directory tree under BaseDN, pre-loaded with
// sample users, service accounts and a restricted subtree (see ldif.go), and
// the access control rules documented in config.go. Replicas can be killed,
// stopped, paused (SIGSTOP, to simulate a hung server), resumed and
// restarted, which makes the package suitable for failover tests.
//
// Requirements: the Debian slapd 2.5 package (/usr/sbin/slapd, slapadd,
// slaptest, modules in /usr/lib/ldap (back_mdb, syncprov, sssvlv), schemas
// in /etc/ldap/schema).
//
// slapd behaviour observed with these servers (2.5.13), relevant to a
// proxy that uses ServiceDN with Proxied Authorization (RFC 4370):
//
//   - The control works on search, add, modify, modrdn and delete (compare
//     untested: go-ldap's Compare takes no controls) and on the WhoAmI and
//     Password Modify extended operations; WhoAmI then
//     returns the proxied identity ("dn:<normalized dn>", or "" for
//     anonymous) and Password Modify changes the proxied user's password.
//     On a bind request it fails with unavailableCriticalExtension (12).
//   - An empty authzId means anonymous and is allowed for every
//     authenticated identity, even without authzTo. The control value must
//     be present: go-ldap's NewControlString omits an empty value, which
//     slapd rejects with protocolError ("proxy authorization control value
//     absent"); use ProxyAuthzControl. A non-critical control is accepted.
//   - Refusals are authorizationDenied (123): "not authorized to assume
//     identity" (no matching authzTo), "anonymous proxied authorization not
//     allowed" (unbound client), "authzId mapping failed" (malformed).
//   - authzTo "dn.regex:.*" lets ServiceDN assume ANY DN, including
//     AdminDN (rootdn: full access, e.g. to userPassword) and DNs that do not
//     exist (they get the rights of `users`). "u:name" maps to
//     "uid=name,cn=auth" (there is no authz-regexp). The proxy must only
//     assume identities whose credentials it has verified.
//   - slapd reads authzTo with `auth` access as the proxying identity
//     itself, so the ACL needs `by self auth` (see config.go).
package slapdrun

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Directory identities and credentials shared by all replicas.
const (
	// BaseDN is the suffix of the replicated mdb database.
	BaseDN = "dc=example,dc=com"
	// AdminDN is the rootdn of the data database. It bypasses all ACLs, may
	// use proxied authorization inside the database, may read cn=monitor and
	// is used by the replicas to replicate from each other.
	AdminDN = "cn=admin,dc=example,dc=com"
	// AdminPassword is the (plain text) rootpw of AdminDN.
	AdminPassword = "admin-secret"
	// ServiceDN is the proxy's service account. It is NOT the rootdn; its
	// authzTo value allows it to use Proxied Authorization v2 (RFC 4370) for
	// any identity, it may read cn=monitor and it is the only non-root
	// identity that may read the ou=restricted subtree.
	ServiceDN = "cn=ldapmux,ou=services,dc=example,dc=com"
	// ServicePassword is the password of ServiceDN.
	ServicePassword = "service-secret"
	// WriterDN is an application account that may add, modify, rename and
	// delete entries below ScratchDN.
	WriterDN = "uid=writer,ou=apps,dc=example,dc=com"
	// WriterPassword is the password of WriterDN.
	WriterPassword = "writer-secret"
	// AppDN is an ordinary, read-only application account.
	AppDN = "uid=app,ou=apps,dc=example,dc=com"
	// AppPassword is the password of AppDN.
	AppPassword = "app-secret"

	// PeopleDN holds the sample users (see UserDN).
	PeopleDN = "ou=people," + BaseDN
	// GroupsDN holds the group StaffGroupDN.
	GroupsDN = "ou=groups," + BaseDN
	// StaffGroupDN is a groupOfNames whose members are the first (up to)
	// three sample users.
	StaffGroupDN = "cn=staff," + GroupsDN
	// ScratchDN is the container in which WriterDN may write.
	ScratchDN = "ou=scratch," + BaseDN
	// RestrictedDN is a subtree only ServiceDN (and AdminDN) may read.
	RestrictedDN = "ou=restricted," + BaseDN
	// SecretDN is an entry below RestrictedDN with a description; clients of
	// the proxy must never be able to read it.
	SecretDN = "cn=secret-data," + RestrictedDN
	// PolicyDN is the default password policy of Options.PasswordPolicy.
	PolicyDN = "cn=pwdpolicy," + BaseDN
	// SecretDescription is the description of SecretDN.
	SecretDescription = "only the ldapmux service account may read this"

	// ProxiedAuthzOID is the OID of the Proxied Authorization v2 control
	// (RFC 4370). See ProxyAuthzControl.
	ProxiedAuthzOID = "2.16.840.1.113730.3.4.18"
)

// Paths of the OpenLDAP installation (Debian layout).
const (
	SlapdPath    = "/usr/sbin/slapd"
	SlapaddPath  = "/usr/sbin/slapadd"
	SlaptestPath = "/usr/sbin/slaptest"
	ModulePath   = "/usr/lib/ldap"
	SchemaDir    = "/etc/ldap/schema"
)

// MaxIncomingAuth is the largest LDAP message slapd accepts from an
// authenticated client (sockbuf_max_incoming_auth): 20 MiB, well above the
// 8 MiB entries that tests add.
const MaxIncomingAuth = 20 << 20

// Controls implemented by the sssvlv overlay.
const (
	// SortControlOID is the server-side sorting request control (RFC 2891).
	SortControlOID = "1.2.840.113556.1.4.473"
	// VLVControlOID is the virtual list view request control
	// (draft-ietf-ldapext-ldapv3-vlv).
	VLVControlOID = "2.16.840.1.113730.3.4.9"
)

// MaxReplicas is the largest supported cluster size (syncrepl rids have at
// most three digits; we use 100*consumer+provider).
const MaxReplicas = 9

// Options configures Start. The zero value starts three replicas on free
// ports in a new temporary directory.
type Options struct {
	// Replicas is the number of slapd servers (1..MaxReplicas), default 3.
	Replicas int
	// Dir is the parent directory of the replica directories. Default: a
	// new os.MkdirTemp("", "ldapmux-slapd-") directory. Close removes the
	// directory only if Start created it. Start (re)initialises the
	// replica-N subdirectories and data.ldif inside Dir.
	Dir string
	// Ports optionally fixes the TCP port of each replica (len must equal
	// Replicas). Default: free ports picked on 127.0.0.1; a picked port
	// that turns out to be taken when slapd binds is replaced by another.
	Ports []int
	// Users is the number of sample users uid=user.N,ou=people (N=1..Users),
	// default 20.
	Users int
	// Threads is slapd's `threads` setting; 0 keeps slapd's default.
	Threads int
	// MaxIncomingAuth is slapd's `sockbuf_max_incoming_auth`, the largest
	// message it takes from an authenticated client before it closes the
	// connection; 0 for the package's MaxIncomingAuth.
	MaxIncomingAuth int
	// IdleTimeout is slapd's `idletimeout`: it closes client connections
	// idle for that long, as directories are often configured; 0 for none.
	IdleTimeout time.Duration
	// Require is slapd's global `require` setting ("authc": every
	// operation but bind needs an authenticated connection); "" for none.
	Require string
	// Allow is slapd's global `allow` setting ("bind_anon_dn": a DN with
	// no password binds, as anonymous); "" for none.
	Allow string
	// PasswordPolicy loads the ppolicy overlay with a default policy
	// (PolicyDN) under which a password that is reset (pwdReset TRUE) must
	// be changed: slapd restricts a session bound with it to changing it.
	PasswordPolicy bool
	// ExtraLDIF is appended to the initial data loaded with slapadd.
	ExtraLDIF string
	// TLSCertFile and TLSKeyFile, when set, are the PEM certificate and key
	// of every replica (TLSCertificateFile, TLSCertificateKeyFile): StartTLS
	// works on the ldap:// port. See tls.go.
	TLSCertFile, TLSKeyFile string
	// TLSCAFile and TLSVerifyClient (never, allow, try or demand) make the
	// replicas check client certificates against the CAs in TLSCAFile.
	TLSCAFile, TLSVerifyClient string
	// LDAPS adds an ldaps:// listener on a second free port of every
	// replica (Replica.LDAPSAddr); it needs TLSCertFile and TLSKeyFile.
	LDAPS bool
	// ReplicationDelay, when set, makes every replica replicate from the
	// others through a Relay delaying each direction by this much
	// (relay.go; Cluster.Relays holds or releases them).
	ReplicationDelay time.Duration
	// Retcode makes replicas answer some operations with a fixed result
	// code, as a server in trouble does (slapo-retcode): by replica ID,
	// the retcode-item lines of the overlay (`"cn=busy" 0x33 op=search`),
	// whose pseudo-entries sit below RetcodeParent, which must be set with
	// it. The other replicas serve those DNs from their data as usual.
	Retcode       map[int][]string
	RetcodeParent string
	// Provider, when set (an ldap:// URL), makes the replicas read-only
	// consumers of that server rather than providers of each other: each
	// starts with an empty database and replicates the whole suffix from
	// Provider (refreshAndPersist, bound as AdminDN), as a replica in a
	// remote site would; its serverID is ConsumerServerIDBase + ID. Start
	// returns once every consumer holds the initial data, so the provider
	// must serve it (a cluster started with the same Users and ExtraLDIF).
	Provider string
	// Logf, if set, receives progress and diagnostic messages. It is only
	// called synchronously from the functions of this package.
	Logf func(format string, args ...any)
}

// withDefaults returns opts with defaults applied, or an error for invalid
// options.
func (o Options) withDefaults() (Options, error) {
	if o.Replicas == 0 {
		o.Replicas = 3
	}
	if o.Replicas < 1 || o.Replicas > MaxReplicas {
		return o, fmt.Errorf("slapdrun: Replicas must be between 1 and %d, got %d", MaxReplicas, o.Replicas)
	}
	if len(o.Ports) != 0 && len(o.Ports) != o.Replicas {
		return o, fmt.Errorf("slapdrun: %d Ports given for %d replicas", len(o.Ports), o.Replicas)
	}
	if o.Users == 0 {
		o.Users = 20
	}
	if o.Users < 0 {
		return o, fmt.Errorf("slapdrun: negative Users %d", o.Users)
	}
	if o.Threads < 0 {
		return o, fmt.Errorf("slapdrun: negative Threads %d", o.Threads)
	}
	if strings.Trim(o.Allow, "abcdefghijklmnopqrstuvwxyz_ ") != "" {
		return o, fmt.Errorf("slapdrun: Allow %q: only words (bind_v2, bind_anon_cred, bind_anon_dn, update_anon, proxy_authz_anon)", o.Allow)
	}
	if strings.Trim(o.Require, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ") != "" {
		return o, fmt.Errorf("slapdrun: Require %q: only words (none, bind, LDAPv3, authc, SASL, strong)", o.Require)
	}
	if o.MaxIncomingAuth == 0 {
		o.MaxIncomingAuth = MaxIncomingAuth
	}
	if o.IdleTimeout < 0 || o.IdleTimeout%time.Second != 0 {
		return o, fmt.Errorf("slapdrun: IdleTimeout %s: whole seconds only", o.IdleTimeout)
	}
	if o.Provider != "" && !strings.HasPrefix(o.Provider, "ldap://") {
		return o, fmt.Errorf("slapdrun: Provider %q: only ldap:// URLs", o.Provider)
	}
	if len(o.Retcode) > 0 && o.RetcodeParent == "" {
		return o, fmt.Errorf("slapdrun: Retcode needs RetcodeParent")
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return o, nil
}

// UserDN returns the DN of sample user n: "uid=user.N,ou=people,dc=example,dc=com".
func UserDN(n int) string { return "uid=" + UserID(n) + "," + PeopleDN }

// UserID returns the uid of sample user n: "user.N".
func UserID(n int) string { return "user." + strconv.Itoa(n) }

// UserPassword returns the password of sample user n: "password.N".
func UserPassword(n int) string { return "password." + strconv.Itoa(n) }

// UserMail returns the mail attribute of sample user n: "user.N@example.com".
func UserMail(n int) string { return UserID(n) + "@example.com" }
