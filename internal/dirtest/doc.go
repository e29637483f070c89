// Package dirtest starts real directory servers other than OpenLDAP for
// integration tests: 389 Directory Server instances (Start389), optionally
// replicating to each other, and a Samba Active Directory domain controller
// (StartAD, SharedAD). Both come from Debian 12 packages (`make deps-test`
// installs them) and run on 127.0.0.1 only, from temporary directories,
// as child processes that are stopped by PID when the test ends.
//
// The package needs Linux and root (ns-slapd runs as user dirsrv, samba as
// root); on other systems it is empty.
//
// 389 Directory Server 2.3 behaviour worth knowing (see Start389):
//
//   - Proxied Authorization needs an ACI granting `proxy` to the proxying
//     identity; without it the request fails with insufficientAccessRights
//     (50), not authorizationDenied (123). An empty authzId is refused
//     ("unable to parse proxied authorization control"); "dn:" works.
//   - WhoAmI reports the bound identity, not the proxied one. Password
//     Modify needs a secure connection (confidentialityRequired, 13).
//
// Samba 4.17 as an AD DC (see StartAD):
//
//   - LDAP listens on the fixed port 389 (and 636, 3268, 3269), so only one
//     AD runs on a machine at a time; starts are serialised by a lock file.
//   - Its root DSE lists no Proxied Authorization control and no extended
//     operations. Simple binds accept the DN, user@REALM and DOMAIN\user.
package dirtest
