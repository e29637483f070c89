// Package dirtest starts real directory servers other than OpenLDAP for
// integration tests: 389 Directory Server instances (Start389), optionally
// replicating to each other, and a Samba Active Directory domain controller
// (StartAD, SharedAD). Both come from Debian 12 packages (`make deps-test`
// installs them) and listen on loopback only, run from temporary
// directories as child processes of the test, which stops them by PID.
//
// The package needs Linux and root (ns-slapd runs as user dirsrv, samba as
// root); on other systems it is empty.
//
// 389 Directory Server 2.3 behaviour seen with these instances:
//
//   - Proxied Authorization needs an ACI granting `proxy` to the proxying
//     identity. Without it a proxied search succeeds with no entries and a
//     proxied modify fails with insufficientAccessRights (50); nothing
//     answers authorizationDenied (123). An empty authzId is refused with
//     unavailableCriticalExtension (12), "unable to parse proxied
//     authorization control"; "dn:" (anonymous) works.
//   - WhoAmI reports the bound identity, not the proxied one. Password
//     Modify needs a secure connection (confidentialityRequired, 13).
//   - The RUV is in ReplicaDN (cn=config). A search below BaseDN for
//     objectClass=nsTombstone returns that entry too, to Directory Manager
//     only. 389 refuses ACIs in the replica entry (unwillingToPerform), so
//     the one for ServiceDN is on MappingTreeDN. cn=monitor is readable by
//     anyone.
//
// Samba 4.17 as an AD DC:
//
//   - LDAP listens on the fixed port 389 (and 636, 3268, 3269), so one AD
//     runs on a machine at a time; starts are serialised by a lock file.
//   - Its root DSE lists no Proxied Authorization control and no extended
//     operations. Simple binds accept the DN, user@REALM and DOMAIN\user.
//   - It takes a control as critical only if the BOOLEAN is encoded 0xFF.
//     go-ldap (go-asn1-ber's NewBoolean) encodes true as 0x01, so Samba
//     ignores an unsupported "critical" Proxied Authorization control from
//     go-ldap and searches with the bound identity's rights. Encoded 0xFF,
//     the search ends with an ExtendedResponse (unavailableCriticalExtension,
//     12) instead of a SearchResultDone, which go-ldap waits for in vain.
package dirtest
