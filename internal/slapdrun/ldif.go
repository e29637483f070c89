package slapdrun

import (
	"fmt"
	"strings"
)

// initialLDIF returns the data loaded into the cluster before the first
// start:
//
//	dc=example,dc=com                      dcObject, organization
//	  ou=people                            sample users uid=user.N
//	  ou=groups    cn=staff                groupOfNames (first 3 users)
//	  ou=services  cn=ldapmux              ServiceDN (authzTo: dn.regex:.*)
//	  ou=apps      uid=writer, uid=app     WriterDN, AppDN
//	  ou=scratch                           writable by WriterDN
//	  ou=restricted cn=secret-data         readable by ServiceDN only
//
// followed by extra (Options.ExtraLDIF).
func initialLDIF(users int, extra string) string {
	var b strings.Builder
	entry(&b, BaseDN, "objectClass: dcObject", "objectClass: organization", "dc: example", "o: Example Corp")
	for _, ou := range []string{"people", "groups", "services", "apps", "scratch", "restricted"} {
		entry(&b, "ou="+ou+","+BaseDN, "objectClass: organizationalUnit", "ou: "+ou)
	}
	entry(&b, SecretDN, "objectClass: organizationalRole", "cn: secret-data", "description: "+SecretDescription)
	entry(&b, ServiceDN,
		"objectClass: applicationProcess", "objectClass: simpleSecurityObject",
		"cn: ldapmux", "description: ldapmux proxy service account",
		"userPassword: "+ServicePassword,
		// Any identity, including uid=...,cn=auth style ones. The empty
		// authzId (anonymous) is always allowed by slapd.
		"authzTo: dn.regex:.*")
	entry(&b, WriterDN, "objectClass: account", "objectClass: simpleSecurityObject",
		"uid: writer", "userPassword: "+WriterPassword)
	entry(&b, AppDN, "objectClass: account", "objectClass: simpleSecurityObject",
		"uid: app", "userPassword: "+AppPassword)
	for n := 1; n <= users; n++ {
		userEntry(&b, n)
	}
	staffGroup(&b, users)
	if extra = strings.TrimSpace(extra); extra != "" {
		b.WriteString(extra)
		b.WriteString("\n")
	}
	return b.String()
}

// userEntry appends sample user n.
func userEntry(b *strings.Builder, n int) {
	entry(b, UserDN(n),
		"objectClass: inetOrgPerson",
		"uid: "+UserID(n),
		fmt.Sprintf("cn: User %d", n),
		fmt.Sprintf("sn: %d", n),
		"mail: "+UserMail(n),
		fmt.Sprintf("telephoneNumber: +1 555 %07d", n),
		"userPassword: "+UserPassword(n))
}

// staffGroup appends cn=staff,ou=groups with the first three users as
// members (AdminDN if there are no users, as member is mandatory).
func staffGroup(b *strings.Builder, users int) {
	attrs := []string{"objectClass: groupOfNames", "cn: staff"}
	for n := 1; n <= min(users, 3); n++ {
		attrs = append(attrs, "member: "+UserDN(n))
	}
	if users == 0 {
		attrs = append(attrs, "member: "+AdminDN)
	}
	entry(b, StaffGroupDN, attrs...)
}

// entry appends one LDIF record.
func entry(b *strings.Builder, dn string, attrs ...string) {
	b.WriteString("dn: " + dn + "\n")
	for _, a := range attrs {
		b.WriteString(a + "\n")
	}
	b.WriteString("\n")
}
