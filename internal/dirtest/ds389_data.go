//go:build linux

package dirtest

import (
	"fmt"
	"strconv"

	"github.com/go-ldap/ldap/v3"
)

// Identities and data of the 389 Directory Server instances.
const (
	// BaseDN is the suffix (userRoot backend) of every 389 instance.
	BaseDN = "dc=example,dc=test"
	// DirectoryManagerDN is the root DN of every 389 instance; it bypasses
	// all ACIs.
	DirectoryManagerDN = "cn=Directory Manager"
	// DirectoryManagerPassword is the password of DirectoryManagerDN.
	DirectoryManagerPassword = "manager-secret"

	// PeopleDN holds the sample users (see UserDN).
	PeopleDN = "ou=people," + BaseDN
	// GroupsDN holds StaffGroupDN.
	GroupsDN = "ou=groups," + BaseDN
	// StaffGroupDN is a groupOfNames with users 1 to 3 as members.
	StaffGroupDN = "cn=staff," + GroupsDN
	// ServicesDN holds the service accounts.
	ServicesDN = "ou=services," + BaseDN
	// ServiceDN is the proxy's service account: an ACI grants it `proxy`
	// rights on the whole suffix (Proxied Authorization for any identity)
	// and, with two instances, read access to the RUV (ReplicaDN).
	ServiceDN = "cn=ldapmux," + ServicesDN
	// ServicePassword is the password of ServiceDN.
	ServicePassword = "service-secret"
	// NoProxyDN is a service account without proxy rights.
	NoProxyDN = "cn=noproxy," + ServicesDN
	// NoProxyPassword is the password of NoProxyDN.
	NoProxyPassword = "noproxy-secret"

	// Users is the number of sample users uid=user.N,ou=people.
	Users = 20

	// ReplicationManagerDN is the identity the replication agreements
	// bind as.
	ReplicationManagerDN = "cn=replication manager,cn=config"
	// replicationManagerPassword is the password of ReplicationManagerDN.
	replicationManagerPassword = "replication-secret"

	// MappingTreeDN is the mapping tree entry of BaseDN.
	MappingTreeDN = `cn=dc\3Dexample\2Cdc\3Dtest,cn=mapping tree,cn=config`
	// ReplicaDN is the replica entry of BaseDN (with two instances). Its
	// nsds50ruv values are the replica update vector: "{replicageneration}
	// GEN" and "{replica ID URL} MINCSN MAXCSN" per replica that has
	// written. ServiceDN may read it.
	ReplicaDN = "cn=replica," + MappingTreeDN
)

// UserDN returns the DN of sample user n: "uid=user.N,ou=people,dc=example,dc=test".
func UserDN(n int) string { return "uid=" + UserID(n) + "," + PeopleDN }

// UserID returns the uid of sample user n: "user.N".
func UserID(n int) string { return "user." + strconv.Itoa(n) }

// UserPassword returns the password of sample user n: "password.N".
func UserPassword(n int) string { return "password." + strconv.Itoa(n) }

// UserMail returns the mail of sample user n: "user.N@example.test".
func UserMail(n int) string { return UserID(n) + "@example.test" }

// suffixACIs are added to BaseDN, next to 389's default "Enable anyone
// domain read". 389 grants nothing else by default (without sample
// entries): no self write, no read of people.
var suffixACIs = []string{
	`(targetattr="*")(version 3.0; acl "ldapmux proxy"; allow (proxy) userdn="ldap:///` + ServiceDN + `";)`,
	`(targetattr="objectClass || cn || sn || uid || ou || member || description")` +
		`(version 3.0; acl "anyone reads names"; allow (read, search, compare) userdn="ldap:///anyone";)`,
	`(targetattr="mail")(version 3.0; acl "users read mail"; allow (read, search, compare) userdn="ldap:///all";)`,
	`(targetattr="userPassword")(version 3.0; acl "self changes password"; allow (write) userdn="ldap:///self";)`,
}

// ruvACI lets ServiceDN read the replica entry. It is set on
// MappingTreeDN, as 389 refuses ACIs in the replica entry itself.
const ruvACI = `(targetfilter="(objectClass=nsds5Replica)")` +
	`(targetattr="nsds50ruv || objectClass || nsDS5ReplicaId || nsDS5ReplicaRoot")` +
	`(version 3.0; acl "ldapmux reads the RUV"; allow (read, search, compare) userdn="ldap:///` + ServiceDN + `";)`

// seedRequests returns the modify and adds that load the sample data.
// replicationStateACI lets the service account read the live replica
// update vector (nsds50ruv of the replica entries below cn=mapping
// tree,cn=config), as ldapmux's replication-backlog check does.
func replicationStateACI() *ldap.ModifyRequest {
	mod := ldap.NewModifyRequest("cn=mapping tree,cn=config", nil)
	mod.Add("aci", []string{`(targetattr="nsds50ruv || objectClass || nsds5replicaroot || cn")` +
		`(version 3.0; acl "ldapmux reads the replication state"; allow (read, search, compare) userdn="ldap:///` + ServiceDN + `";)`})
	return mod
}

func seedRequests() (*ldap.ModifyRequest, []*ldap.AddRequest) {
	mod := ldap.NewModifyRequest(BaseDN, nil)
	mod.Add("aci", suffixACIs)
	var adds []*ldap.AddRequest
	for _, ou := range []string{"people", "groups", "services"} {
		adds = append(adds, addRequest("ou="+ou+","+BaseDN,
			attr("objectClass", "top", "organizationalUnit"), attr("ou", ou)))
	}
	adds = append(adds,
		serviceAccount(ServiceDN, "ldapmux", ServicePassword, "ldapmux proxy service account"),
		serviceAccount(NoProxyDN, "noproxy", NoProxyPassword, "service account without proxy rights"))
	members := make([]string, 0, 3)
	for n := 1; n <= Users; n++ {
		adds = append(adds, userRequest(n))
		if n <= 3 {
			members = append(members, UserDN(n))
		}
	}
	adds = append(adds, addRequest(StaffGroupDN,
		attr("objectClass", "top", "groupOfNames"), attr("cn", "staff"), attr("member", members...)))
	return mod, adds
}

// serviceAccount returns the add request of a service account.
func serviceAccount(dn, cn, password, description string) *ldap.AddRequest {
	return addRequest(dn,
		attr("objectClass", "top", "applicationProcess", "simpleSecurityObject"),
		attr("cn", cn), attr("description", description), attr("userPassword", password))
}

// userRequest returns the add request of sample user n.
func userRequest(n int) *ldap.AddRequest {
	return addRequest(UserDN(n),
		attr("objectClass", "top", "person", "organizationalPerson", "inetOrgPerson"),
		attr("uid", UserID(n)), attr("cn", fmt.Sprintf("User %d", n)), attr("sn", strconv.Itoa(n)),
		attr("mail", UserMail(n)), attr("userPassword", UserPassword(n)))
}

// addRequest builds an add request.
func addRequest(dn string, attrs ...ldap.Attribute) *ldap.AddRequest {
	return &ldap.AddRequest{DN: dn, Attributes: attrs}
}

// attr returns an attribute with its values.
func attr(name string, vals ...string) ldap.Attribute {
	return ldap.Attribute{Type: name, Vals: vals}
}
