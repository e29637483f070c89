package e2e

import (
	"testing"
)

// readerRun says where the reader clients read and as whom.
type readerRun struct {
	direct, proxied string      // ldap:// URIs
	people          string      // the users' subtree
	restricted      string      // a subtree the users may not read (JNDI)
	users           [][2]string // DN and password of each user
	except          []string    // steps whose answers are not compared
	// check, when set, looks at each user's transcript through ldapmux
	// (python-ldap and Net::LDAP).
	check func(t *testing.T, who, user string, steps [][2]any)
}

// compareReaders runs the python-ldap, Net::LDAP, ldap3 and JNDI readers as every
// user at once, straight to the directory and through ldapmux, and compares
// what each user saw.
func compareReaders(t *testing.T, r readerRun) {
	t.Helper()
	python, python3, perl, java := pythonWithLDAP(t), pythonWithLDAP3(t), perlWithNetLDAP(t), javaForJNDI(t)
	reader := func(n int) []string { return []string{"reader", r.users[n-1][0], r.users[n-1][1], r.people} }
	for name, client := range map[string]func(uri string, args ...string) ([][2]any, error){
		"python-ldap": func(uri string, args ...string) ([][2]any, error) { return pyClient(python, uri, args...) },
		"Net::LDAP":   func(uri string, args ...string) ([][2]any, error) { return netLDAPClient(perl, uri, args...) },
		"ldap3":       func(uri string, args ...string) ([][2]any, error) { return ldap3Client(python3, uri, args...) },
	} {
		wants := runReaders(t, client, r.direct, len(r.users), reader)
		gots := runReaders(t, client, r.proxied, len(r.users), reader)
		for n, user := range r.users {
			who := name + " reader " + user[0]
			sameTranscript(t, who, wants[n+1], gots[n+1], r.except...)
			if r.check != nil {
				r.check(t, who, user[0], gots[n+1])
			}
		}
	}

	args := []string{"readers", r.people, r.restricted}
	for _, user := range r.users {
		args = append(args, user[0], user[1])
	}
	var wants, gots map[string][][2]any
	if err := jndiClient(java, r.direct, &wants, args...); err != nil {
		t.Fatal(err)
	}
	if err := jndiClient(java, r.proxied, &gots, args...); err != nil {
		t.Fatal(err)
	}
	for _, user := range r.users {
		sameTranscript(t, "JNDI reader "+user[0], wants[user[0]], gots[user[0]])
	}
}
